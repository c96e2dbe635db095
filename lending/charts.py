"""Server-rendered SVG charts for officers: the explanation as a waterfall. No JavaScript."""

from __future__ import annotations

import math
from collections.abc import Mapping
from html import escape

WIDTH = 720
ROW = 26
LEFT = 300
RIGHT = 70
MAX_BARS = 10


def _pd(log_odds: float) -> float:
    return 1.0 / (1.0 + math.exp(-log_odds))


def waterfall_svg(*, base_value: float, output: float, attributions: Mapping[str, float],
                  labels: Mapping[str, str], approval_line: float) -> str:
    """A waterfall from the cutoff group's average (base) through each field's attribution to this
    application's score, in log-odds of default. Red bars push toward denial, green toward approval; the
    dashed line is the approval line (probability of default)."""
    ranked = sorted(attributions.items(), key=lambda item: -abs(item[1]))
    shown = ranked[:MAX_BARS]
    rest = sum(value for _, value in ranked[MAX_BARS:])
    if ranked[MAX_BARS:]:
        shown.append((f"{len(ranked) - MAX_BARS} other fields", rest))
    line_log_odds = math.log(approval_line / (1 - approval_line))
    points = [base_value, output, line_log_odds]
    running = base_value
    for _, value in shown:
        running += value
        points.append(running)
    low, high = min(points), max(points)
    pad = (high - low) * 0.08 or 0.5
    low, high = low - pad, high + pad
    plot_width = WIDTH - LEFT - RIGHT

    def x(value: float) -> float:
        return LEFT + (value - low) / (high - low) * plot_width

    height = ROW * (len(shown) + 3) + 30
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" viewBox="0 0 {WIDTH} {height}" '
        f'width="100%" aria-labelledby="wf-title wf-desc" style="max-width:{WIDTH}px;font:12px system-ui,sans-serif">',
        '<title id="wf-title">Explanation waterfall</title>',
        f'<desc id="wf-desc">Starts at the average of applicants just above the approval line '
        f'(probability of default {_pd(base_value):.3f}) and adds each field\'s contribution to reach this '
        f'application\'s probability of default {_pd(output):.3f}. Contributions to the right push toward '
        f'denial.</desc>',
    ]
    y = 10
    parts.append(_bar_row(y, "Applicants at the approval line", x(low), x(base_value), "#7a8699",
                          f"PD {_pd(base_value):.3f}"))
    running = base_value
    for name, value in shown:
        y += ROW
        start, end = running, running + value
        running = end
        colour = "#b42318" if value > 0 else "#1b6e3a"
        label = labels.get(name, name)
        label = label if len(label) <= 40 else label[:39] + "…"
        parts.append(_bar_row(y, label, x(min(start, end)), x(max(start, end)), colour, f"{value:+.3f}"))
    y += ROW
    parts.append(_bar_row(y, "This application", x(low), x(output), "#10263f", f"PD {_pd(output):.3f}"))
    line_x = x(line_log_odds)
    parts.append(f'<line x1="{line_x:.1f}" x2="{line_x:.1f}" y1="4" y2="{y + ROW}" stroke="#8a5a00" '
                 f'stroke-dasharray="4 3"/>')
    parts.append(f'<text x="{line_x + 4:.1f}" y="{y + ROW + 12}" fill="#8a5a00">approval line '
                 f'(PD {approval_line:.2f})</text>')
    parts.append(f'<text x="{LEFT}" y="{height - 2}" fill="#4a5563">log-odds of default →</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def _bar_row(y: float, label: str, x0: float, x1: float, colour: str, value_text: str) -> str:
    width = max(x1 - x0, 1.0)
    return (f'<text x="{LEFT - 8}" y="{y + 15}" text-anchor="end" fill="#1b1f24">{escape(label)}</text>'
            f'<rect x="{x0:.1f}" y="{y + 3}" width="{width:.1f}" height="{ROW - 8}" fill="{colour}" rx="2"/>'
            f'<text x="{x0 + width + 4:.1f}" y="{y + 15}" fill="#1b1f24">{escape(value_text)}</text>')
