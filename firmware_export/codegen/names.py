"""Safe C identifiers for generated arrays."""

from __future__ import annotations

import re

from firmware_export.codegen.render import identifier


def model_stem(file_name: str) -> str:
    """The file name without directories and without its last ``.tflite``-like suffix only.

    ``mobilenet_v2_1.0_224.tflite`` -> ``mobilenet_v2_1.0_224`` (dots inside the name are part
    of it, unlike tools that split at the first dot).
    """
    name = file_name.replace("\\", "/").rsplit("/", 1)[-1]
    for suffix in (".tflite", ".tfl", ".bin"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def c_identifier(file_name: str) -> str:
    """``g_<stem>_model``: every character outside [A-Za-z0-9_] becomes ``_``, runs collapse.

    Examples: ``mobilenet_v2_1.0_224.tflite`` -> ``g_mobilenet_v2_1_0_224_model``,
    ``2-class person.tflite`` -> ``g_2_class_person_model``.
    """
    stem = re.sub(r"[^A-Za-z0-9]+", "_", model_stem(file_name)).strip("_").lower()
    return f"g_{stem or 'model'}_model" if stem != "model" else "g_model"


def check_identifier(name: str) -> str:
    """A user-given ``--name``, refused unless it is a plain C identifier.

    Raises:
        ExportError: naming the value and what is allowed.
    """
    return identifier(name, "--name")
