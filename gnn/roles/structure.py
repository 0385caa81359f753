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
  under ``layers.<b>.mlp``, the head is ``lm_head``.

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
from gnn.ir.graph import Graph, map_refs

_MATMULS = {"aten.mm.default", "aten.addmm.default", "aten.matmul.default", "aten.bmm.default", "onnx::MatMul",
            "onnx::Gemm", "aten.linear.default"}
_NAMES = {"attn.q": "q_proj", "attn.k": "k_proj", "attn.v": "v_proj", "attn.o": "o_proj", "attn.qkv": "qkv_proj",
          "mlp.up": "up_proj", "mlp.gate": "gate_proj", "mlp.down": "down_proj"}


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
    return [n for n in graph.nodes if n.op in _MATMULS and _reads_weight(graph, n)]


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

    from gnn.data.labels import NODE_ROLES

    logp = probs.clamp(min=1e-9).log()
    labels = [NODE_ROLES[i] for i in probs.argmax(-1).tolist()]
    row = {node.id: i for i, node in enumerate(graph.nodes)}
    producers, consumers = graph.producers, graph.consumers
    ups = lambda n: [producers[i] for i in n.inputs if i in producers]  # noqa: E731
    downs = lambda n: [c for o in n.outputs if o for c in consumers.get(o, [])]  # noqa: E731
    seeds = _seeds(graph)
    seed_ids = {n.id for n in seeds}
    softmaxes = [n for n in graph.nodes if labels[row[n.id]] == "attn.softmax"]
    products = {n.id for n in graph.nodes if n.op in _MATMULS and n.id not in seed_ids}
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
            group = [n for n in group if labels[row[n.id]] != "lm_head"]
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
    from gnn.roles.learned import predict_node_probs

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
    _rename_values(out, renames)
    out.meta = {**out.meta, "inferred_modules": True}
    out.invalidate()
    return out


def _rename_values(graph: Graph, renames: dict[str, str]) -> None:
    if not renames:
        return
    graph.values = {renames.get(k, k): v for k, v in graph.values.items()}
    for name, value in graph.values.items():
        if value.name in renames:
            value.name = name
            value.target = name
    graph.inputs = [renames.get(n, n) for n in graph.inputs]
    for node in graph.nodes:
        node.args = map_refs(node.args, lambda r: renames.get(r, r))
        node.kwargs = map_refs(node.kwargs, lambda r: renames.get(r, r))

