"""Patch-based inference: a model's first stages rewritten to run tile by tile.

:mod:`.tiles` is the pure core (receptive fields, halos, border padding, the tile plan and the
search over plain layer descriptions), :mod:`.rewrite` turns a plan into a model (reader ->
plan -> :mod:`edge.model.writer`), :mod:`.choose` is ``--patch auto|off|RxC``.
"""
