"""Module structure for graphs that have none: named composites from predicted node roles.

An ONNX file from another exporter, or one whose names were stripped, imports as a
flat list of ops.  The edits work on modules (a LoRA layer replaces a projection
module), so :func:`infer_modules` rebuilds them from node roles (the learned
labeler's predictions):

* a **projection** is a matmul that reads a weight, with its neighbours of the same
  role (the weight's transpose, the bias add); its module is named after the role as
  Llama names it (``q_proj``, ``down_proj``, ...);
* its **block** is read off the residual stream: a node after ``k`` residual adds lies
  in block ``k // adds_per_block``, where ``adds_per_block`` is the number of residual
  adds over the number of attention blocks (one query or fused q/k/v projection each);
* attention projections of a block go under ``layers.<b>.self_attn``, feed-forward ones
  under ``layers.<b>.mlp``, the head is ``lm_head``;
* then each attention and feed-forward becomes a whole module (every op from its projections'
  input to its output projection), the feed-forward's activation ``act_fn``, and the norm before
  it or after its residual add ``input_layernorm`` / ``post_attention_layernorm`` (``norm`` after
  the last block), each with one input and one output, so a norm, an activation or a module
  after the attention can be edited as in the named model.

Only stacks of identical blocks with one attention each (decoders, encoders) are
rebuilt; anything else is refused with the reason.

:func:`decode_roles` turns the learned labeler's per-node probabilities into labels
that form such blocks.  Node by node, the model tells attention cores (score
product, softmax, context product) apart reliably; which of two projections is the
query and which the key it gets wrong more often.  So the projections are decoded
jointly, per attention: the weight matmuls that reach a predicted softmax without
passing another weight matmul are its query and key (or one fused q/k/v), those
that reach its context product are its value, the next one after the context is
its output; each group takes the most probable assignment of distinct roles under
the model.  The weight matmuls between one attention's output and the next
attention are that block's feed-forward (the last one ``down``, the others ``up``
and ``gate`` by the model).
"""

from __future__ import annotations

from gnn.errors import MadError
from gnn.ir.families import MATMUL_OPS, RESHAPE_OPS, norm_kind
from gnn.ir.graph import Graph

_NAMES = {"attn.q": "q_proj", "attn.k": "k_proj", "attn.v": "v_proj", "attn.o": "o_proj", "attn.qkv": "qkv_proj",
          "mlp.up": "up_proj", "mlp.gate": "gate_proj", "mlp.down": "down_proj"}
_NORM_NAMES = {"self_attn": "input_layernorm", "mlp": "post_attention_layernorm"}  # Llama's, as for projections


def _reads_weight(graph: Graph, node) -> bool:
    """Whether a matmul reads a 2-d weight, directly or through its transpose."""
    for name in node.inputs:
        value = graph.values[name]
        if value.kind == "parameter" and len(value.shape) == 2:
            return True
        producer = graph.producers.get(name)
        if producer is not None and producer.inputs and all(
                graph.values[i].kind == "parameter" and len(graph.values[i].shape) == 2 for i in producer.inputs):
            return True
    return False


def _seeds(graph: Graph) -> list:
    return [n for n in graph.nodes if n.op in MATMUL_OPS and _reads_weight(graph, n)]


def _returned(graph: Graph, node) -> bool:
    """Whether a projection's output is a graph output, as it is or only reshaped: a head, not a layer."""
    outputs = {o.value for o in graph.outputs}
    todo = [o for o in node.outputs if o]
    while todo:
        name = todo.pop()
        if name in outputs:
            return True
        todo += [o for c in graph.consumers.get(name, []) if c.op in RESHAPE_OPS for o in c.outputs if o]
    return False


def _walk(start, step, stop) -> list:
    """Nodes reached from ``start`` by ``step`` (producers or consumers), not going past nodes in ``stop``;
    the ``stop`` nodes met are returned, in the order met."""
    seen, met, todo = {start.id}, [], [start]
    while todo:
        node = todo.pop(0)
        for m in step(node):
            if m.id in seen:
                continue
            seen.add(m.id)
            if m.id in stop:
                met.append(m)
            else:
                todo.append(m)
    return met


def decode_roles(graph: Graph, probs) -> tuple[list[str], dict[str, int]]:
    """Per-node labels from role probabilities ``probs`` (N, len(NODE_ROLES)), with the projections
    decoded jointly per attention (see the module docstring), and the block of each decoded projection."""
    import itertools

    from gnn.vocab import NODE_ROLES

    logp = probs.clamp(min=1e-9).log()
    labels = [NODE_ROLES[i] for i in probs.argmax(-1).tolist()]
    row = {node.id: i for i, node in enumerate(graph.nodes)}
    producers, consumers = graph.producers, graph.consumers
    ups = lambda n: [producers[i] for i in n.inputs if i in producers]  # noqa: E731
    downs = lambda n: [c for o in n.outputs if o for c in consumers.get(o, [])]  # noqa: E731
    seeds = _seeds(graph)
    seed_ids = {n.id for n in seeds}
    softmaxes = [n for n in graph.nodes if labels[row[n.id]] == "attn.softmax"]
    products = {n.id for n in graph.nodes if n.op in MATMUL_OPS and n.id not in seed_ids}
    chosen: dict[str, str] = {}
    blocks: dict[str, int] = {}

    def best(group: list, roles: list[str]) -> None:
        """The most probable assignment of distinct ``roles`` to the nodes of ``group``."""
        score = lambda perm: sum(float(logp[row[n.id], NODE_ROLES.index(r)]) for n, r in zip(group, perm))  # noqa: E731
        for n, r in zip(group, max(itertools.permutations(roles, len(group)), key=score)):
            chosen[n.id] = r

    for b, soft in enumerate(softmaxes):
        qk = _walk(soft, ups, seed_ids)
        context = next(iter(_walk(soft, downs, products)), None)
        # the value: reached from the context product but not through the softmax (nor the q/k
        # projections, which shape computations may also lead back to)
        v = [n for n in _walk(context, ups, seed_ids | {soft.id}) if n.id != soft.id] if context else []
        o = _walk(context, downs, seed_ids)[:1] if context else []
        if len(qk) == 1 and [n.id for n in v] == [qk[0].id]:
            chosen[qk[0].id] = "attn.qkv"
        elif len(qk) == 2 and len(v := [n for n in v if n.id not in {m.id for m in qk}]) == 1:
            best(qk, ["attn.q", "attn.k"])
            chosen[v[0].id] = "attn.v"
        else:
            continue
        for n in o:
            chosen[n.id] = "attn.o"
        for n in qk + v + o:
            blocks[n.id] = b
    # feed-forward: the weight matmuls after block b's output projection and before block b + 1's attention
    starts = sorted((row[i], b) for i, b in blocks.items() if chosen[i] == "attn.o")
    ends = sorted(row[i] for i in blocks if chosen[i] in ("attn.q", "attn.k", "attn.qkv"))
    for k, (start, b) in enumerate(starts):
        stop = next((e for e in ends if e > start), len(graph.nodes))
        group = [n for n in seeds if start < row[n.id] < stop and n.id not in chosen]
        if not group:
            continue
        if k == len(starts) - 1:  # after the last block: a head may follow the last feed-forward
            heads = [n for n in group if labels[row[n.id]] == "lm_head" or _returned(graph, n)]
            for n in heads:
                chosen[n.id] = "lm_head"
            group = [n for n in group if n not in heads]
        if len(group) > 3:
            continue
        *rest, last = group
        chosen[last.id] = "mlp.down"
        if len(rest) == 1:
            chosen[rest[0].id] = "mlp.up"
        elif rest:
            best(rest, ["mlp.up", "mlp.gate"])
        for n in group:
            blocks[n.id] = b
    # each decoded projection's own ops (its weight's transpose, the bias add) take its role with it
    for seed_id, role in chosen.items():
        old = labels[row[seed_id]]
        labels[row[seed_id]] = role
        todo = [graph.node_by_id[seed_id]] if old != role and old in _NAMES else []
        while todo:
            node = todo.pop()
            for m in ups(node) + downs(node):
                if m.id not in seed_ids and labels[row[m.id]] == old:
                    labels[row[m.id]] = role
                    todo.append(m)
    numbers = {b: i for i, b in enumerate(sorted(set(blocks.values())))}  # attentions not decoded leave no gaps
    return labels, {k: numbers[b] for k, b in blocks.items()}


def with_inferred_modules(graph: Graph) -> Graph:
    """``graph`` itself when it has module paths; without any (an ONNX file with its names stripped), a copy
    with the projections and blocks rebuilt from the learned labeler's node roles.  Raises
    :class:`MadError` when they cannot be rebuilt."""
    if not graph.nodes or any(node.module for node in graph.nodes):
        return graph
    from gnn.nn.checkpoint import predict_node_probs

    return infer_modules(graph, *decode_roles(graph, predict_node_probs(graph)))


def infer_modules(graph: Graph, labels: list[str], blocks: dict[str, int] | None = None) -> Graph:
    """A copy of ``graph`` whose nodes carry module paths rebuilt from ``labels`` (one role per node).

    ``blocks`` (node id -> block index, from :func:`decode_roles`) places projections in blocks;
    without it the residual adds among ``labels`` count the blocks off."""
    if len(labels) != len(graph.nodes):
        raise MadError(f"{len(labels)} labels for {len(graph.nodes)} nodes")
    out = graph.copy()
    role = {node.id: r for node, r in zip(out.nodes, labels)}
    producers, consumers = out.producers, out.consumers
    # residual adds before each node, along the longest path
    seen_res: dict[str, int] = {}
    for node in out.nodes:
        before = [seen_res[producers[i].id] + (role[producers[i].id] == "residual")
                  for i in node.inputs if i in producers]
        seen_res[node.id] = max(before, default=0)
    seeds = [n for n in _seeds(out) if role[n.id] in _NAMES or role[n.id] == "lm_head"]
    seed_ids = {n.id for n in seeds}
    attn_seeds = [n for n in seeds if role[n.id] in ("attn.q", "attn.qkv")]
    residuals = sum(r == "residual" for r in labels)
    if blocks:
        seeds = [n for n in seeds if n.id in blocks or role[n.id] == "lm_head"]
        if not attn_seeds:
            raise MadError("cannot rebuild the blocks of this unnamed graph: no query projection was found")
    elif not attn_seeds or not residuals or residuals % len(attn_seeds):
        raise MadError(f"cannot rebuild the blocks of this unnamed graph: {len(attn_seeds)} query projections and "
                       f"{residuals} residual adds were found (expected one query projection and the same number "
                       "of residual adds per block)")
    per_block = residuals // len(attn_seeds) if not blocks else 0
    taken: set[str] = set()
    renames: dict[str, str] = {}
    for seed in seeds:
        r = role[seed.id]
        if r == "lm_head":
            path = "lm_head"
        else:
            block = blocks[seed.id] if blocks else seen_res[seed.id] // per_block
            part = "self_attn" if r.startswith("attn.") else "mlp"
            path = f"layers.{block}.{part}.{_NAMES[r]}"
            out.modules.setdefault("layers", "ModuleList")
            out.modules.setdefault(f"layers.{block}", "DecoderLayer")
            out.modules.setdefault(f"layers.{block}.{part}", "Attention" if part == "self_attn" else "MLP")
        if path in out.modules:
            raise MadError(f"two `{r}` projections fall in the same block ({path}); the role predictions do not "
                           "form regular blocks")
        out.modules[path] = "Linear"
        # the projection's own ops: the connected run of nodes with its role around the matmul
        # (the weight's transpose, reshapes and their shape constants, the bias add)
        members, todo = {seed.id: seed}, [seed]
        while todo:
            node = todo.pop()
            near = [producers[i] for i in node.inputs if i in producers]
            near += [c for o in node.outputs if o for c in consumers.get(o, [])]
            for m in near:
                if m.id not in members and role[m.id] == r and m.id not in seed_ids:
                    members[m.id] = m
                    todo.append(m)
        # helpers computed from constants or weights alone that only this projection reads
        # (a reshape's target shape, the weight's transpose) belong to it whatever their predicted role
        grown = True
        while grown:
            grown = False
            for m in list(members.values()):
                for name in m.inputs:
                    p = producers.get(name)
                    if p is None or p.id in members or p.id in seed_ids:
                        continue
                    if all(i not in producers and out.values[i].kind in ("parameter", "constant") for i in p.inputs) \
                            and all(c.id in members for o in p.outputs if o for c in consumers.get(o, [])):
                        members[p.id] = p
                        grown = True
        members = list(members.values())
        members += [m for m in _flattening(out, members) if m.id not in seed_ids]
        # a weight the matmul reads as stored is (in, out), GPT-2's Conv1D; through a transpose, a Linear
        direct = any(out.values[i].kind == "parameter" and len(out.values[i].shape) == 2 for i in seed.inputs)
        cls = "Conv1D" if direct else "Linear"
        out.modules[path] = cls
        for m in members:
            if m.id not in taken:
                m.module, m.module_class = path, cls
                taken.add(m.id)
        # the module owns its weight (and bias): name them as a Linear's state
        params = [i for m in members for i in m.inputs if out.values[i].kind == "parameter"]
        for name in dict.fromkeys(params):
            dims = len(out.values[name].shape)
            if dims in (1, 2) and name not in renames:
                renames[name] = f"{path}.{'weight' if dims == 2 else 'bias'}"
    out.rename_values(renames)
    out.invalidate()
    _place_sublayers(out)
    out.meta = {**out.meta, "inferred_modules": True}
    out.invalidate()
    return out


def _between(graph: Graph, x: str, y: str) -> list:
    """The nodes on a data path from value ``x`` to value ``y`` (``y``'s producer included, ``x``'s not), in
    graph order, with the helpers computed from constants alone that only they read (shape arithmetic)."""
    producers, consumers = graph.producers, graph.consumers
    down, todo = set(), [x]
    while todo:
        for node in consumers.get(todo.pop(), []):
            if node.id not in down:
                down.add(node.id)
                todo += [o for o in node.outputs if o]
    up, todo = set(), [y]
    while todo:
        node = producers.get(todo.pop())
        if node is not None and node.id not in up and node.id in down:
            up.add(node.id)
            todo += node.inputs
    for node in graph.nodes:
        if node.id in up or any(i in producers or graph.values[i].kind in ("activation", "input")
                                for i in node.inputs):
            continue
        readers = [c for o in node.outputs if o for c in consumers.get(o, [])]
        if readers and all(c.id in up for c in readers):
            up.add(node.id)
    return [n for n in graph.nodes if n.id in up]


def _residual_after(graph: Graph, y: str, limit: int = 6):
    """The residual add that takes a sub-layer's output ``y`` (within a few ops) and the stream value it adds
    it to: ``(add, stream)``, or None."""
    mine, frontier = {y}, [y]
    for _ in range(limit):
        nxt = []
        for name in frontier:
            for node in graph.consumers.get(name, []):
                others = [i for i in node.inputs if i not in mine]
                if node.op in ("aten.add.Tensor", "onnx::Add") and len(others) == 1 and \
                        graph.values[others[0]].kind in ("activation", "input") and \
                        graph.values[others[0]].shape == graph.values[name].shape:
                    return node, others[0]
                outs = [o for o in node.outputs if o]
                mine.update(outs)
                nxt += outs
        frontier = nxt
    return None


def _place_sublayers(graph: Graph) -> None:
    """Each block's attention and feed-forward as whole modules around its projections (every op from the
    projections' input to the output projection's output), the feed-forward's activation, and the norm
    before (pre-norm) or after (post-norm) each, so edits that follow or replace them (dropout after the
    attention, an adapter after the feed-forward, another norm or activation) find one module with one
    input and one output, as in the named model.  A part whose ops do not form such a module is left as
    it is; the edits then say what they could not find."""
    blocks = sorted(int(p.split(".")[1]) for p in graph.modules if p.count(".") == 1 and p.startswith("layers."))
    parts = {"self_attn": (("q_proj", "k_proj", "v_proj", "qkv_proj"), "o_proj"),
             "mlp": (("gate_proj", "up_proj"), "down_proj")}
    placed = []  # (block, part, input, output, residual add)
    for b in blocks:
        for part, (firsts, last) in parts.items():
            h = graph.hierarchy
            base = f"layers.{b}.{part}"
            heads = [h[f"{base}.{n}"] for n in firsts if f"{base}.{n}" in h.composites]
            tail = h.composites.get(f"{base}.{last}")
            if not heads or tail is None or len(tail.outputs) != 1 or any(len(c.inputs) != 1 for c in heads):
                continue
            if len({c.inputs[0] for c in heads}) != 1:
                continue
            x, y = heads[0].inputs[0], tail.outputs[0]
            region = _between(graph, x, y)
            if any(n.module and not n.module.startswith(base + ".") for n in region):
                continue
            for node in region:
                if not node.module:
                    node.module, node.module_class = base, graph.modules[base]
            if part == "mlp":
                _place_activation(graph, base, region)
            graph.invalidate()
            placed.append((b, part, x, y, _residual_after(graph, y)))
    # norms: before the sub-layer's input, after the stream forks (pre-norm), or after its residual add
    # up to the next sub-layer's input (post-norm); the last one after the last block (norm.final)
    named: set[str] = set()
    for k, (b, part, x, y, residual) in enumerate(placed):
        if residual is None:
            continue
        add, stream = residual
        path = f"layers.{b}.{_NORM_NAMES[part]}"
        before = _between(graph, stream, x) if stream != x else []
        if before:
            candidates = [(path, before)]
        else:  # no norm before it: post-norm, after its add
            candidates = [(path, _between(graph, add.outputs[0], placed[k + 1][2]))] if k + 1 < len(placed) else []
        head = graph.hierarchy.composites.get("lm_head")
        if k == len(placed) - 1 and head is not None and len(head.inputs) == 1:
            candidates.append(("norm", _between(graph, add.outputs[0], head.inputs[0])))
        for path, region in candidates:
            while region and region[-1].op in ("onnx::Identity", "aten.alias.default"):  # the model's, not the norm's
                region.pop()
            kind = norm_kind([n.op for n in region])
            if not region or kind is None or path in graph.modules or any(n.module for n in region):
                continue
            graph.modules[path] = kind
            for node in region:
                node.module, node.module_class = path, kind
            weights = [i for n in region for i in n.inputs
                       if graph.values[i].kind == "parameter" and len(graph.values[i].shape) == 1]
            own = [w for w in dict.fromkeys(weights) if w not in named]  # a shared one keeps its first name
            renames = dict(zip(own, [f"{path}.weight", f"{path}.bias"]))
            named.update(renames.values())
            graph.rename_values(renames)
            graph.invalidate()


def _move(graph: Graph, old: str, new: str) -> None:
    """Rename a leaf module (a projection) and the state named after it."""
    graph.modules = {new if p == old else p: c for p, c in graph.modules.items()}
    for node in graph.nodes:
        if node.module == old:
            node.module = new
    graph.rename_values({v: new + v[len(old):] for v in graph.values if v.startswith(old + ".")})
    graph.invalidate()


def _place_activation(graph: Graph, mlp: str, region: list) -> None:
    """The feed-forward's activation as ``<mlp>.act_fn``: the ops from the gate's output (gated) or the up
    projection's output to the down projection's input that the other branch does not reach.  A gate whose
    output is not activated is the up projection: the two names are swapped."""
    h = graph.hierarchy
    down = h.composites.get(f"{mlp}.down_proj")
    if down is None or len(down.inputs) != 1:
        return
    first = [n for n in ("gate_proj", "up_proj") if f"{mlp}.{n}" in h.composites]

    def activation(src: str, other: str | None) -> list:
        out = h[f"{mlp}.{src}"].outputs
        if len(out) != 1:
            return []
        ids = {n.id for n in region if n.module == mlp}  # not the projections' own ops
        ops = [n for n in _between(graph, out[0], down.inputs[0]) if n.id in ids]
        if other is not None:
            theirs = h[f"{mlp}.{other}"].outputs
            reached = {n.id for n in _between(graph, theirs[0], down.inputs[0])} if len(theirs) == 1 else set()
            ops = [n for n in ops if n.id not in reached]
        return ops

    if first == ["gate_proj", "up_proj"]:
        ops = activation("gate_proj", "up_proj")
        if not ops and (ops := activation("up_proj", "gate_proj")):
            scratch = f"{mlp}.swap_proj"
            for old, new in [(f"{mlp}.up_proj", scratch), (f"{mlp}.gate_proj", f"{mlp}.up_proj"),
                             (scratch, f"{mlp}.gate_proj")]:
                _move(graph, old, new)
    elif first == ["up_proj"]:
        ops = activation("up_proj", None)
    else:
        return
    if not ops:
        return
    path = f"{mlp}.act_fn"
    graph.modules[path] = "Activation"
    for node in ops:
        node.module, node.module_class = path, "Activation"


def _flattening(graph: Graph, members: list) -> list:
    """The reshapes around a projection that flatten its input to rows and restore the leading dims after it
    (how torch exports ``Linear`` and ``Conv1D`` on 3-d inputs, ``view -> Gemm -> view``): they are the
    projection's own, as in the named file, so an edit sees the input and output the module had."""
    producers, consumers = graph.producers, graph.consumers
    ids = {m.id for m in members}
    ins = {i for m in members for i in m.inputs if graph.values[i].kind in ("activation", "input")
           and (i not in producers or producers[i].id not in ids)}
    outs = {o for m in members for o in m.outputs if o and any(c.id not in ids for c in consumers.get(o, []))}
    if len(ins) != 1 or len(outs) != 1:
        return []
    (x,), (y,) = ins, outs
    rank = lambda name: len(graph.values[name].shape)  # noqa: E731
    extra = []
    before, after = producers.get(x), consumers.get(y, [])
    if rank(x) == 2 and before is not None and before.op in RESHAPE_OPS and rank(before.inputs[0]) >= 3 \
            and all(c.id in ids for c in consumers[x]):  # the rows are the projection's alone
        extra.append(before)
        x = before.inputs[0]
    if rank(y) == 2 and len(after) == 1 and after[0].op in RESHAPE_OPS and rank(after[0].outputs[0]) >= 3:
        extra.append(after[0])
        y = after[0].outputs[0]
    if graph.values[x].shape[:-1] != graph.values[y].shape[:-1]:
        return []
    return extra
