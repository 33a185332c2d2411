"""Models shaped like ``edgetpu_compiler``'s output, made from CPU models (no compiler here).

The compiler replaces the part of the graph the Edge TPU runs by one ``edgetpu-custom-op`` and
leaves the rest (e.g. an SSD's ``TFLite_Detection_PostProcess``) to the CPU. :func:`as_compiled`
does the same to a CPU model: every operator before the first operator kept on the CPU becomes
one ``edgetpu-custom-op`` from the graph's input to the kept part's inputs. The tensors stay
where they were, so the CPU twin's tensor indices are the compiled model's: a stand-in Edge TPU
runs the twin.
"""

from __future__ import annotations

import flatbuffers

from edge.model import schema_generated as schema

EDGETPU_OP = "edgetpu-custom-op"


def as_compiled(content: bytes, keep_on_cpu: str | None = None) -> bytes:
    """``content`` with its operators up to ``keep_on_cpu`` (a custom op's name; None: all of
    them) replaced by one ``edgetpu-custom-op``."""
    model = schema.ModelT.InitFromPackedBuf(content, 0)
    graph = model.subgraphs[0]
    names = [code.customCode.decode() if isinstance(code.customCode, bytes)
             else code.customCode for code in model.operatorCodes]
    split = len(graph.operators)
    if keep_on_cpu is not None:
        split = next(i for i, op in enumerate(graph.operators)
                     if names[op.opcodeIndex] == keep_on_cpu)
    kept = graph.operators[split:]
    produced = {t for op in graph.operators[:split] for t in op.outputs}
    needed = [t for op in kept for t in op.inputs if t in produced] or list(graph.outputs)
    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.CUSTOM
    code.customCode = EDGETPU_OP
    code.version = 1
    model.operatorCodes.append(code)
    tpu = schema.OperatorT()
    tpu.opcodeIndex = len(model.operatorCodes) - 1
    tpu.inputs = list(graph.inputs)
    tpu.outputs = list(dict.fromkeys(needed))
    tpu.customOptions = [0] * 8
    graph.operators = [tpu, *kept]
    builder = flatbuffers.Builder(len(content) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())
