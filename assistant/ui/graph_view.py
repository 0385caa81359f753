"""The hierarchical graph as HTML: composites collapsed by default, the last edit's changes highlighted.

Each composite (a module: ``model.layers.0.self_attn``) is a ``<details>`` element, so a
browser expands and collapses it without any script; its summary line gives the class,
parameter count, op count and the shape it hands on.  Inside are its child composites
and then its own primitive ops, one row each with the output shape, dtype and inputs.
After an edit, composites and ops the edit added or changed are marked (green: added,
amber: changed) and those it removed are listed at the top.  A graph that fails
validation shows the status at the top and each error at its node, with the composites
around that node opened.
"""

from __future__ import annotations

import html

from gnn.edits.engine import Diff
from gnn.ir.graph import Graph
from gnn.ir.hierarchy import ancestors
from gnn.validate import Report

MAX_OPS = 400  # op rows shown per composite; the rest are counted

CSS = """
<style>
.madg{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:12px;line-height:1.45;max-height:88vh;overflow:auto}
.madg details{margin-left:14px;border-left:1px solid #d0d7de;padding-left:6px}
.madg summary{cursor:pointer;white-space:nowrap}
.madg .cls{color:#6e7781}.madg .num{color:#0550ae}
.madg .op{margin-left:14px;white-space:nowrap;color:#24292f}
.madg .added>summary,.madg .op.added{background:#dafbe1}
.madg .changed>summary,.madg .op.changed{background:#fff8c5}
.madg .err>summary,.madg .op.err{background:#ffebe9}
.madg .msg{color:#cf222e}
.madg .status{padding:4px 8px;margin-bottom:6px;border-radius:4px}
.madg .ok{background:#dafbe1}.madg .bad{background:#ffebe9}
.madg .removed{background:#ffebe9;padding:2px 6px;margin-bottom:6px}
</style>
"""


def _status(report: Report | None) -> str:
    """The validation line above a view (empty without a report)."""
    if report is None:
        return ""
    if report.ok:
        return (f'<div class="status ok">valid: {report.checked_nodes} ops checked (structure, arity, shapes, '
                'dtypes)</div>')
    return (f'<div class="status bad">invalid: {len(report.errors)} error(s); first: '
            f'{html.escape(str(report.errors[0]))}</div>')


def _count(n: int) -> str:
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.2f}{unit}"
    return str(n)


def _shape(graph: Graph, name: str | None) -> str:
    value = graph.values.get(name) if name else None
    if value is None:
        return "?"
    return f"[{', '.join(str(d) for d in value.shape)}] {value.dtype}"


def render(graph: Graph, diff: Diff | None = None, report: Report | None = None) -> str:
    """``graph`` as collapsible HTML; ``diff`` (the last edit's) highlights, ``report`` (validation) errors."""
    h = graph.hierarchy
    added_nodes = set(diff.added_nodes) if diff else set()
    changed_nodes = set(diff.changed_nodes) if diff else set()
    added_comps = set(diff.added_composites) if diff else set()
    errors: dict[str, list[str]] = {}
    for issue in report.errors if report else []:
        if issue.node:
            errors.setdefault(issue.node, []).append(issue.detail)
    by_id = graph.node_by_id
    touched: set[str] = set()  # composites holding a change
    for node_id in added_nodes | changed_nodes:
        if node_id in by_id:
            touched.update(ancestors(by_id[node_id].module))
    opened: set[str] = {""}
    for node_id in errors:
        if node_id in by_id:
            opened.update(ancestors(by_id[node_id].module))
    own: dict[str, list] = {}
    for node in graph.nodes:
        own.setdefault(node.module, []).append(node)

    out = [CSS, '<div class="madg">', _status(report)]
    if diff and diff.removed_composites:
        shown = ", ".join(diff.removed_composites[:12]) + (" ..." if len(diff.removed_composites) > 12 else "")
        out.append(f'<div class="removed">removed: {html.escape(shown)}</div>')

    def comp(path: str) -> None:
        c = h[path]
        classes = ["added" if path in added_comps else "changed" if path in touched else "",
                   "err" if path in opened and errors and path else ""]
        shape = _shape(graph, c.outputs[-1]) if c.outputs and c.outputs[-1] in graph.producers else ""
        label = html.escape(c.name or graph.name)
        out.append(f'<details class="{" ".join(x for x in classes if x)}" data-path="{html.escape(path)}"'
                   f'{" open" if path in opened else ""}><summary><b>{label}</b> '
                   f'<span class="cls">{html.escape(c.module_class)}</span> '
                   f'<span class="num">{_count(c.num_parameters)} params, {len(c.nodes)} ops</span>'
                   f'{" → " + html.escape(shape) if shape else ""}</summary>')
        for child in c.children:
            comp(child)
        nodes = own.get(path, [])
        for node in nodes[:MAX_OPS]:
            cls = "added" if node.id in added_nodes else "changed" if node.id in changed_nodes else ""
            if node.id in errors:
                cls = "err"
            ins = ", ".join(dict.fromkeys(node.inputs))
            row = (f'<div class="op {cls}" data-node="{html.escape(node.id)}">{html.escape(node.id)} = '
                   f'{html.escape(node.op)} → {html.escape(_shape(graph, node.outputs[0] if node.outputs else None))}'
                   f'<span class="cls"> ← {html.escape(ins[:160])}</span>')
            for message in errors.get(node.id, []):
                row += f' <span class="msg">{html.escape(message)}</span>'
            out.append(row + "</div>")
        if len(nodes) > MAX_OPS:
            out.append(f'<div class="op cls">... {len(nodes) - MAX_OPS} more ops</div>')
        out.append("</details>")

    comp("")
    out.append("</div>")
    return "\n".join(out)


# -- the drawing ----------------------------------------------------------------------------------------------------

DRAWING_CSS = """
.madd{font-family:ui-sans-serif,system-ui,sans-serif;font-size:12px}
.madd .bar{display:flex;gap:12px;align-items:center;flex-wrap:wrap;padding:4px 2px;color:#57606a}
.madd .key{display:inline-block;width:10px;height:10px;border:1px solid #57606a;border-radius:2px;margin-right:3px;vertical-align:-1px}
.madd .canvas{max-height:80vh;overflow:auto;border:1px solid #d0d7de;border-radius:6px;background:#fff;padding:4px}
.madd .canvas svg{max-width:100%;height:auto}
.madd svg a,.madd svg text{text-decoration:none!important}
.madd g.node,.madd g.cluster{cursor:pointer}
.madd g.node:hover polygon,.madd g.node:hover path{stroke-width:2.2}
.madd.busy .canvas{opacity:.55}
.madd .status{padding:4px 8px;border-radius:4px}.madd .ok{background:#dafbe1}.madd .bad{background:#ffebe9}
"""

# the click: the box's SVG id goes to the session's drawing (server function ``toggle``), which answers the new HTML
DRAWING_JS = """
element.addEventListener('click', async (e) => {
  const box = e.target.closest('g.node, g.cluster');
  const root = element.querySelector('.madd');
  if (!box || !root || !/^[cofgr]:/.test(box.id)) return;
  root.classList.add('busy');
  try { props.value = await server.toggle(root.dataset.token, box.id); }
  finally { root.classList.remove('busy'); }
});
"""


def marks(diff: Diff | None = None, report: Report | None = None):
    """The last edit's changes and the validation errors as the drawing's marks."""
    from gnn.exporters.drawing import Marks

    m = Marks()
    if diff:
        m.nodes.update({n: "changed" for n in diff.changed_nodes})
        m.nodes.update({n: "added" for n in diff.added_nodes})
        m.composites.update({p: "added" for p in diff.added_composites})
        m.removed = list(diff.removed_composites)
    for issue in report.errors if report else []:
        if issue.node:
            m.nodes[issue.node] = "error"
            m.messages.setdefault(issue.node, []).append(issue.detail)
    return m


def toggled(opened: set[str], box_id: str) -> set[str]:
    """The open set after a click on ``box_id``: a box (``c:``), a fold (``f:``), a run of a long stack's blocks
    (``r:``, its first block) or a frame's own ops (``g:``) open;
    a frame (``o:``) closes, with everything opened inside it."""
    kind, _, path = box_id.partition(":")
    if kind == "o":
        return {p for p in opened if p != path and not p.startswith(path + ".") and p != f"ops:{path}"
                and not p.startswith(f"ops:{path}.")}
    if kind == "g":
        return opened | {f"ops:{path}"}
    if kind == "r":  # the middle of a long stack: open its first block (the run shrinks by one)
        prefix, _, span = path.rpartition(".")
        return opened | {f"{prefix}.{span.split('-')[0]}"}
    return opened | {path}


def drawing(graph: Graph, opened: set[str], diff: Diff | None = None, report: Report | None = None,
            token: str = "", marks_=None, title: str = "") -> str:
    """``graph`` drawn (Graphviz SVG) with ``opened`` composites open, the last edit coloured (or ``marks_``, a
    comparison's), errors in red."""
    from gnn.exporters.drawing import STYLE, to_dot, to_svg

    m = marks_ if marks_ is not None else marks(diff, report)
    by_id = graph.node_by_id
    opened = set(opened) | {p for n in m.messages if n in by_id for p in ancestors(by_id[n].module)}  # errors shown
    svg = to_svg(to_dot(graph, opened, m))
    out = [f'<div class="madd" data-token="{html.escape(token)}">']
    if title:
        out.append(f'<div class="bar"><b>{html.escape(title)}</b></div>')
    out.append(_status(report))
    out.append('<div class="bar">' + "".join(f'<span><i class="key" style="background:{STYLE[k][0]}"></i>{k}</span>'
                                             for k in ("added", "changed", "error"))
               + "<span>click a box to open it, a frame to close it; a double box is a folded stack</span></div>")
    out.append(f'<div class="canvas">{svg}</div></div>')
    return "\n".join(out)
