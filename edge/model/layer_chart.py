"""Per-layer live memory and multiply-adds as a chart (SVG text or PNG) and as CSV.

What tflite-tools users look at: one bar per operator, live activation bytes above, multiply-adds
below, the peak-memory operator marked. :func:`layer_chart` computes the geometry as plain data;
:func:`chart_svg` and :func:`chart_png` only draw it (SVG is text, escaped in one place; PNG is
drawn with OpenCV, imported when called). No plotting library is needed.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from edge.model.analysis import ModelReport, OpReport

Color = tuple[int, int, int]  # RGB
MEMORY: Color = (72, 120, 208)
MACS: Color = (238, 133, 74)
PEAK: Color = (196, 40, 40)
INK: Color = (40, 40, 40)
PLOT_FORMATS = ("png", "svg")
CSV_FIELDS = ("index", "op", "output_shape", "input_bytes", "output_bytes", "live_bytes",
              "macs", "params")


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    color: Color
    series: str  # "memory" or "macs"
    tip: str


@dataclass(frozen=True)
class Text:
    x: float
    y: float
    text: str
    anchor: str = "start"  # start, middle or end
    size: float = 12.0


@dataclass(frozen=True)
class Rule:
    x1: float
    y1: float
    x2: float
    y2: float


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    bars: tuple[Bar, ...]
    texts: tuple[Text, ...]
    rules: tuple[Rule, ...]


LEFT, RIGHT, TOP, GAP, BOTTOM = 90, 20, 40, 50, 40


def layer_chart(report: ModelReport, width: int = 960, height: int = 560) -> Chart:
    """Two panels over the operators: live bytes (peak in red) and multiply-adds."""
    panel = (height - TOP - GAP - BOTTOM) / 2
    step = (width - LEFT - RIGHT) / max(len(report.ops), 1)
    bars: list[Bar] = []
    name = report.source.replace("\\", "/").rsplit("/", 1)[-1]
    texts = [Text(width / 2, 22, f"{name}: per-layer live memory and multiply-adds",
                  "middle", 14)]
    rules: list[Rule] = []
    panels = (("memory", "live bytes", TOP, lambda op: op.live_bytes),
              ("macs", "multiply-adds", TOP + panel + GAP, lambda op: op.macs))
    for series, title, top, value in panels:
        peak = max((value(op) for op in report.ops), default=0)
        base = top + panel
        rules += [Rule(LEFT, base, width - RIGHT, base), Rule(LEFT, top, LEFT, base)]
        texts += [Text(LEFT - 6, top + 10, _short(peak), "end"),
                  Text(LEFT - 6, base, "0", "end"),
                  Text(LEFT + 4, top - 6, f"{title} (max {peak:,})", "start")]
        for op in report.ops:
            h = panel * value(op) / peak if peak else 0.0
            color = _color(series, op, report)
            bars.append(Bar(LEFT + op.index * step + step * 0.1, base - h, step * 0.8, h, color,
                            series, f"op {op.index} {op.opcode}: {value(op):,} {title}"))
    texts += _ticks(report.ops, step, height - BOTTOM + 16)
    return Chart(width, height, tuple(bars), tuple(texts), tuple(rules))


def _color(series: str, op: OpReport, report: ModelReport) -> Color:
    if series == "macs":
        return MACS
    return PEAK if op.index == report.peak_op else MEMORY


def _ticks(ops: tuple[OpReport, ...], step: float, y: float) -> list[Text]:
    every = max(1, -(-len(ops) * 40 // 860))  # about one label per 40 px
    texts = [Text(LEFT + op.index * step + step / 2, y, str(op.index), "middle", 10)
             for op in ops if op.index % every == 0]
    texts.append(Text(LEFT, y + 16, "operator index", "start", 11))
    return texts


def _short(value: float) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if value >= size:
            return f"{value / size:.1f}{unit}"
    return f"{value:.0f}"


def _hex(color: Color) -> str:
    return "#{:02x}{:02x}{:02x}".format(*color)


def chart_svg(chart: Chart) -> str:
    """The chart as a standalone SVG document (every text escaped here)."""
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{chart.width}" '
           f'height="{chart.height}" viewBox="0 0 {chart.width} {chart.height}" '
           'font-family="sans-serif">',
           f'<rect width="{chart.width}" height="{chart.height}" fill="#ffffff"/>']
    for bar in chart.bars:
        out.append(f'<rect class="{bar.series}" x="{bar.x:.2f}" y="{bar.y:.2f}" '
                   f'width="{bar.width:.2f}" height="{bar.height:.2f}" '
                   f'fill="{_hex(bar.color)}"><title>{escape(bar.tip)}</title></rect>')
    for rule in chart.rules:
        out.append(f'<line x1="{rule.x1:.2f}" y1="{rule.y1:.2f}" x2="{rule.x2:.2f}" '
                   f'y2="{rule.y2:.2f}" stroke="{_hex(INK)}"/>')
    for text in chart.texts:
        out.append(f'<text x="{text.x:.2f}" y="{text.y:.2f}" font-size="{text.size:g}" '
                   f'text-anchor={quoteattr(text.anchor)} fill="{_hex(INK)}">'
                   f'{escape(text.text)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def chart_png(chart: Chart) -> bytes:
    """The chart drawn with OpenCV and encoded as PNG."""
    import cv2
    import numpy as np

    image = np.full((chart.height, chart.width, 3), 255, np.uint8)
    for bar in chart.bars:
        if bar.height > 0:
            top_left = (round(bar.x), round(bar.y))
            bottom_right = (max(round(bar.x + bar.width) - 1, round(bar.x)),
                            round(bar.y + bar.height))
            cv2.rectangle(image, top_left, bottom_right, _bgr(bar.color), cv2.FILLED)
    for rule in chart.rules:
        cv2.line(image, (round(rule.x1), round(rule.y1)), (round(rule.x2), round(rule.y2)),
                 _bgr(INK), 1)
    for text in chart.texts:
        scale = text.size / 30
        ascii_text = text.text.encode("ascii", "replace").decode()
        (w, _h), _ = cv2.getTextSize(ascii_text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        shift = {"start": 0, "middle": w / 2, "end": w}[text.anchor]
        cv2.putText(image, ascii_text, (round(text.x - shift), round(text.y)),
                    cv2.FONT_HERSHEY_SIMPLEX, scale, _bgr(INK), 1, cv2.LINE_AA)
    ok, encoded = cv2.imencode(".png", image)
    if not ok:  # pragma: no cover - OpenCV always encodes an 8-bit BGR image as PNG
        raise RuntimeError("OpenCV could not encode the chart as PNG")
    return encoded.tobytes()


def _bgr(color: Color) -> tuple[int, int, int]:
    return color[2], color[1], color[0]


def layers_csv(report: ModelReport) -> str:
    """One CSV row per operator, the columns of edge-inspect's table."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_FIELDS)
    for op in report.ops:
        row: list[Any] = [op.index, op.opcode, "x".join(str(d) for d in op.output_shape),
                          op.input_bytes, op.output_bytes, op.live_bytes, op.macs, op.params]
        writer.writerow(row)
    return buffer.getvalue()
