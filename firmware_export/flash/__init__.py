"""edge-flash's library: model images, UF2, flashing plans and the tools that run them.

The data flows one way::

    .tflite + labels -> image.build_image -> (uf2.to_uf2) -> plan.plan_flash -> tools.run_plan

``image`` and ``uf2`` are pure codecs on bytes; ``plan`` turns a request into steps (what
``--dry-run`` prints) without touching anything; ``tools`` is the only module that looks up or
imports a flashing tool, and only the one a step names; ``ports`` is the only one that touches
serial ports.
"""
