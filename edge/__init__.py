"""edge: a camera-to-label runtime for small boards, and its MCU firmware exporter.

Importing this package imports no hardware or interpreter package; those load only when chosen.
"""

from edge.errors import EdgeError

__version__ = "0.1.0"
# The name on PyPI (`pip install edge-labels`); the import package and commands are edge, edge-*.
DISTRIBUTION = "edge-labels"
__all__ = ["DISTRIBUTION", "EdgeError", "__version__", "distribution_version", "pip_install"]


def distribution_version() -> str:
    """The installed distribution's version (this source tree's when not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:
        return __version__


def pip_install(extra: str | None = None) -> str:
    """The pip command that installs this distribution, with ``extra`` if given."""
    return f"pip install '{DISTRIBUTION}[{extra}]'" if extra else f"pip install {DISTRIBUTION}"
