"""Two-stage patches (--patch auto): a fine grid over the largest stages, then a coarser grid up
to the same cut. Outputs byte-identical and the prediction exact on the pip TFLM."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.model import read_model
from firmware_export.patch.choose import choose_patch
from firmware_export.patch.rewrite import describe_chain, rewrite_model
from firmware_export.plan.abi import get_abi
from tests.conftest import ROOT
from tests.test_patch_rewrite import check_exact

pytest.importorskip("tflite_micro", reason="needs the tflite-micro package (the mcu extra)")

DEMO_MODEL = ROOT / "edge" / "demo" / "demo_model.tflite"


def test_second_stage_starts_where_the_first_ends(tmp_path: Path) -> None:
    if not DEMO_MODEL.is_file():
        pytest.skip(f"{DEMO_MODEL} is missing")
    model = read_model(DEMO_MODEL)
    chain = describe_chain(model)
    first = chain.splits[2]
    stage1 = rewrite_model(model, chain, first, (3, 3))
    tiled = stage1.model
    name = model.main.tensors[chain.layers[first].output].name
    index = next(t.index for t in tiled.main.tensors if t.name == name)
    start = next(op.index for op in tiled.main.operators if index in op.inputs)
    chain2 = describe_chain(tiled, start)
    assert chain2.layers[0].op == start
    stage2 = rewrite_model(tiled, chain2, chain2.splits[3], (2, 2))
    check_exact(DEMO_MODEL, stage2.content, tmp_path)


def test_auto_reports_its_stages(tmp_path: Path) -> None:
    if not DEMO_MODEL.is_file():
        pytest.skip(f"{DEMO_MODEL} is missing")
    model = read_model(DEMO_MODEL)
    choice = choose_patch(model, "auto", "reference", get_abi("pip"), offline_plan="off")
    assert choice is not None and choice.after < choice.before
    assert 1 <= len(choice.stages) <= 2
    data = choice.to_dict()
    assert data["grid"] == "+".join(s["grid"] for s in data["stages"])
    assert data["mac_overhead"] <= 0.25
    assert choice.rewrite.original == model.content
    check_exact(DEMO_MODEL, choice.rewrite.content, tmp_path)


def test_describe_chain_refuses_a_start_inside_a_block() -> None:
    from edge.errors import ExportError
    from tests.conftest import shared_file

    model = read_model(shared_file("models/tf2_mobilenet_v2_1.0_224_ptq.tflite"))
    with pytest.raises(ExportError, match="cannot be tiled from operator 8"):
        describe_chain(model, 8)  # the residual block's input is alive beside the expand


@pytest.mark.slow
def test_tiles_start_after_a_leading_transpose(tmp_path: Path) -> None:
    pytest.importorskip("tensorflow", reason="building models needs tensorflow")
    from tests.patch_models import nchw_input_net

    path = nchw_input_net(48)
    model = read_model(path)
    assert model.main.operators[0].opcode == "TRANSPOSE"
    choice = choose_patch(model, (2, 2), "reference", get_abi("pip"), offline_plan="off")
    assert choice is not None and choice.stages[0].ops[0] >= 1
    check_exact(path, choice.rewrite.content, tmp_path)
