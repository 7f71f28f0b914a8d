"""A self-contained SVG flame graph from folded stacks (no flamegraph.pl needed).

Layout as in Brendan Gregg's flame graphs: the root ("all") at the bottom, callees stacked
above their callers, each frame as wide as its inclusive sample count, siblings in alphabetical
order (so two graphs of the same code line up), warm colours hashed from the name (so a function
keeps its colour across graphs). Every frame carries a ``<title>`` tooltip with its samples,
share and samples per query; a small inline script zooms into a frame on click and resets on a
click of the title. Frames narrower than ``min_width`` pixels are left out, as flamegraph.pl does.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

from sessionctl.files import atomic_write
from sessionctl.profiling.folded import Stack

FRAME_H = 16
FONT = 12
CHAR_W = FONT * 0.59  # average glyph width of Verdana at this size
PAD_X = 10
PAD_TOP = 48
PAD_BOTTOM = 24


@dataclass
class _Node:
    name: str
    value: int = 0
    children: dict[str, _Node] = field(default_factory=dict)


def build_tree(stacks: dict[Stack, int]) -> _Node:
    """Merge stacks into a tree of inclusive counts under an ``all`` root."""
    root = _Node("all")
    for stack, n in stacks.items():
        root.value += n
        node = root
        for frame in stack:
            child = node.children.get(frame)
            if child is None:
                child = node.children[frame] = _Node(frame)
            child.value += n
            node = child
    return root


def _depth(root: _Node) -> int:
    deepest, work = 0, [(root, 1)]
    while work:
        node, d = work.pop()
        deepest = max(deepest, d)
        work.extend((c, d + 1) for c in node.children.values())
    return deepest


def _color(name: str) -> str:
    if name.endswith("_[k]"):
        return "rgb(230,140,40)"
    if name.startswith("[") and name.endswith("]"):
        return "rgb(170,170,170)"
    h = zlib.crc32(name.encode("utf-8", "replace"))
    v1, v2, v3 = (h & 0xFF) / 255, ((h >> 8) & 0xFF) / 255, ((h >> 16) & 0xFF) / 255
    return f"rgb({205 + int(50 * v3)},{int(230 * v1)},{int(55 * v2)})"


def _label(name: str, width: float) -> str:
    fits = int((width - 6) / CHAR_W)
    if fits < 3:
        return ""
    return name if len(name) <= fits else name[: fits - 2] + ".."


def render_svg(
    stacks: dict[Stack, int],
    *,
    title: str = "Flame Graph",
    subtitle: str = "",
    width: int = 1200,
    queries: int | None = None,
    min_width: float = 0.1,
) -> str:
    """Render ``stacks`` as an SVG document (a string)."""
    root = build_tree(stacks)
    total = root.value or 1
    depth = _depth(root)
    height = PAD_TOP + depth * FRAME_H + PAD_BOTTOM
    scale = (width - 2 * PAD_X) / total
    out: list[str] = [
        '<?xml version="1.0" standalone="no"?>',
        f'<svg version="1.1" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        'xmlns="http://www.w3.org/2000/svg" onload="init(evt)">',
        '<style type="text/css">text { font-family: Verdana, sans-serif; font-size: '
        f"{FONT}px; fill: rgb(0,0,0); }} .frame:hover rect {{ stroke: black; stroke-width: 0.5; }}"
        " .frame { cursor: pointer; } #title { font-size: 17px; cursor: pointer; }</style>",
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="rgb(248,248,248)"/>',
        f'<text id="title" x="{width / 2:.1f}" y="24" text-anchor="middle">{escape(title)}</text>',
    ]
    if subtitle:
        out.append(
            f'<text x="{width / 2:.1f}" y="40" text-anchor="middle" fill="rgb(100,100,100)">'
            f"{escape(subtitle)}</text>"
        )
    out.append('<g id="frames">')
    # Iterative walk: deep Rust stacks would exhaust Python's recursion limit.
    work: list[tuple[_Node, int, int]] = [(root, 0, 0)]  # node, depth, x offset in samples
    while work:
        node, d, x = work.pop()
        w = node.value * scale
        if w < min_width:
            continue
        px = PAD_X + x * scale
        y = height - PAD_BOTTOM - (d + 1) * FRAME_H
        share = node.value / total
        tip = f"{node.name} ({node.value:,} samples, {share:.2%}"
        if queries:
            tip += f", {node.value / queries:.4g}/query"
        tip += ")"
        out.append(
            f'<g class="frame" data-x="{x}" data-w="{node.value}" data-d="{d}" '
            f"data-n={quoteattr(node.name)}>"
            f"<title>{escape(tip)}</title>"
            f'<rect x="{px:.2f}" y="{y}" width="{w:.2f}" height="{FRAME_H - 1}" '
            f'fill="{_color(node.name)}" rx="2"/>'
            f'<text x="{px + 3:.2f}" y="{y + FRAME_H - 4}">{escape(_label(node.name, w))}</text>'
            "</g>"
        )
        cx = x
        for name in sorted(node.children):
            child = node.children[name]
            work.append((child, d + 1, cx))
            cx += child.value
    out.append("</g>")
    out.append(_SCRIPT.replace("@TOTAL@", str(total)).replace("@W@", str(width - 2 * PAD_X)))
    out.append("</svg>")
    return "\n".join(out) + "\n"


def write_svg(path: Path, stacks: dict[Stack, int], **kwargs: object) -> Path:
    """Render and atomically write the flame graph to ``path``."""
    atomic_write(path, render_svg(stacks, **kwargs))  # type: ignore[arg-type]
    return path


# Click a frame to zoom into it (its ancestors stay full width, unrelated frames hide);
# click the title to reset. Positions are kept in samples (data-x/data-w) so zoom is exact.
_SCRIPT = """<script type="text/ecmascript"><![CDATA[
var frames, total = @TOTAL@, avail = @W@, pad = 10, charw = 7.08;
function init(evt) {
  frames = document.getElementById("frames").getElementsByTagName("g");
  for (var i = 0; i < frames.length; i++) frames[i].addEventListener("click", zoom);
  document.getElementById("title").addEventListener("click", function () { show(0, total, -1); });
}
function fit(name, w) {
  var n = Math.floor((w - 6) / charw);
  if (n < 3) return "";
  return name.length <= n ? name : name.substring(0, n - 2) + "..";
}
function show(x0, w0, d0) {
  for (var i = 0; i < frames.length; i++) {
    var g = frames[i], x = +g.dataset.x, w = +g.dataset.w, d = +g.dataset.d;
    var r = g.getElementsByTagName("rect")[0], t = g.getElementsByTagName("text")[0];
    var inside = x >= x0 && x + w <= x0 + w0, above = d >= d0;
    if (!inside && !(x <= x0 && x + w >= x0 + w0)) { g.style.display = "none"; continue; }
    g.style.display = "";
    var px, pw;
    if (inside && above) { px = pad + (x - x0) / w0 * avail; pw = w / w0 * avail; }
    else { px = pad; pw = avail; }
    r.setAttribute("x", px.toFixed(2)); r.setAttribute("width", pw.toFixed(2));
    t.setAttribute("x", (px + 3).toFixed(2)); t.textContent = fit(g.dataset.n, pw);
  }
}
function zoom(evt) {
  var g = evt.currentTarget;
  show(+g.dataset.x, +g.dataset.w, +g.dataset.d);
}
]]></script>"""
