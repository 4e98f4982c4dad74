"""Tiny inline-SVG plots for self-contained HTML reports (no plotting library)."""
from __future__ import annotations

from html import escape

W, H, PAD = 520, 260, 44
COLORS = {"resolved": "#2e7d32", "unresolved": "#c62828", "infra_error": "#9e9e9e",
          "agent_error": "#ef6c00", None: "#e0e0e0"}


def _frame(title: str, body: str, width: int = W, height: int = H) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'font-family="sans-serif" font-size="11"><text x="{width / 2}" y="14" '
            f'text-anchor="middle" font-weight="bold">{escape(title)}</text>{body}</svg>')


def _axes(xlabel: str, ylabel: str, xmax: float, ymax: float) -> str:
    x0, y0, x1, y1 = PAD, H - PAD, W - 10, 24
    parts = [f'<line x1="{x0}" y1="{y0}" x2="{x1}" y2="{y0}" stroke="black"/>',
             f'<line x1="{x0}" y1="{y0}" x2="{x0}" y2="{y1}" stroke="black"/>',
             f'<text x="{(x0 + x1) / 2}" y="{H - 8}" text-anchor="middle">{escape(xlabel)}</text>',
             f'<text x="12" y="{(y0 + y1) / 2}" transform="rotate(-90 12 {(y0 + y1) / 2})" '
             f'text-anchor="middle">{escape(ylabel)}</text>']
    for i in range(5):
        fx, fy = x0 + (x1 - x0) * i / 4, y0 - (y0 - y1) * i / 4
        parts.append(f'<text x="{fx}" y="{y0 + 14}" text-anchor="middle">{xmax * i / 4:.3g}</text>')
        parts.append(f'<text x="{x0 - 4}" y="{fy + 4}" text-anchor="end">{ymax * i / 4:.3g}</text>')
    return "".join(parts)


def scatter(title: str, points: list[tuple[float, float, str]], xlabel: str, ylabel: str) -> str:
    """points: (x, y, label)."""
    if not points:
        return _frame(title, '<text x="50%" y="50%" text-anchor="middle">no data</text>')
    xmax = max(p[0] for p in points) * 1.1 or 1.0
    ymax = max(p[1] for p in points) * 1.1 or 1.0
    body = [_axes(xlabel, ylabel, xmax, ymax)]
    for x, y, label in points:
        cx = PAD + (W - 10 - PAD) * x / xmax
        cy = H - PAD - (H - PAD - 24) * y / ymax
        body.append(f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="5" fill="#1565c0"><title>'
                    f'{escape(label)}: {x:.4g}, {y:.4g}</title></circle>'
                    f'<text x="{cx + 7:.1f}" y="{cy - 6:.1f}">{escape(label)}</text>')
    return _frame(title, "".join(body))


def histogram(title: str, values: list[float], xlabel: str, bins: int = 20) -> str:
    xs = [v for v in values if v is not None]
    if not xs:
        return _frame(title, '<text x="50%" y="50%" text-anchor="middle">no data</text>')
    top = max(xs) or 1.0
    counts = [0] * bins
    for v in xs:
        counts[min(bins - 1, int(v / top * bins))] += 1
    ymax = max(counts)
    body = [_axes(xlabel, "count", top, ymax)]
    bw = (W - 10 - PAD) / bins
    for i, c in enumerate(counts):
        h = (H - PAD - 24) * c / ymax
        body.append(f'<rect x="{PAD + i * bw:.1f}" y="{H - PAD - h:.1f}" width="{bw - 1:.1f}" '
                    f'height="{h:.1f}" fill="#1565c0"><title>{c}</title></rect>')
    return _frame(title, "".join(body))


def matrix(title: str, rows: list[str], cols: list[str], cell: dict) -> str:
    """cell[(row, col)] = status string; colored squares, rows = tasks, cols = runs."""
    cw, ch, left, top = 90, 16, 230, 40
    width, height = left + cw * len(cols) + 10, top + ch * len(rows) + 10
    body = []
    for j, col in enumerate(cols):
        body.append(f'<text x="{left + j * cw + cw / 2}" y="{top - 6}" text-anchor="middle">'
                    f'{escape(col[:14])}</text>')
    for i, row in enumerate(rows):
        y = top + i * ch
        body.append(f'<text x="{left - 6}" y="{y + 12}" text-anchor="end">{escape(row[:36])}</text>')
        for j, col in enumerate(cols):
            status = cell.get((row, col))
            body.append(f'<rect x="{left + j * cw + 2}" y="{y + 1}" width="{cw - 4}" height="{ch - 2}" '
                        f'fill="{COLORS.get(status, "#e0e0e0")}"><title>{escape(row)} / {escape(col)}: '
                        f'{escape(str(status))}</title></rect>')
    return _frame(title, "".join(body), width, height)
