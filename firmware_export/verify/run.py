"""``--verify`` for an export result: locate the TFLM trees, then run the ladder."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

from edge.boards import get_board
from firmware_export.export import ExportResult
from firmware_export.tflm.tree import TFLM_ENV, TflmTree, locate_tree
from firmware_export.verify.ladder import verify_export
from firmware_export.verify.report import VerifyReport


def env_trees() -> list[TflmTree]:
    """The trees in ``$EDGE_TFLM_DIR`` (several separated by ':').

    Raises:
        ExportError: a path is not a TFLM tree.
    """
    return [locate_tree(p) for p in os.environ.get(TFLM_ENV, "").split(os.pathsep) if p]


def verify_result(result: ExportResult, trees: Sequence[TflmTree],
                  boards_dirs: Iterable[str] = ()) -> VerifyReport:
    """Verify the project ``result`` describes on the pip interpreter and real TFLM builds
    (``trees``, else those in ``$EDGE_TFLM_DIR``)."""
    board = get_board(result.budget.board, boards_dirs, "mcu")
    untiled = result.patch.rewrite.original if result.patch is not None else None
    return verify_export(result.model, result.model_path, result.out, board,
                         list(trees) or env_trees(), result.arena, untiled, result.detector)
