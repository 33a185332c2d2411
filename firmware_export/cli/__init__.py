"""Thin command-line tools of the firmware exporter."""
