"""edge-inspect: what a .tflite model costs, layer by layer, and where it can run."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge.boards import get_board, load_boards
from edge.cli.common import (
    add_boards_dir_arg,
    add_common_args,
    add_logging_args,
    configure_logging,
    print_json,
    run_command,
)
from edge.errors import OutputError
from edge.model import read_model
from edge.model.analysis import ModelReport, analyze
from edge.model.layer_chart import PLOT_FORMATS, chart_png, chart_svg, layer_chart, layers_csv
from edge.model.types import Model, Tensor
from edge.outputs import atomic_write_bytes

if TYPE_CHECKING:
    from firmware_export.plan.fit import BoardFit

PROG = "edge-inspect"
EXAMPLES = (
    "edge-inspect model.tflite",
    "edge-inspect model.tflite --json | jq .total_macs",
    "edge-inspect model.tflite --activation-bytes 2   # the paper's 16-bit view",
    "edge-inspect model.tflite --board nano33ble --plot memory.svg --csv layers.csv",
    "edge-inspect model.tflite --board nano33ble --patch auto --plot patched.svg",
    "edge-inspect --list-boards",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Per-operator multiply-adds, parameters and live activation memory of a "
                    ".tflite model (tensor lifetimes as TFLite Micro counts them), totals, the "
                    "MobileNetV2 paper's per-resolution memory view, and whether TFLite Micro "
                    "or the Edge TPU can run it.")
    parser.add_argument("model", nargs="?", help="path of a .tflite file")
    parser.add_argument("--json", action="store_true", help="print one JSON document for scripts")
    parser.add_argument("--activation-bytes", type=int, choices=(1, 2, 4), default=None,
                        metavar="N", help="bytes per activation for the per-resolution view "
                        "(1 int8, 2 the paper's 16-bit floats, 4 float32; default: the "
                        "model's own activation type)")
    parser.add_argument("--board", metavar="MCU_BOARD",
                        help="say whether and where the model fits this microcontroller board: "
                        "arena in RAM, model in flash, model slot, with what is left (planned as "
                        "edge-export does)")
    parser.add_argument("--margin", type=_non_negative, default=None, metavar="BYTES",
                        help="bytes added to the predicted arena with --board (default: "
                        "edge-export's)")
    parser.add_argument("--patch", default="off", metavar="MODE",
                        help="inspect the model as edge-export --patch rewrites it: off "
                        "(default), auto or a grid RxC (e.g. 3x3); planned for --board, else "
                        "for the pip tflite-micro interpreter; the table, --plot and --board "
                        "then show the tiled model")
    parser.add_argument("--max-overhead", type=float, default=0.25, metavar="FRACTION",
                        help="with --patch auto: the largest extra share of multiply-adds "
                        "(default 0.25)")
    parser.add_argument("--plot", type=_plot_path, metavar="FILE.png|FILE.svg",
                        help="draw per-layer live memory and multiply-adds (PNG or SVG)")
    parser.add_argument("--csv", type=Path, metavar="FILE.csv",
                        help="write the per-layer table as CSV")
    parser.add_argument("--list-boards", action="store_true",
                        help="list the board profiles found and exit")
    add_boards_dir_arg(parser)
    add_logging_args(parser)
    add_common_args(parser, EXAMPLES)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.verbose, args.quiet)
    if not args.list_boards and not args.model:
        parser.error("give a MODEL to inspect, or --list-boards")
    return run_command(PROG, lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    if args.list_boards:
        return _list_boards(args)
    model = read_model(args.model)
    patched = None
    if args.patch.strip().lower() != "off":
        model, patched = _patch(model, args)
    width = args.activation_bytes or _activation_width(model)
    report = analyze(model, width)
    fit = _board_fit(model, args) if args.board else None  # before any output
    if args.plot:
        chart = layer_chart(report)
        _write(args.plot, chart_png(chart) if args.plot.suffix.lower() == ".png"
               else chart_svg(chart).encode("utf-8"))
    if args.csv:
        _write(args.csv, layers_csv(report).encode("utf-8"))
    if args.json:
        data = report.to_dict()
        data["inputs"] = [_tensor_info(t) for t in model.input_tensors]
        data["outputs"] = [_tensor_info(t) for t in model.output_tensors]
        if fit is not None:
            data["fit"] = fit.to_dict()
        if args.patch.strip().lower() != "off":
            data["patch"] = None if patched is None else patched.to_dict()
        print_json(data)
    else:
        if args.patch.strip().lower() != "off":
            print(patched.summary() if patched is not None
                  else "patch: no tile grid makes the arena smaller; the model stays untiled")
        print(format_report(model, report))
        if fit is not None:
            print("\n" + format_fit(fit))
    return 0


def _patch(model: Model, args: argparse.Namespace) -> tuple[Model, Any]:
    from firmware_export.plan.fit import patch_model

    board = get_board(args.board, args.boards_dir, kind="mcu") if args.board else None
    return patch_model(model, args.patch, board, max_overhead=args.max_overhead)


def _board_fit(model: Model, args: argparse.Namespace) -> BoardFit:
    from firmware_export.plan.fit import DEFAULT_MARGIN, board_fit

    board = get_board(args.board, args.boards_dir, kind="mcu")
    margin = DEFAULT_MARGIN if args.margin is None else args.margin
    return board_fit(model, board, margin)


def format_fit(fit: BoardFit) -> str:
    """Whether and where the model fits the board: a table of placements, then the arena."""
    arena = fit.arena
    built_in, slot = fit.placements[:2], fit.placements[2:]
    verdict = "fits" if fit.fits else "DOES NOT FIT"
    if fit.fits and fit.fits_with_slot is False:
        verdict += " with the model built in; not with --model-slot (edge-flash updates)"
    rows = [("", "needs B", "where", "at", "available B", "left B")]
    for p in (*built_in, *slot):
        left = f"{p.left:,} ({p.left / p.available:.1%})" if p.fits else f"{p.left:,} (no)"
        rows.append((p.what, f"{p.need:,}", p.region, f"0x{p.origin:08X}", f"{p.available:,}",
                     left))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [f"on {fit.board.name} ({fit.board.description}): {verdict}"]
    for row in rows:
        lines.append("  " + "  ".join(cell.ljust(w) if i in (0, 2, 3) else cell.rjust(w)
                                      for i, (cell, w) in enumerate(zip(row, widths, strict=True))
                                      ).rstrip())
    lines.append(f"  arena = planned {arena.minimum:,} B (head {arena.plan.head:,} + tail "
                 f"{arena.tail.total:,}) + margin {arena.margin:,} B; {arena.kernels} kernels, "
                 f"{arena.pointer_size}-byte pointers")
    if fit.offline is not None:
        lines.append(f"  offline plan: head {fit.offline.head:,} B instead of TFLM's greedy "
                     f"{fit.offline.greedy_head:,} B (edge-export writes it into the model)")
    if fit.advice:
        lines.append(f"  {fit.advice}")
    return "\n".join(lines)


def _write(path: Path, data: bytes) -> None:
    """Write ``path`` whole or not at all."""
    try:
        atomic_write_bytes(path, data)
    except OSError as e:
        raise OutputError(f"cannot write {path}: {e.strerror or e}") from e


def _plot_path(text: str) -> Path:
    path = Path(text)
    if path.suffix.lower().lstrip(".") not in PLOT_FORMATS:
        raise argparse.ArgumentTypeError(f"{text!r} must end in .png or .svg")
    return path


def _non_negative(text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a byte count >= 0")
    return value


def _list_boards(args: argparse.Namespace) -> int:
    boards = load_boards(args.boards_dir)
    if args.json:
        print_json([{"name": b.name, "kind": b.kind, "description": b.description,
                     "source": str(b.source)} for b in boards.values()])
        return 0
    width = max([len("board"), *(len(b.name) for b in boards.values())])
    print(f"{'board':{width}}  {'kind':6} description")
    for board in sorted(boards.values(), key=lambda b: (b.kind, b.name)):
        print(f"{board.name:{width}}  {board.kind:6} {board.description}")
    return 0


def _activation_width(model: Model) -> int:
    inputs = model.input_tensors
    return inputs[0].itemsize if inputs and inputs[0].itemsize else 1


def _tensor_info(tensor: Tensor) -> dict[str, object]:
    quant = tensor.quantization.to_dict() if tensor.quantization else None
    return {"name": tensor.name, "shape": list(tensor.shape), "dtype": tensor.dtype,
            "quantization": quant}


def format_report(model: Model, report: ModelReport) -> str:
    """The human-readable report."""
    lines = [f"{model.source}: {len(model.main.operators)} operators, "
             f"{len(model.main.tensors)} tensors, {len(model.content):,} bytes", ""]
    lines.append(f"{'#':>3}  {'op':<20} {'output shape':<18} {'in B':>10} {'out B':>10} "
                 f"{'live B':>10} {'MACs':>12} {'params':>9}")
    for op in report.ops:
        shape = "x".join(str(d) for d in op.output_shape)
        lines.append(f"{op.index:>3}  {op.opcode:<20.20} {shape:<18} {op.input_bytes:>10,} "
                     f"{op.output_bytes:>10,} {op.live_bytes:>10,} {op.macs:>12,} "
                     f"{op.params:>9,}")
    peak, largest = report.ops[report.peak_op], report.ops[report.largest_io_op]
    lines += [
        "",
        f"parameters      {report.total_params:>15,}  ({report.definitions['params']})",
        f"multiply-adds   {report.total_macs:>15,}  ({report.total_macs / 1e6:.1f} M)",
        f"weight bytes    {report.weight_bytes:>15,}",
        f"peak live       {report.peak_live_bytes:>15,}  bytes at op {peak.index} "
        f"({peak.opcode})",
        f"largest in+out  {largest.input_bytes + largest.output_bytes:>15,}  bytes at op "
        f"{largest.index} ({largest.opcode})",
        "",
        f"per resolution at {report.bytes_per_activation} byte(s) per activation "
        "(MobileNetV2 paper, Table 3; the paper counts bottlenecks):",
        f"  {'size':<10} {'max ch':>7} {'KB':>10} {'bottleneck ch':>14} {'KB':>8}",
    ]
    for row in report.resolutions:
        bn_ch = row.bottleneck_channels or "-"
        bn_kb = f"{row.bottleneck_kilobytes:.0f}" if row.bottleneck_kilobytes else "-"
        size = f"{row.height}x{row.width}"
        lines.append(f"  {size:<10} {row.max_channels:>7} "
                     f"{row.kilobytes:>10.0f} {bn_ch:>14} {bn_kb:>8}")
    micro = "yes" if report.micro_runnable else "no"
    tpu = "compiled for it (edgetpu-custom-op)" if report.edgetpu_compiled else "CPU model"
    lines += [
        "",
        f"TFLite Micro    {micro}: {report.micro_reason}",
        f"Edge TPU        {tpu}",
        f"labels          {report.labels or 'none'} embedded",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
