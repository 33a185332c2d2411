"""Where edge keeps what is expensive to redo: one root for every cache.

``$EDGE_CACHE_DIR`` when set, else ``$XDG_CACHE_HOME/edge``, else ``~/.cache/edge``; a ``~`` in
either variable is expanded. Users make their own folder under it (``loaded`` for the models
loaded once in a child, ``tflm`` for TFLM trees, libraries and programs, ``test-venvs``).
"""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "EDGE_CACHE_DIR"


def cache_root() -> Path:
    """``$EDGE_CACHE_DIR``, ``$XDG_CACHE_HOME/edge`` or ``~/.cache/edge``."""
    configured = os.environ.get(CACHE_ENV)
    if configured:
        return Path(configured).expanduser()
    base = os.environ.get("XDG_CACHE_HOME")
    return (Path(base).expanduser() if base else Path.home() / ".cache") / "edge"
