"""Where tests keep what is expensive to make (models built or trained by the tests).

Outside the repo, in ``$XDG_CACHE_HOME/edge-tests/<name>`` (``~/.cache`` by default); each
user keys its entries by the hash of everything the entry depends on.
"""

from __future__ import annotations

import os
from pathlib import Path


def artefact_cache(name: str) -> Path:
    """The cache folder of one kind of test artefact (not created)."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "edge-tests" / name
