"""Resource bounds checked before an interpreter allocates anything.

A 660 KB model can declare a 1x8000x8000x3 input: LiteRT would then allocate gigabytes before
the first frame. The bound is the sum of every non-constant tensor (what an interpreter without
a memory planner allocates; a planner only ever needs less), checked against a limit that comes
from the board profile (``max_activation_mb``) and can be raised on the command line.
"""

from __future__ import annotations

from pathlib import Path

from edge.errors import ModelError
from edge.model.types import Model

MB = 1 << 20
DEFAULT_MAX_ACTIVATION_MB = 1024  # the host profile's; smaller boards set their own


def activation_bytes(model: Model) -> int:
    """Bytes of every non-constant tensor of every subgraph."""
    return sum(t.nbytes for graph in model.subgraphs for t in graph.tensors
               if not t.is_constant)


def check_activation_memory(model: Model, limit: int, flag: str = "--max-activation-mb") -> int:
    """The model's activation bytes, if within ``limit``.

    Raises:
        ModelError: the model needs more than ``limit`` bytes of activations; the message says
            how much and which flag raises the limit.
    """
    needed = activation_bytes(model)
    if needed > limit:
        name = Path(model.source).name if model.source != "<bytes>" else "the model"
        raise ModelError(f"{name} needs {needed / MB:,.1f} MB of activations (its non-constant "
                         f"tensors), more than the limit of {limit / MB:,.0f} MB for this board; "
                         f"raise it with {flag} if the model is really this large")
    return needed
