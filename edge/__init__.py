"""edge: a camera-to-label runtime for small boards, and its MCU firmware exporter.

Importing this package imports no hardware or interpreter package; those load only when chosen.
"""

from edge.errors import EdgeError

__version__ = "0.1.0"
__all__ = ["EdgeError", "__version__"]
