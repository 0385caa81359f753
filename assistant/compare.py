"""Two architectures side by side: which facts and which blocks differ, and how.

``compare(a, b)`` reads both graphs with the facts ``describe`` says (so it never invents a
difference) and matches their parts by structural role, not by name: GPT-2's ``attn.c_attn`` and
GPT-NeoX's ``attention.query_key_value`` are both the fused q/k/v of block *i*. Layer stacks are
paired in order (an encoder-decoder's encoder with the other's encoder), blocks by index, and in
each block pair the parameters, FLOPs (for the traced inputs) and each role's parameter count are
compared. Parts with a role in one graph only are unmatched; blocks past the shorter depth too.

A model and its own edit compare the same way (``mad diff hf:llama edited.json``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from assistant.facts import Facts, facts
from gnn.analysis.summary import human, node_flops
from gnn.ir.graph import Graph
from gnn.roles import RoleMap, label

_SKIP = {"name", "methods", "stacks", "from_config", "config_layers"}  # said another way, or bookkeeping


@dataclass
class Part:
    """A module found by its role: ``key`` is (stack number or None, block index or None, role, ordinal)."""

    key: tuple
    path: str
    module_class: str
    params: int


@dataclass
class BlockPair:
    stack: int
    index: int
    a: str | None  # block path in a (None: a has no such block)
    b: str | None
    a_params: int = 0
    b_params: int = 0
    a_flops: int = 0
    b_flops: int = 0
    a_class: str = ""
    b_class: str = ""
    parts: list[tuple[str, int | None, int | None]] = field(default_factory=list)  # role, a params, b params (differ)

    @property
    def same(self) -> bool:
        return (self.a is not None and self.b is not None and self.a_params == self.b_params
                and self.a_flops == self.b_flops and not self.parts)


@dataclass
class Comparison:
    a: str
    b: str
    facts: list[tuple[str, object, object]]  # facts that differ: name, a, b
    config: set[str]  # the facts either side read from its config, not its graph
    same: list[tuple[str, object]]  # facts alike
    stacks: list[tuple[str | None, str | None]]  # the paired stacks' prefixes
    blocks: list[BlockPair]
    matched: list[tuple[Part, Part]]
    only_a: list[Part]
    only_b: list[Part]
    added: list[str] = field(default_factory=list)  # module paths new in b (when b keeps a's paths: an edit)
    removed: list[str] = field(default_factory=list)  # module paths of a gone in b

    def to_dict(self) -> dict:
        part = lambda p: {"path": p.path, "role": p.key[2], "class": p.module_class, "params": p.params}  # noqa: E731
        return {"a": self.a, "b": self.b, "from_config": sorted(self.config),
                "facts": [{"fact": k, "a": x, "b": y} for k, x, y in self.facts],
                "same": {k: v for k, v in self.same},
                "stacks": [list(s) for s in self.stacks],
                "blocks": [dataclasses.asdict(b) | {"same": b.same} for b in self.blocks],
                "matched": [[part(x), part(y)] for x, y in self.matched],
                "only_a": [part(p) for p in self.only_a], "only_b": [part(p) for p in self.only_b],
                "added": self.added, "removed": self.removed}

    def text(self) -> str:
        lines = [f"{self.a} vs {self.b}"]
        if self.facts:
            lines.append("Differences (read off the graphs; (config) where only the config says it):")
            for k, x, y in self.facts:
                lines.append(f"- {_fact_name(k, self.config)}: {_said(k, x)} vs {_said(k, y)}")
        else:
            lines.append("No difference in the facts describe reads.")
        if self.same:
            lines.append("Same: " + ", ".join(f"{_fact_name(k, self.config)} {_said(k, v)}" for k, v in self.same))
        for (pa, pb), stack in zip(self.stacks, range(len(self.stacks))):
            pairs = [p for p in self.blocks if p.stack == stack]
            differ = [p for p in pairs if not p.same]
            lines.append(f"Blocks of {pa or '(none)'} vs {pb or '(none)'}: {sum(p.a is not None for p in pairs)} vs "
                         f"{sum(p.b is not None for p in pairs)}, {len(pairs) - len(differ)} alike")
            for p in _grouped(differ):
                lines.append("- " + p)
        lines.append(f"Modules matched by role: {len(self.matched)}; only in {self.a}: {len(self.only_a)}; only in "
                     f"{self.b}: {len(self.only_b)}")
        for who, parts in ((self.a, self.only_a), (self.b, self.only_b)):
            if parts:
                shown = ", ".join(f"{p.path} ({p.key[2]})" for p in parts[:6]) + (" ..." if len(parts) > 6 else "")
                lines.append(f"- only in {who}: {shown}")
        for who, paths in ((self.b, self.added), (self.a, self.removed)):
            if paths:
                lines.append(f"Module paths only in {who}: " + ", ".join(paths[:6])
                             + (f" ... ({len(paths)})" if len(paths) > 6 else ""))
        return "\n".join(lines)

    def marks(self):
        """The differences as marks on ``b``'s drawing: parts only in b added, differing blocks and parts changed,
        parts only in a listed as removed."""
        from gnn.exporters.drawing import Marks

        m = Marks()
        for p in self.blocks:
            if p.b is not None and not p.same:
                m.composites[p.b] = "added" if p.a is None else "changed"
        for _, part in self.matched:
            if part.path and any(part.key[2] == role for p in self.blocks for role, _, _ in p.parts
                                 if p.b and part.path.startswith(p.b + ".")):
                m.composites[part.path] = "changed"
        for part in self.only_b:
            m.composites[part.path] = "added"
        for path in self.added:
            m.composites[path] = "added"
        m.removed = list(dict.fromkeys([f"{p.path} ({p.key[2]})" for p in self.only_a] + self.removed))
        m.removed_label = f"only in {self.a}"
        return m


def _fact_name(k: str, config: set[str] = frozenset()) -> str:
    return k.replace("_", " ") + (" (config)" if k in config else "")


def _said(k: str, v) -> str:
    if v is None:
        return "none"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int) and k in ("params", "trainable_params"):
        return human(v)
    return str(v)


def _grouped(pairs: list[BlockPair]) -> list[str]:
    """Differing block pairs said once per kind of difference (``blocks 0-31: ...``)."""
    said: dict[str, list[int]] = {}
    for p in pairs:
        if p.a is None or p.b is None:
            text = f"only in {'b' if p.a is None else 'a'}: {p.b or p.a} ({p.b_class or p.a_class})"
        else:
            how = [f"{human(p.a_params)} vs {human(p.b_params)} params"] if p.a_params != p.b_params else []
            if p.a_flops != p.b_flops:
                how.append(f"{human(p.a_flops)} vs {human(p.b_flops)} FLOPs")
            if p.a_class != p.b_class and not how and not p.parts:
                how.append(f"{p.a_class} vs {p.b_class}")
            how += [f"{role} {_n(x)} vs {_n(y)} params" for role, x, y in p.parts]
            text = "; ".join(how)
        said.setdefault(text, []).append(p.index)
    out = []
    for text, indices in said.items():
        span = f"block {indices[0]}" if len(indices) == 1 else f"blocks {_span(indices)}"
        out.append(f"{span}: {text}" if not text.startswith("only") else text)
    return out


def _n(x) -> str:
    return "no" if x is None else human(x)


def _span(indices: list[int]) -> str:
    if indices == list(range(indices[0], indices[-1] + 1)):
        return f"{indices[0]}-{indices[-1]}"
    return ", ".join(map(str, indices))


def _parts(graph: Graph, roles: RoleMap) -> dict[tuple, Part]:
    h = graph.hierarchy
    stacks = [prefix for prefix, _ in _stacks(graph, roles)]
    where: dict[str, tuple[int, int]] = {b: (stacks.index(prefix), i) for b, (prefix, i) in roles.blocks.items()}
    parts: dict[tuple, Part] = {}
    seen: dict[tuple, int] = {}
    order = {p: i for i, p in enumerate(graph.modules)}
    for path in sorted(roles.composites, key=lambda p: order.get(p, 0)):
        block = next((b for b in where if path == b or path.startswith(b + ".")), None)
        stack, index = where[block] if block else (None, None)
        for role in roles.composites[path]:
            if role == "block" or path not in h:
                continue
            base = (stack, index, role)
            n = seen.get(base, 0)
            seen[base] = n + 1
            parts[base + (n,)] = Part(base + (n,), path, h[path].module_class, h[path].num_parameters)
    return parts


def _block(graph: Graph, path: str) -> tuple[int, int, str]:
    """A block's parameters, FLOPs (for the traced inputs) and class."""
    by_id = graph.node_by_id
    flops = sum(node_flops(graph, by_id[n]) for n in graph.hierarchy[path].nodes)
    return graph.hierarchy[path].num_parameters, flops, graph.modules.get(path, "")


def compare(a: Graph, b: Graph, a_name: str | None = None, b_name: str | None = None) -> Comparison:
    """``a`` and ``b`` side by side (neither is changed)."""
    ra, rb = label(a), label(b)
    fa, fb = facts(a, ra), facts(b, rb)
    diff, same = [], []
    for f in dataclasses.fields(Facts):
        if f.name in _SKIP:
            continue
        x, y = getattr(fa, f.name), getattr(fb, f.name)
        if x in (None, False, 0) and y in (None, False, 0) and f.name not in ("layers",):
            continue  # neither shows it
        if x != y:
            diff.append((f.name, x, y))
        else:
            same.append((f.name, x))
    pa, pb = _parts(a, ra), _parts(b, rb)
    matched = [(pa[k], pb[k]) for k in pa if k in pb]
    only_a = [pa[k] for k in pa if k not in pb]
    only_b = [pb[k] for k in pb if k not in pa]
    sa, sb = _stacks(a, ra), _stacks(b, rb)
    stacks, blocks = [], []
    for s in range(max(len(sa), len(sb))):
        xa = sa[s] if s < len(sa) else (None, [])
        xb = sb[s] if s < len(sb) else (None, [])
        stacks.append((xa[0], xb[0]))
        for i in range(max(len(xa[1]), len(xb[1]))):
            ba = xa[1][i] if i < len(xa[1]) else None
            bb = xb[1][i] if i < len(xb[1]) else None
            p = BlockPair(s, i, ba, bb)
            if ba:
                p.a_params, p.a_flops, p.a_class = _block(a, ba)
            if bb:
                p.b_params, p.b_flops, p.b_class = _block(b, bb)
            if ba and bb:
                roles_here = {k[2:] for k in list(pa) + list(pb) if k[:2] == (s, i)}
                for role, n in sorted(roles_here):
                    x, y = pa.get((s, i, role, n)), pb.get((s, i, role, n))
                    if x is None or y is None or x.params != y.params:
                        p.parts.append((role, x.params if x else None, y.params if y else None))
            blocks.append(p)
    added = removed = []
    shared = set(a.modules) & set(b.modules)
    if len(shared) >= 0.5 * max(1, len(a.modules)):  # b is a's edit (or a near relative): say which modules by path
        added, removed = _new(b, set(a.modules)), _new(a, set(b.modules))
    config = set(getattr(fa, "from_config", None) or []) | set(getattr(fb, "from_config", None) or [])
    return Comparison(a_name or a.name, b_name or b.name, diff, config, same, stacks, blocks, matched, only_a, only_b,
                      added, removed)


def _new(graph: Graph, other: set[str]) -> list[str]:
    """``graph``'s module paths that ``other`` lacks, the outermost only."""
    out = [p for p in graph.modules if p and p not in other]
    return [p for p in out if not any(p.startswith(q + ".") for q in out)]


def _stacks(graph: Graph, roles: RoleMap) -> list[tuple[str, list[str]]]:
    """The layer stacks in the model's own order (an encoder before its decoder)."""
    order = {p: i for i, p in enumerate(graph.modules)}
    return sorted(roles.stacks().items(), key=lambda kv: order.get(kv[0], len(order)))
