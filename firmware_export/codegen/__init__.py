"""Pure text generators for the firmware project, one per output file (see :data:`FILES`).

Templates are in ``templates/``; :mod:`firmware_export.codegen.render` fills them and is the
one place where values are escaped.
"""

from firmware_export.codegen.project import FILES, FirmwareValues, render_all

__all__ = ["FILES", "FirmwareValues", "render_all"]
