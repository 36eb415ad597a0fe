"""A journey's graph as inline SVG with the live counts on its steps: nodes in layers by their
distance from the entry (breadth-first, so loops cannot hang the layout), edges with the branch
label and how many customers took it."""

from __future__ import annotations

from collections import deque
from html import escape
from typing import Any

from markupsafe import Markup

NODE_W, NODE_H, GAP_X, GAP_Y, MARGIN = 250, 58, 30, 46, 16
COLOURS = {
    "trigger": "#dbeafe", "send": "#dcfce7", "wait": "#fef9c3", "wait_for_event": "#fef9c3",
    "branch": "#ede9fe", "split": "#ede9fe", "exit": "#fee2e2", "goal": "#ccfbf1",
}  # fmt: skip


def layers(nodes: list[dict[str, Any]], edges: list[dict[str, Any]]) -> dict[str, int]:
    """Each node's depth from the nodes nothing points to (or the first node)."""
    ids = [str(n["id"]) for n in nodes]
    targets = {str(e["to"]) for e in edges}
    roots = [i for i in ids if i not in targets] or ids[:1]
    out: dict[str, list[str]] = {i: [] for i in ids}
    for e in edges:
        if str(e["from"]) in out and str(e["to"]) in out:
            out[str(e["from"])].append(str(e["to"]))
    depth = dict.fromkeys(roots, 0)
    queue = deque(roots)
    while queue:
        node = queue.popleft()
        for nxt in out[node]:
            if nxt not in depth:
                depth[nxt] = depth[node] + 1
                queue.append(nxt)
    # Longest path over forward edges, so a step comes below every step that leads to it
    # (edges back to a shallower step are loops and are left out; bounded by the node count).
    bfs = dict(depth)
    for _ in range(len(ids)):
        moved = False
        for e in edges:
            a, b = str(e["from"]), str(e["to"])
            forward = a in depth and b in depth and a != b and bfs[b] >= bfs[a]
            if forward and depth[b] < depth[a] + 1:
                depth[b] = depth[a] + 1
                moved = True
        if not moved:
            break
    deepest = max(depth.values(), default=-1)
    for i in ids:  # unreachable nodes go below the rest
        depth.setdefault(i, deepest + 1)
    return depth


def _counts_line(step: dict[str, Any] | None) -> str:
    if not step:
        return "no counts"
    parts = [f"{k} {step.get(k, 0)}" for k in ("entered", "waiting", "exited") if k in step]
    if step.get("converted"):
        parts.append(f"converted {step['converted']}")
    return " · ".join(parts) or "no counts"


def journey_svg(stats: dict[str, Any]) -> Markup:
    graph = stats.get("graph") or {}
    nodes: list[dict[str, Any]] = list(graph.get("nodes") or [])
    edges: list[dict[str, Any]] = list(graph.get("edges") or [])
    steps = {str(s.get("step_id")): s for s in stats.get("steps") or []}
    depth = layers(nodes, edges)
    rows: dict[int, list[str]] = {}
    for n in nodes:
        rows.setdefault(depth[str(n["id"])], []).append(str(n["id"]))
    widest = max((len(r) for r in rows.values()), default=1)
    width = MARGIN * 2 + widest * NODE_W + (widest - 1) * GAP_X
    height = MARGIN * 2 + len(rows) * NODE_H + max(len(rows) - 1, 0) * GAP_Y
    at: dict[str, tuple[float, float]] = {}
    for level, members in rows.items():
        row_w = len(members) * NODE_W + (len(members) - 1) * GAP_X
        left = (width - row_w) / 2
        for i, node_id in enumerate(members):
            at[node_id] = (left + i * (NODE_W + GAP_X), MARGIN + level * (NODE_H + GAP_Y))
    parts = [
        f'<svg class="chart journey-graph" data-chart=journey role=img aria-label="journey graph"'
        f' viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        'xmlns="http://www.w3.org/2000/svg"><defs><marker id=arrow viewBox="0 0 10 10" refX=9 '
        'refY=5 markerWidth=7 markerHeight=7 orient=auto-start-reverse><path d="M0,0L10,5L0,10z"'
        ' fill="#666"/></marker></defs>'
    ]
    for e in edges:
        a, b = at.get(str(e["from"])), at.get(str(e["to"]))
        if a is None or b is None:
            continue
        x1, y1 = a[0] + NODE_W / 2, a[1] + NODE_H
        x2, y2 = b[0] + NODE_W / 2, b[1]
        if y2 <= y1:  # a loop back up: go round the side
            y1, y2 = a[1] + NODE_H / 2, b[1] + NODE_H / 2
            x1, x2 = a[0] + NODE_W, b[0] + NODE_W
        parts.append(
            f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="#666" '
            'marker-end="url(#arrow)"/>'
        )
        label = e.get("label")
        if label:
            taken = (steps.get(str(e["from"])) or {}).get("branches", {}).get(label)
            text = f"{label} ({taken})" if taken is not None else str(label)
            parts.append(
                f'<text class=edge-label data-label="{escape(str(label))}" '
                f'data-value="{taken if taken is not None else ""}" x="{(x1 + x2) / 2 + 4:.1f}" '
                f'y="{(y1 + y2) / 2:.1f}" font-size=11 fill="#333">{escape(text)}</text>'
            )
    for n in nodes:
        node_id = str(n["id"])
        x, y = at[node_id]
        kind = str(n.get("type") or "")
        step = steps.get(node_id)
        entered = (step or {}).get("entered", "")
        parts.append(
            f'<g class=node data-step="{escape(node_id)}" data-entered="{entered}">'
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{NODE_W}" height="{NODE_H}" rx=8 '
            f'fill="{COLOURS.get(kind, "#f3f4f6")}" stroke="#555"/>'
            f'<text x="{x + 10:.1f}" y="{y + 18:.1f}" font-size=12 font-weight=bold>'
            f"{escape(str(n.get('label') or node_id)[:36])}</text>"
            f'<text x="{x + 10:.1f}" y="{y + 33:.1f}" font-size=10 fill="#555">{escape(kind)}'
            f"</text>"
            f'<text class=counts x="{x + 10:.1f}" y="{y + 49:.1f}" font-size=10>'
            f"{escape(_counts_line(step))}</text></g>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704  (every interpolated text is escaped above)
