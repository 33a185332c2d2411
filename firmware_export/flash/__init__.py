"""edge-flash's library: UF2, ports, the flashing steps and the tools that run them.

The data flows one way::

    .tflite + labels -> image.build_image -> (uf2.to_uf2) -> steps -> tools.run_steps

The slot image format lives one level up (:mod:`firmware_export.image`: export, codegen and
verify read it too). ``uf2`` is a pure codec on bytes; ``steps`` turns a request into steps (what
``--dry-run`` prints) without touching anything; ``tools`` is the only module that looks up or
imports a flashing tool, and only the one a step names; ``ports`` is the only one that touches
serial ports.
"""
