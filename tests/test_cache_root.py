"""One cache root for every cache (edge.cache): the first-load markers and the TFLM builds agree,
with ``~`` expanded in either variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.cache import CACHE_ENV, cache_root
from edge.runtime.first_load import cache_dir


@pytest.mark.parametrize(("edge_dir", "xdg", "expected"), [
    ("~/edge-cache", None, "HOME/edge-cache"),
    ("/srv/cache", "~/xdg", "/srv/cache"),
    (None, "~/xdg", "HOME/xdg/edge"),
    (None, None, "HOME/.cache/edge"),
])
def test_one_root_with_tilde_expanded(edge_dir: str | None, xdg: str | None, expected: str,
                                      tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    for name, value in ((CACHE_ENV, edge_dir), ("XDG_CACHE_HOME", xdg)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    root = Path(expected.replace("HOME", str(tmp_path)))
    assert cache_root() == root
    assert cache_dir() == root / "loaded"  # the first-load markers live under the same root
