"""Charts as inline SVG, drawn on the server: no JavaScript, no CDN, and the numbers are in
the markup (`data-value` on every point and bar, a `<title>` tooltip), so a browser test and a
screen reader both see them."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from markupsafe import Markup

PALETTE = ("#2563eb", "#16a34a", "#f59e0b", "#dc2626", "#7c3aed", "#0891b2", "#db2777")
Series = tuple[str, Sequence[float | None]]
PAD_L, PAD_R, PAD_T, PAD_B = 48, 12, 16, 44


def _fmt(value: float) -> str:
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.4g}"


def _bounds(
    series: Sequence[Series], y_min: float | None, y_max: float | None
) -> tuple[float, float]:
    values = [v for _, vs in series for v in vs if v is not None]
    low = min([0.0, *values]) if y_min is None else y_min
    high = max([1.0, *values]) if y_max is None else y_max
    return (low, high) if high > low else (low, low + 1)


def _frame(name: str, title: str, size: tuple[int, int], bounds: tuple[float, float], *,
           labels: Sequence[str], x_at: list[float]) -> list[str]:  # fmt: skip
    width, height = size
    low, high = bounds
    parts = [
        f'<svg class=chart data-chart="{escape(name)}" role=img aria-label="{escape(title)}" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        'xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
    ]
    plot_h = height - PAD_T - PAD_B
    for i in range(5):
        value = low + (high - low) * i / 4
        y = PAD_T + plot_h * (1 - i / 4)
        parts.append(
            f'<line x1="{PAD_L}" x2="{width - PAD_R}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e5e7eb"/>'
            f'<text x="{PAD_L - 6}" y="{y + 4:.1f}" text-anchor=end font-size=11 '
            f'fill="#555">{_fmt(value)}</text>'
        )
    step = max(1, len(labels) // 8)
    for i, (label, x) in enumerate(zip(labels, x_at, strict=True)):
        if i % step == 0:
            parts.append(
                f'<text x="{x:.1f}" y="{height - PAD_B + 16}" text-anchor=middle font-size=11 '
                f'fill="#555">{escape(label)}</text>'
            )
    return parts


def _legend(series: Sequence[Series], height: int) -> list[str]:
    parts, x = [], PAD_L
    for i, (name, _) in enumerate(series):
        colour = PALETTE[i % len(PALETTE)]
        parts.append(
            f'<rect x="{x}" y="{height - 14}" width=10 height=10 fill="{colour}"/>'
            f'<text x="{x + 14}" y="{height - 5}" font-size=11>{escape(name)}</text>'
        )
        x += 22 + 7 * len(name)
    return parts


def line_chart(name: str, title: str, labels: Sequence[str], series: Sequence[Series], *,
               width: int = 640, height: int = 240, y_min: float | None = None,
               y_max: float | None = None) -> Markup:  # fmt: skip
    """One line per series over the labels; a None value leaves a gap."""
    low, high = _bounds(series, y_min, y_max)
    plot_w, plot_h = width - PAD_L - PAD_R, height - PAD_T - PAD_B
    n = max(len(labels), 1)
    x_at = [PAD_L + plot_w * (i + 0.5) / n for i in range(len(labels))]

    def y_of(v: float) -> float:
        return PAD_T + plot_h * (1 - (v - low) / (high - low))

    parts = _frame(name, title, (width, height), (low, high), labels=labels, x_at=x_at)
    for i, (serie, values) in enumerate(series):
        colour = PALETTE[i % len(PALETTE)]
        points = [(x, v) for x, v in zip(x_at, values, strict=True) if v is not None]
        if len(points) > 1:
            path = " ".join(f"{x:.1f},{y_of(v):.1f}" for x, v in points)
            parts.append(f'<polyline fill=none stroke="{colour}" stroke-width=2 points="{path}"/>')
        for label, x, v in zip(labels, x_at, values, strict=True):
            if v is not None:
                parts.append(
                    f'<circle class=point data-series="{escape(serie)}" '
                    f'data-label="{escape(label)}" data-value="{v}" cx="{x:.1f}" '
                    f'cy="{y_of(v):.1f}" r=3.5 fill="{colour}">'
                    f"<title>{escape(serie)} {escape(label)}: {_fmt(v)}</title></circle>"
                )
    parts += _legend(series, height)
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704  (every interpolated text is escaped above)


def bar_chart(name: str, title: str, labels: Sequence[str], series: Sequence[Series], *,
              width: int = 640, height: int = 240) -> Markup:  # fmt: skip
    """Grouped bars: one group per label, one bar per series."""
    low, high = _bounds(series, 0, None)
    plot_w, plot_h = width - PAD_L - PAD_R, height - PAD_T - PAD_B
    n = max(len(labels), 1)
    group_w = plot_w / n
    bar_w = group_w * 0.8 / max(len(series), 1)
    x_at = [PAD_L + group_w * (i + 0.5) for i in range(len(labels))]
    parts = _frame(name, title, (width, height), (low, high), labels=labels, x_at=x_at)
    for j, (serie, values) in enumerate(series):
        colour = PALETTE[j % len(PALETTE)]
        for i, (label, v) in enumerate(zip(labels, values, strict=True)):
            value = v or 0.0
            h = plot_h * (value - low) / (high - low)
            x = PAD_L + group_w * i + group_w * 0.1 + bar_w * j
            parts.append(
                f'<rect class=bar data-series="{escape(serie)}" data-label="{escape(label)}" '
                f'data-value="{value}" x="{x:.1f}" y="{PAD_T + plot_h - h:.1f}" '
                f'width="{bar_w:.1f}" height="{h:.1f}" fill="{colour}">'
                f"<title>{escape(serie)} {escape(label)}: {_fmt(value)}</title></rect>"
            )
    parts += _legend(series, height)
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704  (every interpolated text is escaped above)
