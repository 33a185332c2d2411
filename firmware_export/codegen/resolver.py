"""``op_resolver.h``: a ``MicroMutableOpResolver<N>`` with exactly the model's operators."""

from __future__ import annotations

from collections.abc import Sequence

from edge.errors import ExportError
from firmware_export.codegen.render import Code, render
from firmware_export.plan.kernels import unsupported_ops
from firmware_export.tflm.opset import add_method


def op_resolver_h(opcodes: Sequence[str]) -> str:
    """The resolver header for these (distinct) builtin operators.

    Raises:
        ExportError: an operator TFLite Micro has no kernel for.
    """
    missing = unsupported_ops(opcodes)
    if missing:
        raise ExportError(f"TFLite Micro has no kernel for {', '.join(missing)}")
    ops = sorted(set(opcodes))  # every name is from plan.kernels.MICRO_OPS: [A-Z0-9_] only
    adds = "\n".join(f"  if (resolver.{add_method(op)}() != kTfLiteOk) return kTfLiteError;"
                     for op in ops)
    return render("op_resolver.h.in", count=len(ops), op_list=Code(", ".join(ops)),
                  adds=Code(adds))


__all__ = ["add_method", "op_resolver_h"]
