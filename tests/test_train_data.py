"""edge-model's pure parts on plain data: split by hash, folder layout errors, augmentation,
class weights, stages, confusion matrices, board sizing, progress lines, embedded labels and
edge-run's frame recorder. No TensorFlow needed."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.boards import get_board
from edge.cli.progress import clock, training_line
from edge.demo.scene import write_image_folder
from edge.errors import SinkError, TrainingError
from edge.model.labels import embedded_file, embedded_labels, with_embedded_files
from edge.modelbuild.augment import Augmentation, augment_batch
from edge.modelbuild.dataset import SplitFractions, load_images, scan_folder, split_of
from edge.modelbuild.evaluate import confusion_matrix, precision_recall
from edge.modelbuild.report import confusion_png, confusion_text
from edge.modelbuild.sizing import choose_size
from edge.modelbuild.train import (
    Progress,
    TrainSettings,
    batch_norm_momentum,
    class_weights,
    epoch_order,
    is_trainable,
    plan_stages,
)
from edge.pipeline.recorder import FrameRecorder, RecordOptions


def _folder(tmp_path: Path, layout: dict[str, int]) -> Path:
    root = tmp_path / "data"
    for name, count in layout.items():
        (root / name).mkdir(parents=True)
        for i in range(count):
            image = np.full((8, 8, 3), (10 * i) % 256, np.uint8)
            cv2.imwrite(str(root / name / f"{i}.png"), image)
    return root


def test_split_is_fixed_by_the_path_alone(tmp_path: Path) -> None:
    root = _folder(tmp_path, {"a": 40, "b": 40})
    before = {s.relative: s.split for s in scan_folder(root).samples}
    for i in range(40, 80):  # adding images leaves every old image where it was
        cv2.imwrite(str(root / "a" / f"{i}.png"), np.zeros((8, 8, 3), np.uint8))
    after = {s.relative: s.split for s in scan_folder(root).samples}
    assert all(after[name] == split for name, split in before.items())
    assert len(after) == 120


def test_split_shares_follow_the_fractions() -> None:
    fractions = SplitFractions(val=0.2, test=0.3)
    splits = [split_of(f"c/{i}.jpg", fractions) for i in range(20000)]
    assert abs(splits.count("test") / 20000 - 0.3) < 0.015
    assert abs(splits.count("val") / 20000 - 0.2) < 0.015


@pytest.mark.parametrize(("layout", "message"), [
    ({}, "no class folders"),
    ({"only": 3}, "only one class (only)"),
    ({"a": 3, "empty": 0}, "class 'empty' has no images"),
])
def test_bad_layouts_are_one_clear_error(tmp_path: Path, layout: dict[str, int],
                                         message: str) -> None:
    root = _folder(tmp_path, layout)
    root.mkdir(exist_ok=True)
    with pytest.raises(TrainingError, match=message.replace("(", r"\(").replace(")", r"\)")):
        scan_folder(root)


def test_undecodable_images_are_listed_and_skipped(tmp_path: Path) -> None:
    root = _folder(tmp_path, {"a": 3, "b": 3})
    (root / "a" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    loaded = load_images(scan_folder(root).split("all"), (4, 4))
    assert loaded.skipped == ("a/broken.jpg",)
    assert loaded.pixels.shape == (6, 4, 4, 3) and len(loaded.files) == 6


def test_rendered_folder_has_the_training_layout(tmp_path: Path) -> None:
    write_image_folder(tmp_path, 3, size=(64, 48), labels=("1", "nothing"), save_size=(32, 32))
    folder = scan_folder(tmp_path)
    assert folder.classes == ("1", "nothing") and len(folder.samples) == 6
    assert cv2.imread(str(folder.samples[0].path)).shape == (32, 32, 3)


def test_augmentation_is_reproducible_and_bounded() -> None:
    images = np.random.default_rng(0).integers(0, 256, (4, 16, 16, 3), dtype=np.uint8)
    a = augment_batch(np.random.default_rng(1), images, Augmentation())
    b = augment_batch(np.random.default_rng(1), images, Augmentation())
    assert np.array_equal(a, b) and a.dtype == np.float32
    assert a.min() >= 0 and a.max() <= 255 and not np.array_equal(a, images)
    same = augment_batch(np.random.default_rng(1), images, Augmentation.none())
    assert np.array_equal(same, images.astype(np.float32))
    with pytest.raises(TrainingError, match=r"crop \(=0.1\)"):
        Augmentation(crop=0.1)


def test_class_weights_balance_the_classes() -> None:
    labels = np.array([0] * 30 + [1] * 10)
    weights = class_weights(labels, 2)
    assert weights[0] * 30 == pytest.approx(weights[1] * 10)
    assert np.mean(weights[labels]) == pytest.approx(1.0)


def test_batch_norm_statistics_settle_within_an_epoch() -> None:
    # Keras' MobileNetV2 keeps 0.999 of its moving statistics per step: after a few hundred
    # steps they are still near their initial values and inference sits at chance while the
    # training accuracy (batch statistics) rises. From scratch, edge-model train uses this.
    assert batch_norm_momentum(8) == pytest.approx(0.9)
    assert batch_norm_momentum(100) == pytest.approx(0.97)
    assert batch_norm_momentum(750) == pytest.approx(0.99)
    assert batch_norm_momentum(0) == pytest.approx(0.9)


def test_every_batch_has_the_same_size() -> None:
    order = epoch_order(np.random.default_rng(0), 10, 12)
    assert len(order) == 12 and set(order[:10]) == set(range(10))


def test_stages_and_fine_tuned_layers() -> None:
    assert [s.name for s in plan_stages(TrainSettings(epochs=5))] == ["train"]
    stages = plan_stages(TrainSettings(weights="imagenet", epochs=5, head_epochs=2))
    assert [(s.name, s.epochs, s.trainable_blocks) for s in stages] == [
        ("head", 2, 0), ("fine-tune", 3, 3)]
    assert stages[1].learning_rate == pytest.approx(stages[0].learning_rate / 10)
    assert is_trainable("block_16_project", 3) and is_trainable("block_14_expand", 3)
    assert not is_trainable("block_13_expand", 3) and not is_trainable("Conv1", 3)
    assert is_trainable("Conv_1_bn", 1) and not is_trainable("block_16_project", 0)
    with pytest.raises(TrainingError, match=r"epochs \(=0\) must be >= 1"):
        TrainSettings(epochs=0)


def test_from_scratch_small_inputs_first_train_a_third_larger() -> None:
    from edge.modelbuild.train import larger_resolution

    assert [larger_resolution(r) for r in (32, 64, 96, 112, 128, 160, 224)] == [
        48, 96, 128, 160, 0, 0, 0]
    stages = plan_stages(TrainSettings(resolution=96, epochs=200))
    assert [(s.name, s.epochs, s.resolution) for s in stages] == [
        ("train 128", 110, 128), ("train", 90, 0)]
    assert stages[0].learning_rate == stages[1].learning_rate
    assert [(s.name, s.epochs) for s in plan_stages(TrainSettings(resolution=160, epochs=200))
            ] == [("train", 200)]
    assert [s.name for s in plan_stages(TrainSettings(resolution=96, epochs=9))] == ["train"]
    # with pre-trained weights the model learns at the size it was asked for
    pretrained = plan_stages(TrainSettings(resolution=96, weights="imagenet", epochs=30))
    assert {s.resolution for s in pretrained} == {0}


def test_confusion_precision_recall_on_a_hand_count() -> None:
    truth = np.array([0, 0, 0, 1, 1, 2])
    predicted = np.array([0, 0, 1, 1, 1, 1])
    matrix = confusion_matrix(truth, predicted, 3)
    assert matrix.tolist() == [[2, 1, 0], [0, 2, 0], [0, 1, 0]]
    precision, recall = precision_recall(matrix)
    assert precision[:2].tolist() == [1.0, 0.5] and np.isnan(precision[2])
    assert recall.tolist() == pytest.approx([2 / 3, 1.0, 0.0])
    assert "2" in confusion_text(matrix, ["a", "b", "c"]).splitlines()[2]
    image = cv2.imdecode(np.frombuffer(confusion_png(matrix, ["a", "b", "c"], "t"), np.uint8),
                         cv2.IMREAD_COLOR)
    assert image is not None and image.shape[0] > 3 * 40


def test_board_sizing_picks_the_largest_that_fits() -> None:
    from firmware_export.plan.mobilenet import mobilenet_v2_arena, mobilenet_v2_model_bytes

    board = get_board("nano33ble")
    choice = choose_size(board, 11, patch=False)
    assert (choice.alpha, choice.resolution) == (0.35, 96)
    assert choice.arena is not None and choice.arena <= board.mcu.ram_for_arena  # type: ignore
    assert "next larger, MobileNetV2 0.5/96, needs an arena" in choice.reason
    assert "fits nano33ble" in choice.reason
    assert mobilenet_v2_arena(0.5, 96, 4, 11).total > board.mcu.ram_for_arena  # type: ignore
    # The flash estimate matches the shipped demo model (MobileNetV2 0.35/96, 11 classes).
    from edge.demo import model_path

    actual = model_path().stat().st_size
    assert abs(mobilenet_v2_model_bytes(0.35, 11) - actual) < 0.01 * actual
    assert choose_size(get_board("rpi4"), 3).resolution == 224


def test_progress_lines_show_eta_and_results() -> None:
    running = Progress("train", 2, 10, 5, 20, 0.5, 0.75, 12.0, 30.0, 400.0)
    assert training_line(running).endswith("ETA epoch 0:30, run <= 6:40")
    done = Progress("train", 2, 10, 20, 20, 0.4, 0.8, 42.0, 0.0, 320.0, 0.9, 0.3, True,
                    waiting_for="runs at least to epoch 4")
    assert training_line(done).endswith(
        "val acc 90.0%  (best so far); runs at least to epoch 4; run <= 5:20 more")
    assert clock(3725) == "1:02:05"
    # The first step of a stage traces the graph: no ETA from it.
    first = Progress("train", 1, 10, 1, 20, 1.1, 0.3, 40.0, math.nan, math.nan)
    assert training_line(first).endswith("ETA after the first step (tracing the graph)")


def test_count_bar_in_a_log_writes_a_line_per_quarter() -> None:
    import io

    from edge.cli.progress import CountBar

    log = io.StringIO()
    bar = CountBar("calibration images", log)
    for done in range(1, 301):
        bar(done, 300)
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue() and len(lines) == 5, lines  # 0, 25, 50, 75, 100 %
    assert lines[-1].endswith("300/300 calibration images")


def test_labels_embedded_after_the_flatbuffer_round_trip() -> None:
    content = with_embedded_files(b"FLATBUFFER", ["cat", "dog"], {"x.json": b"{}"})
    assert content.startswith(b"FLATBUFFER")
    assert embedded_labels(content) == ("cat", "dog")
    assert embedded_file(content, "x.json") == b"{}"
    with pytest.raises(ValueError, match="line break"):
        with_embedded_files(b"F", ["a\nb"])


def test_recorder_saves_every_nth_frame_as_the_model_sees_it(tmp_path: Path) -> None:
    recorder = FrameRecorder(RecordOptions(str(tmp_path), "empty", every=3), (32, 24), "crop")
    frame = np.zeros((120, 320, 3), np.uint8)
    frame[:, 140:180] = (255, 0, 0)  # a red bar in the middle survives the centre crop
    for _ in range(7):
        recorder(frame)
    files = sorted((tmp_path / "empty").iterdir())
    assert [f.name[-10:] for f in files] == ["000000.png", "000003.png", "000006.png"]
    saved = cv2.cvtColor(cv2.imread(str(files[0])), cv2.COLOR_BGR2RGB)
    assert saved.shape == (24, 32, 3) and saved[12, 16, 0] > 200 and saved[12, 16, 2] < 50
    for bad in ("../up", ".hidden", "a/b", ""):
        with pytest.raises(SinkError, match="--label"):
            FrameRecorder(RecordOptions(str(tmp_path), bad), (32, 24))


# --- the CLI's refusals, all before TensorFlow loads ---------------------------------------------


def _error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("edge-model: error:")]
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize(("layout", "message"), [
    ({"cats": 4}, "only one class (cats)"),
    ({"cats": 4, "dogs": 0}, "class 'dogs' has no images"),
])
def test_train_refuses_bad_folders_with_one_line(
    tmp_path: Path, layout: dict[str, int], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from edge.cli.model import main

    root = _folder(tmp_path, layout)
    out = tmp_path / "m.keras"
    assert main(["train", str(root), str(out)]) == 2
    assert message in _error_line(capsys)
    assert not out.exists()


def test_quantize_without_a_training_record_asks_for_images(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import zipfile

    from edge.cli.model import main

    model = tmp_path / "foreign.keras"
    with zipfile.ZipFile(model, "w") as archive:
        archive.writestr("config.json", "{}")
    assert main(["quantize", str(model)]) == 2
    line = _error_line(capsys)
    assert "has no training record" in line and "--representative DIR" in line
    assert not (tmp_path / "foreign.tflite").exists()


def test_quantize_usage_matches_its_parsing(capsys: pytest.CaptureFixture[str]) -> None:
    from edge.cli.model import main

    with pytest.raises(SystemExit):
        main(["quantize", "--help"])
    usage = capsys.readouterr().out.split("\n\n")[0]
    assert "[--representative DIR|FILE]... [--labels FILE] [--json] [--max-image-pixels N] " \
        "MODEL.keras [OUT.tflite]" \
        in " ".join(usage.split())


def test_record_options_need_a_folder_and_a_real_label(capsys: pytest.CaptureFixture[str],
                                                       tmp_path: Path) -> None:
    from edge.cli.run import main as edge_run

    assert edge_run(["--camera", "demo", "--record", str(tmp_path), "--label", "",
                     "--max-frames", "1"]) == 2
    assert "--label needs a class name" in capsys.readouterr().err
    assert edge_run(["--camera", "demo", "--record-size", "64x64", "--max-frames", "1"]) == 2
    assert "--record-size is about recorded frames; add --record DIR" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        edge_run(["--camera", "demo", "--record", str(tmp_path), "--record-size", "64"])
    assert "is not a size WxH" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_edge_run_records_frames_at_the_model_input_size(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from edge.cli.run import main as edge_run

    assert edge_run(["--camera", "demo", "--record", str(tmp_path), "--label", "seen",
                     "--every", "2", "--max-frames", "5"]) == 0
    files = sorted((tmp_path / "seen").glob("*.png"))
    assert len(files) == 3  # frames 0, 2 and 4 of 5
    assert cv2.imread(str(files[0])).shape == (96, 96, 3)  # the demo model's input
    err = capsys.readouterr().err
    assert f"recording every 2nd frame to {tmp_path / 'seen'}/ at 96x96" in err
    assert f"recorded 3 frames to {tmp_path / 'seen'}/\n" in err


def test_edge_run_records_at_the_size_asked_and_whole_frames_for_labelling(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from edge.cli.run import main as edge_run

    assert edge_run(["-q", "--camera", "demo", "--record", str(tmp_path / "a"), "--label", "x",
                     "--record-size", "160x120", "--max-frames", "2"]) == 0
    assert {cv2.imread(str(f)).shape for f in (tmp_path / "a" / "x").glob("*.png")} \
        == {(120, 160, 3)}
    assert edge_run(["--camera", "demo", "--record", str(tmp_path / "b"), "--every", "3",
                     "--max-frames", "4"]) == 0
    files = sorted((tmp_path / "b" / "images").glob("*.png"))
    assert len(files) == 2
    frame = cv2.imread(str(files[0]))
    assert frame.shape[:2] != (96, 96) and frame.shape[2] == 3  # the camera's own size
    err = capsys.readouterr().err
    assert "to " + str(tmp_path / "b" / "images") + "/ at the camera's size" in err
    assert "recorded 2 frames to " in err


def test_recorder_counts_frames_it_cannot_save_and_goes_on(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    recorder = FrameRecorder(RecordOptions(str(tmp_path), "full"), (16, 16))
    frame = np.zeros((32, 32, 3), np.uint8)
    recorder(frame)
    shutil.rmtree(tmp_path / "full")
    (tmp_path / "full").write_bytes(b"")  # the folder is gone: every write fails
    for _ in range(3):
        recorder(frame)
    assert recorder.counters() == {"saved": 1, "failed": 3}
    warnings = [r for r in caplog.records if "cannot save the recorded frame" in r.message]
    assert len(warnings) == 1  # said once, counted always
    assert not [p for p in tmp_path.iterdir() if p.name != "full"]  # no temp files left


def test_train_refuses_a_missing_weights_file(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    from edge.cli.model import main

    root = _folder(tmp_path, {"a": 3, "b": 3})
    assert main(["train", str(root), str(tmp_path / "m.keras"), "--weights",
                 str(tmp_path / "nope.h5")]) == 2
    assert "nope.h5: no such weights file" in _error_line(capsys)


def test_verbosity_is_taken_after_the_sub_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from edge.cli.model import main as edge_model

    for flag in ("-q", "-v", "-qq"):
        capsys.readouterr()
        code = edge_model(["build", "--alpha", "0.35", "--resolution", "96", "--classes", "2",
                           str(tmp_path / "m.txt"), flag])
        err = capsys.readouterr().err
        assert code == 2 and "must end in .keras" in err and "unrecognized" not in err, err
