"""The report's figures as inline SVG and PNG, drawn without a plotting library."""

from __future__ import annotations

import math
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

import numpy as np

WIDTH, HEIGHT = 440, 260
LEFT, RIGHT, TOP, BOTTOM = 48, 12, 10, 38
PAE_MAX = 31.75  # OpenFold3's largest PAE bin centre, in angstrom
PAE_LOW, PAE_HIGH = np.array([12, 82, 36]), np.array([255, 255, 255])  # dark green -> white
PLDDT_BANDS = [(90, 100, "#cfe0f7"), (70, 90, "#e3eefa"), (50, 70, "#fdf6d8"), (0, 50, "#fde9dc")]


@dataclass(frozen=True)
class Point:
    x: float
    y: float
    title: str
    group: str = ""


@dataclass(frozen=True)
class Axis:
    """A linear map from data values in [lo, hi] to pixels in [start, end]."""

    lo: float
    hi: float
    start: float
    end: float

    def __call__(self, value: float) -> float:
        span = self.hi - self.lo or 1.0
        return self.start + (value - self.lo) / span * (self.end - self.start)


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values covering [lo, hi]."""
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / count
    step = 10 ** math.floor(math.log10(raw))
    step *= next(m for m in (1, 2, 2.5, 5, 10) if m * step >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    return [round(first + i * step, 10) for i in range(int((hi - first) / step + 1e-9) + 1)]


def _frame(x: Axis, y: Axis, x_label: str, y_label: str, body: str, cls: str) -> str:
    parts = [f'<svg class="plot {cls}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img">']
    for t in nice_ticks(y.lo, y.hi):
        py = y(t)
        parts.append(f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{py:.1f}" y2="{py:.1f}"/>'
                     f'<text class="tick" x="{LEFT - 4}" y="{py + 3:.1f}" text-anchor="end">{t:g}</text>')
    for t in nice_ticks(x.lo, x.hi):
        px = x(t)
        parts.append(f'<text class="tick" x="{px:.1f}" y="{HEIGHT - BOTTOM + 13}" '
                     f'text-anchor="middle">{t:g}</text>')
    parts.append(body)
    parts.append(f'<rect class="axes" x="{LEFT}" y="{TOP}" width="{WIDTH - LEFT - RIGHT}" '
                 f'height="{HEIGHT - TOP - BOTTOM}"/>'
                 f'<text class="label" x="{(LEFT + WIDTH - RIGHT) / 2}" y="{HEIGHT - 6}" '
                 f'text-anchor="middle">{escape(x_label)}</text>'
                 f'<text class="label" transform="translate(12 {(TOP + HEIGHT - BOTTOM) / 2}) rotate(-90)" '
                 f'text-anchor="middle">{escape(y_label)}</text></svg>')
    return "".join(parts)


def _x_axis(lo: float, hi: float) -> Axis:
    return Axis(lo, hi, LEFT, WIDTH - RIGHT)


def _y_axis(lo: float, hi: float) -> Axis:
    return Axis(lo, hi, HEIGHT - BOTTOM, TOP)


def histogram_svg(values: Sequence[float], x_label: str, bins: int = 20) -> str:
    """Bars of a histogram; each bar carries its count in `data-count` and a hover title."""
    data = np.asarray(values, dtype=float)
    lo, hi = (float(data.min()), float(data.max())) if len(data) else (0.0, 1.0)
    if hi - lo < 1e-6:
        lo, hi = lo - 0.05, hi + 0.05
    counts, edges = np.histogram(data, bins=bins, range=(lo, hi))
    x, y = _x_axis(lo, hi), _y_axis(0, max(int(counts.max()), 1) * 1.05)
    bars = []
    for count, left, right in zip(counts, edges[:-1], edges[1:]):
        top = y(count)
        bars.append(f'<rect class="bar" data-count="{count}" x="{x(left) + 0.5:.1f}" y="{top:.1f}" '
                    f'width="{max(x(right) - x(left) - 1, 0.5):.1f}" height="{y(0) - top:.1f}">'
                    f'<title>{left:.3f} to {right:.3f}: {count}</title></rect>')
    return _frame(x, y, x_label, "queries", "".join(bars), "histogram")


def scatter_svg(points: Sequence[Point], x_label: str, y_label: str) -> str:
    """One circle per point in [0, 1] x [0, 1], titled for hover."""
    x, y = _x_axis(0, 1), _y_axis(0, 1)
    dots = [f'<circle class="dot {escape(p.group)}" cx="{x(p.x):.1f}" cy="{y(p.y):.1f}" r="3.5">'
            f'<title>{escape(p.title)}</title></circle>' for p in points]
    diagonal = f'<line class="diagonal" x1="{x(0)}" y1="{y(0)}" x2="{x(1)}" y2="{y(1)}"/>'
    return _frame(x, y, x_label, y_label, diagonal + "".join(dots), "scatter")


def profile_svg(plddt: Sequence[float], chains: Sequence[str]) -> str:
    """Per-token pLDDT as a line over the confidence bands, chain starts marked and labelled."""
    n = len(plddt)
    x, y = _x_axis(1, max(n, 2)), _y_axis(0, 100)
    bands = "".join(f'<rect class="band" fill="{colour}" x="{LEFT}" y="{y(hi):.1f}" '
                    f'width="{WIDTH - LEFT - RIGHT}" height="{y(lo) - y(hi):.1f}"/>'
                    for lo, hi, colour in PLDDT_BANDS)
    marks = []
    for i, chain in enumerate(chains):
        if i == 0 or chain != chains[i - 1]:
            px = x(i + 1)
            marks.append(f'<line class="chain" x1="{px:.1f}" x2="{px:.1f}" y1="{TOP}" '
                         f'y2="{HEIGHT - BOTTOM}"/>'
                         f'<text class="chain-label" x="{px + 3:.1f}" y="{TOP + 11}">{escape(chain)}</text>')
    line = " ".join(f"{x(i + 1):.1f},{y(v):.1f}" for i, v in enumerate(plddt))
    body = bands + "".join(marks) + f'<polyline class="plddt" points="{line}"/>'
    return _frame(x, y, "token", "pLDDT", body, "profile")


def chain_lines_svg(chains: Sequence[str]) -> str:
    """Chain boundaries as lines over a token x token heatmap (stretched over it by CSS)."""
    n = len(chains)
    starts = [i for i in range(1, n) if chains[i] != chains[i - 1]]
    lines = "".join(f'<path d="M{i} 0V{n}M0 {i}H{n}"/>' for i in starts)
    return (f'<svg class="chain-lines" viewBox="0 0 {n} {n}" preserveAspectRatio="none">'
            f"{lines}</svg>")


def downsample(matrix: np.ndarray, max_side: int) -> np.ndarray:
    """Block means so that neither side exceeds `max_side`."""
    factor = math.ceil(max(matrix.shape) / max_side)
    if factor <= 1:
        return matrix
    rows, cols = (math.ceil(s / factor) * factor for s in matrix.shape)
    padded = np.full((rows, cols), np.nan)
    padded[: matrix.shape[0], : matrix.shape[1]] = matrix
    return np.nanmean(padded.reshape(rows // factor, factor, cols // factor, factor), axis=(1, 3))


def heatmap_png(pae: np.ndarray, max_side: int = 256) -> bytes:
    """The PAE matrix as an RGB PNG (dark green = confident, white = PAE_MAX or more)."""
    t = np.clip(downsample(np.asarray(pae, dtype=float), max_side) / PAE_MAX, 0, 1)[..., None]
    rgb = np.rint(PAE_LOW * (1 - t) + PAE_HIGH * t).astype(np.uint8)
    return png_bytes(rgb)


def png_bytes(rgb: np.ndarray) -> bytes:
    """An 8-bit RGB image (height x width x 3) encoded as PNG."""
    height, width, _ = rgb.shape
    rows = np.concatenate([np.zeros((height, 1), np.uint8), rgb.reshape(height, width * 3)], axis=1)

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(rows.tobytes(), 9)) + chunk(b"IEND", b""))
