"""Pure text generators for the firmware project, one per output file (see :data:`FILES`)."""

from firmware_export.codegen.project import FILES, ExportContext, render_all

__all__ = ["FILES", "ExportContext", "render_all"]
