"""Issue 21, point 5: ``edge-model train --board`` and the "too big" messages use the patched
plan (the MobileNetV2 family written as models and put through ``--patch auto``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.boards import get_board
from edge.demo import model_path
from edge.errors import BudgetError
from edge.model import read_model
from edge.modelbuild.sizing import choose_size
from firmware_export.export import export_model
from firmware_export.patch.choose import choose_patch
from firmware_export.patch.family import mobilenet_v2_model
from firmware_export.plan.abi import default_abi, get_abi
from firmware_export.plan.arena import plan_arena
from firmware_export.plan.fit import layouts
from firmware_export.plan.mobilenet import mobilenet_v2_arena

NANO = get_board("nano33ble")


def test_written_family_member_plans_like_the_trained_demo_model() -> None:
    """The demo model is what edge-model train + quantize made at 0.35/96 with 11 classes: the
    written member has its graph, so every plan matches to the byte, tiled or not."""
    demo = read_model(model_path())
    member = mobilenet_v2_model(0.35, 96, 11)
    assert member.opcodes == demo.opcodes
    assert len(member.main.tensors) == len(demo.main.tensors)
    m4 = default_abi(4, "cortex-m4")
    for kernels, abi in (("cmsis-nn", m4), ("reference", get_abi("pip"))):
        assert (plan_arena(member, abi.pointer_size, kernels, abi=abi).minimum
                == plan_arena(demo, abi.pointer_size, kernels, abi=abi).minimum)
    tiled = [choose_patch(m, (3, 3), "cmsis-nn", m4) for m in (member, demo)]
    assert tiled[0] is not None and tiled[1] is not None
    assert tiled[0].after == tiled[1].after < tiled[0].before


@pytest.mark.parametrize(("width", "resolution", "classes"), [(0.5, 128, 3), (1.0, 160, 1000)])
def test_written_member_matches_the_family_estimate(width: float, resolution: int,
                                                    classes: int) -> None:
    """Other widths and class counts: the written model's activations are the chain the
    untiled family estimate plans (the head to the byte, the tail within 3 %)."""
    member = mobilenet_v2_model(width, resolution, classes)
    plan = plan_arena(member, 4, "cmsis-nn", abi=default_abi(4, "cortex-m4"))
    estimate = mobilenet_v2_arena(width, resolution, 4, classes)
    assert plan.plan.head == estimate.head
    assert abs(plan.tail.total - estimate.tail) <= 0.03 * estimate.tail
    assert member.output_tensors[0].shape == (1, classes)


def test_layouts_of_nano33ble() -> None:
    names = [layout.name for layout in layouts(NANO, 100_000, 3)]
    assert names == ["built in (default)", "--model-slot --fallback embedded",
                     "--model-slot --fallback none"]
    assert [x.fits for x in layouts(NANO, 300_000, 11)] == [True, True, True]
    assert [x.fits for x in layouts(NANO, 660_548, 11)] == [True, False, True]
    assert [x.fits for x in layouts(NANO, 800_000, 11)] == [False, False, False]


def test_train_board_picks_a_larger_model_with_patch_auto() -> None:
    ram = NANO.mcu.ram_for_arena  # type: ignore[union-attr]
    untiled = choose_size(NANO, 11, patch=False)
    assert (untiled.alpha, untiled.resolution, untiled.patch) == (0.35, 96, None)
    choice = choose_size(NANO, 11)
    assert (choice.alpha, choice.resolution) == (0.35, 128)
    assert choice.patch is not None and choice.arena is not None and choice.arena <= ram
    assert mobilenet_v2_arena(0.35, 128, 4, 11).total > ram  # untiled it would not fit
    assert "--patch auto" in choice.reason and "without --patch the largest is " \
        "MobileNetV2 0.35/96" in choice.reason
    assert [x["fits"] for x in choice.layouts] == [True, False, True]
    assert "layouts it fits: built in (default), --model-slot --fallback none" in choice.reason
    assert choice.to_dict()["patch"] == choice.patch


def test_too_big_arena_names_patch_auto(tmp_path: Path) -> None:
    """An export whose arena misses the RAM says that --patch auto makes it fit (and by how
    much); exporting with it then fits."""
    path = tmp_path / "mnv2_035_128.tflite"
    path.write_bytes(mobilenet_v2_model(0.35, 128, 11).content)
    with pytest.raises(BudgetError) as refused:
        export_model(path, "nano33ble", tmp_path / "off")
    message = str(refused.value)
    assert "too many; --patch auto (tiles " in message and "MAC overhead" in message
    exported = export_model(path, "nano33ble", tmp_path / "auto", patch="auto")
    assert exported.patch is not None
    assert f"arena about {exported.arena.size:,} B" in message


def test_member_plans_are_cached_by_code_hash(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A plan is made once per cache (a corrupt entry is made again), keyed by its arguments."""
    from firmware_export.patch import family

    calls: list[tuple[float, int]] = []

    def plan(width: float, resolution: int, *_: object) -> family.PatchedMember:
        calls.append((width, resolution))
        return family.PatchedMember(width, resolution, 300_000, 200_000, "3x3", 660_000)

    monkeypatch.setenv("EDGE_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(family, "_plan_member", plan)
    monkeypatch.setattr(family, "_PLANNED", {})
    abi = default_abi(4, "cortex-m4")
    first = family.plan_member(0.35, 128, 11, "cmsis-nn", abi, 256)
    family._PLANNED.clear()
    assert family.plan_member(0.35, 128, 11, "cmsis-nn", abi, 256) == first
    assert calls == [(0.35, 128)]
    family.plan_member(0.35, 160, 11, "cmsis-nn", abi, 256)
    assert calls == [(0.35, 128), (0.35, 160)]
    for entry in (tmp_path / family.CACHE_FOLDER).iterdir():
        entry.write_text("{not json", encoding="utf-8")
    family._PLANNED.clear()
    assert family.plan_member(0.35, 128, 11, "cmsis-nn", abi, 256) == first
    assert calls[-1] == (0.35, 128) and len(calls) == 3
