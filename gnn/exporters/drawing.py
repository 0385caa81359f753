"""The graph drawn: its module hierarchy as boxes and data-flow arrows, laid out by Graphviz.

A drawing shows the graph at a *cut* through its hierarchy. Every composite is a box (its name, module
class, parameters and ops) unless it is open, and then it is a frame holding its child composites and
its own ops. Repeated blocks are folded into one box (``model.layers 0-31 × LlamaDecoderLayer``)
until their stack is opened, and a container that only holds blocks (a ``ModuleList``) is not drawn
itself. An arrow joins two drawn things when a value made in one is read in the other, labelled with
that value's shape (the first one, and how many more cross the same way). Graph inputs and outputs are
drawn as their own nodes; parameters are not drawn but counted on their boxes.

``marks`` colour what the caller says about nodes and composites: ``added`` (green), ``changed`` (amber),
``error`` (red, with its message). A folded or closed box holding a mark takes the strongest one inside.
``removed`` lists module paths gone since the last graph, drawn faded in a note.

Every drawn box carries an SVG ``id``: ``c:<path>`` for a composite, ``f:<prefix>`` for a fold,
``n:<node id>`` for an op, ``r:<prefix>.<lo>-<hi>`` for the middle of a long unfolded stack, so a viewer can open and close them by clicking (assistant.ui.graph_view).
The layout is Graphviz's ``dot`` (Debian's ``graphviz``, through PyPI's ``graphviz``); :func:`to_dot`
alone needs neither.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from gnn.errors import ExportError
from gnn.ir.graph import Graph
from gnn.ir.hierarchy import ancestors

MAX_DRAWN = 600  # ops drawn one by one in the open frames; the rest are counted in a note
MAX_UNFOLDED = 16  # an unfolded stack of more blocks shows its first and last two (and any opened); the rest fold
MAX_OWN = 12  # a frame with more ops of its own (a mask built op by op) draws them as one box until opened
_CONTAINERS = {"ModuleList", "ModuleDict", "Sequential"}
STYLE = {  # mark -> (fill, border)
    "added": ("#dafbe1", "#1a7f37"),
    "changed": ("#fff8c5", "#9a6700"),
    "error": ("#ffebe9", "#cf222e"),
    None: ("#ffffff", "#57606a"),
}
_RANK = {None: 0, "changed": 1, "added": 2, "error": 3}


@dataclass
class Marks:
    """What to colour: ``nodes`` and ``composites`` map an op id / module path to added, changed or error;
    ``messages`` an op id or path to the error said at it; ``removed`` module paths gone."""

    nodes: dict[str, str] = field(default_factory=dict)
    composites: dict[str, str] = field(default_factory=dict)
    messages: dict[str, list[str]] = field(default_factory=dict)
    removed: list[str] = field(default_factory=list)
    removed_label: str = "removed"  # what the note of ``removed`` says they are (a comparison: "only in A")


def _count(n: int) -> str:
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return str(n)


def _shape(graph: Graph, name: str) -> str:
    v = graph.values.get(name)
    return "[" + ", ".join(str(d) for d in v.shape) + "]" if v is not None else "?"


def _q(text: str) -> str:
    return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


class _Cut:
    """Which drawn thing each module path falls in, for the open composites and unfolded stacks given."""

    def __init__(self, graph: Graph, open_paths):
        self.graph, self.h = graph, graph.hierarchy
        self.open = set(open_paths) | {""}
        self.folds = {}  # block path -> the Repeat folding it (stacks not opened)
        self.runs: dict[str, tuple] = {}  # r:<prefix>.<lo>-<hi> -> (Repeat, indices) of a long unfolded stack
        self.folds_in_run: dict[str, str] = {}  # block path -> its run
        for rep in self.h.repeats:
            if len(rep.indices) > 1 and rep.prefix not in self.open and all(p in self.h for p in rep.paths):
                for p in rep.paths:
                    self.folds[p] = rep
            elif rep.prefix in self.open and len(rep.indices) > MAX_UNFOLDED:
                self._runs(rep)
        self._unit: dict[str, str | None] = {}

    def _runs(self, rep) -> None:
        """A long unfolded stack: the blocks between its first and last two, none of them opened, fold into runs
        (``r:<prefix>.<lo>-<hi>``), so a 480-layer stack unfolds into a few boxes, not 480."""
        wanted = {int(p[len(rep.prefix) + 1:].split(".")[0]) for p in self.open
                  if p.startswith(rep.prefix + ".") and p[len(rep.prefix) + 1:].split(".")[0].isdigit()}
        keep = set(rep.indices[:2] + rep.indices[-2:]) | wanted
        run: list[int] = []
        for i in rep.indices + [None]:
            if i is not None and i not in keep:
                run.append(i)
                continue
            if run:
                unit = f"r:{rep.prefix}.{run[0]}-{run[-1]}"
                self.runs[unit] = (rep, run)
                for j in run:
                    self.folds_in_run[f"{rep.prefix}.{j}"] = unit
            run = []

    def unit(self, module: str) -> str | None:
        """``c:<path>`` / ``f:<prefix>`` of the box ``module`` is drawn in, or None: it lies in open frames only."""
        if module not in self._unit:
            found = None
            for path in ancestors(module)[1:]:
                if path in self.folds:
                    found = f"f:{self.folds[path].prefix}"
                    break
                if path in self.folds_in_run:
                    found = self.folds_in_run[path]
                    break
                if path not in self.open and not self._transparent(path):
                    found = f"c:{path}"
                    break
            self._unit[module] = found
        return self._unit[module]

    def _transparent(self, path: str) -> bool:
        """A closed container holding folded blocks only is not a box of its own: the fold is drawn in its place."""
        return (path not in self.open and path in self.h and self.h[path].module_class in _CONTAINERS
                and all(c in self.folds for c in self.h[path].children))

    def frame(self, path: str) -> str:
        """The open frame a thing at ``path`` is drawn in: its nearest open ancestor ("" the top level)."""
        for p in reversed(ancestors(path)[:-1]):
            if p in self.open:
                return p
        return ""


def default_open(graph: Graph) -> set[str]:
    """What a first drawing opens: the modules down to each layer stack, so the stack shows as one folded box
    (Llama: ``model`` is open, showing its embeddings, ``layers 0-31 × LlamaDecoderLayer`` and final norm)."""
    h = graph.hierarchy
    return {p for rep in h.top_repeats() for p in ancestors(rep.prefix)[:-1]}


def to_dot(graph: Graph, open_paths=(), marks: Marks | None = None, max_drawn: int = MAX_DRAWN) -> str:
    """The drawing of ``graph`` as Graphviz DOT: ``open_paths`` are the composites (and stack prefixes) opened."""
    marks = marks or Marks()
    cut = _Cut(graph, open_paths)
    h = cut.h
    by_id = graph.node_by_id

    # what each node is drawn as: its box, or itself (an op in an open frame)
    drawn_as: dict[str, str] = {}
    own = Counter(node.module for node in graph.nodes if cut.unit(node.module) is None)
    glued = {frame for frame, n in own.items() if n > MAX_OWN and f"ops:{frame}" not in cut.open}
    shown = hidden = 0
    for node in graph.nodes:
        unit = cut.unit(node.module)
        if unit is None and node.module in glued:
            unit = f"g:{node.module}"
        if unit is None:
            if shown >= max_drawn:
                hidden += 1
                unit = "more"  # counted in a note, which its arrows go to
            else:
                shown += 1
                unit = f"n:{node.id}"
        drawn_as[node.id] = unit

    # marks gathered onto the boxes holding them
    unit_mark: dict[str, str | None] = {}
    for node_id, mark in marks.nodes.items():
        if node_id in drawn_as:
            u = drawn_as[node_id]
            if _RANK[mark] > _RANK[unit_mark.get(u)]:
                unit_mark[u] = mark
    for path, mark in marks.composites.items():
        u = cut.unit(path) if path in h else None
        if u and _RANK[mark] > _RANK[unit_mark.get(u)]:
            unit_mark[u] = mark
    messages: dict[str, list[str]] = {}
    for key, said in marks.messages.items():
        u = drawn_as.get(key) or (cut.unit(key) if key in h else None)
        if u:
            messages.setdefault(u, []).extend(said)

    units: dict[str, str] = {}  # unit -> the frame ("" the root) it sits in
    for node_id, unit in drawn_as.items():
        if unit not in units and unit != "more":
            module = by_id[node_id].module
            units[unit] = module if unit[:2] in ("n:", "g:") else cut.frame(unit[2:])

    lines = ["digraph mad {", 'graph [rankdir=TB, fontname="Helvetica", fontsize=11, nodesep=0.25, ranksep=0.35, '
             'bgcolor="transparent"];', 'node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=10, '
             'margin="0.12,0.05", penwidth=1.2];', 'edge [fontname="Helvetica", fontsize=8, color="#8c959f", '
             'fontcolor="#57606a", arrowsize=0.6];']

    def box(unit: str) -> str:
        fill, border = STYLE[unit_mark.get(unit)]
        extra, tip = "", ""
        if unit.startswith("n:"):
            node = by_id[unit[2:]]
            label = node.op.removeprefix("aten.").split(".")[0] + "\n" + (_shape(graph, node.outputs[0])
                                                                           if node.outputs and node.outputs[0] else "")
            extra = ', shape=box, style="filled", fontsize=9'
            tip = f"{node.id} = {node.op}  ({node.module or 'top level'})"
        elif unit.startswith("g:"):
            frame = unit[2:]
            kinds = Counter(by_id[n].op.removeprefix("aten.").split(".")[0] for n, u in drawn_as.items() if u == unit)
            owner = h[frame].module_class if frame in h else graph.name
            label = (f"{sum(kinds.values())} ops of {owner or graph.name}\n"
                     + ", ".join(f"{k} ×{n}" for k, n in kinds.most_common(3)))
            extra = ', style="filled,dashed"'
            tip = f"the ops {frame or 'the top level'} runs itself: click to draw them one by one"
        elif unit.startswith("r:"):
            rep, run = cut.runs[unit]
            c = h[f"{rep.prefix}.{run[0]}"]
            name = rep.prefix.rpartition(".")[2] or rep.prefix
            label = (f"{name} {run[0]}-{run[-1]} × {rep.module_class}\n"
                     f"{len(run)} blocks · {_count(c.num_parameters)} params each")
            extra = ", peripheries=2"
            tip = f"{rep.prefix}.{run[0]}-{run[-1]}: {len(run)} blocks folded; click to open block {run[0]}"
        elif unit.startswith("f:"):
            rep = next(r for r in h.repeats if r.prefix == unit[2:])
            c = h[rep.paths[0]]
            name = rep.prefix.rpartition(".")[2] or rep.prefix
            variants = f", {rep.variants} variants" if rep.variants > 1 else ""
            label = (f"{name} {rep.indices[0]}-{rep.indices[-1]} × {rep.module_class}\n"
                     f"{len(rep.indices)} blocks · {_count(c.num_parameters)} params each{variants}")
            extra = ", peripheries=2"
            tip = f"{rep.label} × {rep.module_class}: click to unfold the stack"
        else:
            c = h[unit[2:]]
            label = f"{c.name or graph.name}\n{c.module_class}\n{_count(c.num_parameters)} params · {len(c.nodes)} ops"
            tip = f"{c.path}: click to open"
        said = messages.get(unit)
        if said:
            label += "\n" + said[0][:80]
            tip += " | " + "; ".join(said)
        return (f"{_q(unit)} [id={_q(unit)}, class={_q('madbox ' + (unit_mark.get(unit) or ''))}, label={_q(label)}, "
                f"tooltip={_q(tip)}, fillcolor={_q(fill)}, color={_q(border)}{extra}];")

    # frames: the open composites holding drawn things, nested as clusters
    children: dict[str, list[str]] = {}
    for unit, frame in units.items():
        children.setdefault(frame, []).append(unit)
    frames = sorted({f for frame in units.values() for f in ancestors(frame) if f and f in cut.open}, key=len)
    sub: dict[str, list[str]] = {}
    for f in frames:
        sub.setdefault(cut.frame(f), []).append(f)

    def emit(frame: str, depth: int) -> None:
        pad = "  " * depth
        for unit in children.get(frame, []):
            lines.append(pad + box(unit))
        for inner in sub.get(frame, []):
            c = h[inner] if inner in h else None
            mark = marks.composites.get(inner)
            fill, border = STYLE[mark]
            label = f"{c.name} · {c.module_class} · {_count(c.num_parameters)} params" if c else inner
            lines.append(f"{pad}subgraph {_q('cluster_' + inner)} {{ id={_q('o:' + inner)}; label={_q(label)}; "
                         f"tooltip={_q(inner + ': click to close')}; style=\"rounded,filled\"; fillcolor={_q(fill)}; "
                         f"color={_q(border)}; fontsize=10; labeljust=l;")
            emit(inner, depth + 1)
            lines.append(pad + "}")

    emit("", 1)

    # graph inputs and outputs
    for name in graph.inputs:
        v = graph.values[name]
        if v.kind == "input" and graph.consumers.get(name):
            lines.append(f'  {_q("i:" + name)} [id={_q("i:" + name)}, label={_q(name + chr(10) + _shape(graph, name))}, '
                         'shape=ellipse, style="filled", fillcolor="#f6f8fa", color="#8c959f"];')
    for out in graph.outputs:
        lines.append(f'  {_q("out:" + out.name)} [label={_q(out.name + chr(10) + _shape(graph, out.value))}, '
                     'shape=ellipse, style="filled", fillcolor="#f6f8fa", color="#8c959f"];')
    if hidden:
        lines.append(f'  "more" [label={_q(f"{hidden} more ops not drawn: open fewer frames")}, shape=note, '
                     'style="filled", fillcolor="#f6f8fa", color="#8c959f"];')
    if marks.removed:
        shown = "\n".join(marks.removed[:8]) + (f"\n... {len(marks.removed) - 8} more" if len(marks.removed) > 8 else "")
        note = _q(marks.removed_label + ":\n" + shown)
        lines.append(f'  "removed" [id="removed", label={note}, shape=note, style="filled,dashed", '
                     'fillcolor="#f6f8fa", color="#afb8c1", fontcolor="#8c959f"];')

    # arrows: one per pair of drawn things a value crosses between, labelled with its shape
    crossing: dict[tuple[str, str], list[str]] = {}
    for node in graph.nodes:
        dst = drawn_as[node.id]
        for name in dict.fromkeys(node.inputs):
            v = graph.values.get(name)
            if v is None or v.kind in ("parameter", "buffer", "constant"):
                continue
            producer = graph.producers.get(name)
            src = drawn_as[producer.id] if producer is not None else (f"i:{name}" if v.kind == "input" else None)
            if src and src != dst:
                crossing.setdefault((src, dst), []).append(name)
    for out in graph.outputs:
        producer = graph.producers.get(out.value)
        if producer is not None:
            crossing.setdefault((drawn_as[producer.id], f"out:{out.name}"), []).append(out.value)
    drawn = set(units) | {"more"} | {f"i:{n}" for n in graph.inputs} | {f"out:{o.name}" for o in graph.outputs}
    for (src, dst), names in crossing.items():
        if src not in drawn or dst not in drawn:
            continue
        more = f" +{len(names) - 1}" if len(names) > 1 else ""
        lines.append(f"  {_q(src)} -> {_q(dst)} [label={_q(' ' + _shape(graph, names[0]) + more)}];")
    lines.append("}")
    return "\n".join(lines)


def to_svg(dot: str) -> str:
    """``dot`` laid out by Graphviz as SVG text; :class:`ExportError` when Graphviz is not installed."""
    import graphviz

    try:
        svg = graphviz.Source(dot).pipe(format="svg", engine="dot").decode()
    except graphviz.ExecutableNotFound:
        raise ExportError("drawing needs Graphviz's `dot` (Debian: apt-get install graphviz)") from None
    except graphviz.CalledProcessError as e:
        raise ExportError(f"Graphviz could not lay out the drawing: {str(e.stderr or e)[:200]}") from None
    return svg[svg.find("<svg"):]  # without the XML prolog and doctype, to sit inside HTML

