"""Line charts as PNG files with Pillow alone (already installed with torchvision), so benchmarks
need no plotting library: panels side by side, one line per series with optional error bars,
log2 or linear x axis, a legend under each panel.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

__all__ = ["Panel", "Series", "save_line_chart"]

# Colour-blind-safe palette (Okabe-Ito), then greys.
COLOURS = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000",
           "#777777", "#BBBBBB"]
PANEL_W, PANEL_H = 560, 400
MARGIN_L, MARGIN_R, MARGIN_T, MARGIN_B = 64, 20, 50, 48
LEGEND_ROW = 18


@dataclass
class Series:
    name: str
    points: list[tuple[float, float, float]]  # (x, y, error bar half-height; 0 for none)


@dataclass
class Panel:
    title: str
    x_label: str
    y_label: str
    series: list[Series] = field(default_factory=list)
    log2_x: bool = True
    y_range: tuple[float, float] | None = None  # default: fitted to the data


def save_line_chart(path: str | Path, panels: list[Panel]) -> Path:
    """Draw ``panels`` left to right into one PNG at ``path``."""
    rows = max((len(p.series) for p in panels), default=0)
    height = PANEL_H + rows * LEGEND_ROW + 8
    image = Image.new("RGB", (PANEL_W * max(len(panels), 1), height), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=13)
    for i, panel in enumerate(panels):
        _draw_panel(draw, font, panel, left=i * PANEL_W)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


def _draw_panel(draw: ImageDraw.ImageDraw, font: ImageFont.FreeTypeFont, panel: Panel, left: int) -> None:
    x0, x1 = left + MARGIN_L, left + PANEL_W - MARGIN_R
    y0, y1 = MARGIN_T, PANEL_H - MARGIN_B
    xs = sorted({x for s in panel.series for x, _, _ in s.points})
    if not xs:
        return
    fx = (lambda x: math.log2(x)) if panel.log2_x else (lambda x: x)
    lo_x, hi_x = fx(xs[0]), fx(xs[-1])
    pad_x = 0.5 if hi_x == lo_x else 0.05 * (hi_x - lo_x)
    lo_x, hi_x = lo_x - pad_x, hi_x + pad_x
    lo_y, hi_y = panel.y_range or _fit_range([v for s in panel.series for _, y, e in s.points for v in (y - e, y + e)])

    def to_px(x: float, y: float) -> tuple[float, float]:
        return (x0 + (fx(x) - lo_x) / (hi_x - lo_x) * (x1 - x0),
                y1 - (y - lo_y) / (hi_y - lo_y) * (y1 - y0))

    draw.rectangle([x0, y0, x1, y1], outline="black")
    for tick in _ticks(lo_y, hi_y):
        _, py = to_px(xs[0], tick)
        draw.line([x0, py, x1, py], fill="#E5E5E5")
        draw.text((x0 - 6, py), f"{tick:g}", fill="black", font=font, anchor="rm")
    for x in xs:
        px, _ = to_px(x, lo_y)
        draw.line([px, y1, px, y1 + 4], fill="black")
        draw.text((px, y1 + 6), f"{x:g}", fill="black", font=font, anchor="mt")
    draw.text(((x0 + x1) / 2, 6), panel.title, fill="black", font=font, anchor="mt")
    draw.text(((x0 + x1) / 2, PANEL_H - 8), panel.x_label, fill="black", font=font, anchor="md")
    draw.text((left + 4, y0 - 22), panel.y_label, fill="black", font=font, anchor="lt")
    for k, series in enumerate(panel.series):
        colour = COLOURS[k % len(COLOURS)]
        pixels = [to_px(x, y) for x, y, _ in sorted(series.points)]
        if len(pixels) > 1:
            draw.line(pixels, fill=colour, width=2)
        for (x, y, err), (px, py) in zip(sorted(series.points), pixels):
            if err > 0:
                _, top = to_px(x, y + err)
                _, bottom = to_px(x, y - err)
                draw.line([px, top, px, bottom], fill=colour, width=1)
                draw.line([px - 3, top, px + 3, top], fill=colour)
                draw.line([px - 3, bottom, px + 3, bottom], fill=colour)
            draw.ellipse([px - 3, py - 3, px + 3, py + 3], fill=colour)
        ly = PANEL_H + k * LEGEND_ROW
        draw.line([x0, ly + 7, x0 + 24, ly + 7], fill=colour, width=3)
        draw.text((x0 + 30, ly), series.name, fill="black", font=font)


def _fit_range(values: list[float]) -> tuple[float, float]:
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return 0.0, 1.0
    lo, hi = min(finite), max(finite)
    pad = 0.05 * (hi - lo) if hi > lo else 0.5
    return lo - pad, hi + pad


def _ticks(lo: float, hi: float, target: int = 6) -> list[float]:
    """Round tick values (1, 2 or 5 times a power of ten apart) inside [lo, hi]."""
    raw = (hi - lo) / target
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(lo / step) * step
    return [round(first + i * step, 10) for i in range(int((hi - first) / step + 1e-9) + 1)]
