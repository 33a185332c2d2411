"""Layers that stay layers (issue 24 point 8): every import of edge and firmware_export, walked.

Each module belongs to the longest entry of :data:`LAYERS` its name starts with, and may import
only modules of a lower layer, or modules of its own entry (a package's modules among
themselves). ``edge`` imports nothing of ``firmware_export`` but the one entry point of the
memory plan (:data:`EDGE_MAY_IMPORT`). Function-level and ``TYPE_CHECKING`` imports count: a
dependency is a dependency. A new upward import fails here; a deliberate exception goes into
:data:`EXCEPTIONS` with its reason.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from tests.conftest import ROOT

# Lowest first. Same layer, different entries: neither may import the other.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("edge.errors",),
    ("edge", "edge.backoff", "edge.bounded_read", "edge.cache", "edge.nativelog", "edge.outputs",
     "edge.child"),
    ("edge.boards", "edge.events", "edge.model"),
    ("edge.decode", "edge.demo", "edge.serial"),
    ("edge.camera", "edge.runtime", "edge.sinks", "edge.preview"),
    ("edge.modelbuild", "edge.pipeline", "edge.serial.gateway"),
    ("edge.cli", "edge.__main__"),
    ("edge.demo.clip",),  # a tool: its main() uses the CLI conventions of edge.cli.common
    ("firmware_export", "firmware_export.image"),
    ("firmware_export.plan",),
    ("firmware_export.patch",),
    ("firmware_export.plan.fit",),  # the entry point: plans, and chooses a patch rewrite
    ("firmware_export.tflm",),
    ("firmware_export.codegen",),
    ("firmware_export.export",),
    ("firmware_export.verify", "firmware_export.flash"),
    ("firmware_export.cli",),
)
EDGE_MAY_IMPORT = "firmware_export.plan.fit"
# (importer, imported): why this one import may climb.
EXCEPTIONS: dict[tuple[str, str], str] = {}
PACKAGES = ("edge", "firmware_export")


def layer_of(module: str) -> tuple[int, str]:
    """The layer and the entry of ``module``: the longest entry that is it or a parent."""
    best = (-1, "")
    for rank, entries in enumerate(LAYERS):
        for entry in entries:
            if (module == entry or module.startswith(entry + ".")) and len(entry) > len(best[1]):
                best = (rank, entry)
    if best[0] < 0 or (best[1] in PACKAGES and module != best[1]):  # a new top-level module
        raise AssertionError(f"{module} is in no layer: add it to LAYERS in tests/test_layers.py")
    return best


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def resolve(name: str, root: Path = ROOT) -> str:
    """The module an imported name lives in: ``edge.events.LabelEvent`` -> ``edge.events``."""
    parts = name.split(".")
    while parts:
        base = root.joinpath(*parts)
        if base.with_suffix(".py").is_file() or base.is_dir():
            return ".".join(parts)
        parts.pop()
    return name


def imports(path: Path, root: Path = ROOT) -> Iterator[tuple[str, int]]:
    """Every (module imported, line) of one source file, ours only."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{alias.name}" for alias in node.names]
        for name in names:
            if name.split(".")[0] in PACKAGES:
                yield resolve(name, root), node.lineno


def upward_imports(files: list[Path], root: Path = ROOT) -> list[str]:
    found = []
    for path in files:
        importer = module_name(path, root)
        rank, entry = layer_of(importer)
        for imported, line in imports(path, root):
            if (importer, imported) in EXCEPTIONS:
                continue
            where = f"{path.relative_to(root)}:{line}: {importer} imports {imported}"
            if importer.startswith("edge") and imported.startswith("firmware_export"):
                if imported != EDGE_MAY_IMPORT:
                    found.append(f"{where} (edge imports only {EDGE_MAY_IMPORT})")
                continue
            their_rank, their_entry = layer_of(imported)
            if their_entry != entry and their_rank >= rank:
                found.append(f"{where} ({entry} is layer {rank}, {their_entry} layer "
                             f"{their_rank})")
    return found


def source_files() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py")
                  if "schema_generated" not in p.name)


def test_every_import_goes_down() -> None:
    files = source_files()
    assert len(files) > 100
    assert upward_imports(files) == []


def test_the_walk_catches_an_upward_import(tmp_path: Path) -> None:
    """The checker on a planted tree: sinks -> pipeline, edge -> firmware_export.verify."""
    planted = {
        "edge/sinks/planted.py": "def f():\n    from edge.pipeline.runner import run_loop\n",
        "edge/runtime/planted.py": "from firmware_export.verify.children import pip_minimum\n"
                                   "from firmware_export.plan.fit import pip_arena\n",
        "edge/preview/planted.py": "from edge.events import LabelEvent\n",
    }
    modules = ["edge/pipeline/runner.py", "edge/events.py", "firmware_export/verify/children.py",
               "firmware_export/plan/fit.py"]
    for relative in [*planted, *modules]:
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(planted.get(relative, ""), encoding="utf-8")
        for parent in path.relative_to(tmp_path).parents:
            (tmp_path / parent / "__init__.py").touch()
    found = upward_imports([tmp_path / p for p in planted], tmp_path)
    assert len(found) == 2, found
    assert "edge.sinks.planted imports edge.pipeline.runner" in found[0]
    assert "imports firmware_export.verify.children (edge imports only" in found[1]


def test_layers_name_real_modules() -> None:
    for entries in LAYERS:
        for entry in entries:
            assert resolve(entry) == entry, f"{entry} in LAYERS is not a module"
