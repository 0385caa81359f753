"""Rule-based role labeler: module names and classes first, data flow where names are ambiguous.

Projections are leaf composites that hold a matmul (``mm``/``addmm``/``bmm``/
``convolution``, or ONNX ``MatMul``/``Gemm``); their role comes from the leaf's
name as the families spell it (``q_proj``, ``query``, ``q``, ``c_attn``, ...)
and from whether an attention module encloses them.  An attention module is the
lowest composite holding its query and output projections; a feed-forward is
the lowest composite holding its up and down projections, or, when that would
be the whole block (BERT, Whisper), the block's children that hold them.
Normalisations are placed by data flow: one that feeds the query/key/value
projections (pre-norm) or is fed by the attention output (post-norm) is
``norm.attn``, likewise for the feed-forward; one after a stack's last block is
``norm.final``.  A feed-forward's up projection whose output is split in two
halves, one through the activation and then multiplied by the other (Phi-3's
fused ``gate_up_proj``: ``act(gate) * up``), is its gate projection too, as
GPT-2's ``c_attn`` is one ``attn.qkv``: it holds both, so it has both roles.
"""

from __future__ import annotations

from gnn.ir.families import ACTIVATIONS, CONV_OPS, MATMUL_OPS
from gnn.ir.graph import Graph
from gnn.ir.hierarchy import ancestors
from gnn.roles.base import RoleMap, register

_PRODUCTS = MATMUL_OPS | CONV_OPS  # a module that runs one of these (on a weight) is a projection
_ATTN_NAMES = {"self_attn", "attn", "attention", "self_attention", "selfattention", "encdecattention",
               "encoder_attn", "cross_attn", "crossattention", "cross_attention", "mixer", "attn_layer"}
_Q = {"q_proj", "query", "q", "wq", "query_proj", "q_lin", "to_q", "q_linear", "q_a_proj", "q_b_proj"}
_K = {"k_proj", "key", "k", "wk", "key_proj", "k_lin", "to_k", "k_linear"}
_V = {"v_proj", "value", "v", "wv", "value_proj", "v_lin", "to_v", "v_linear"}
_O = {"o_proj", "out_proj", "o", "wo", "dense", "c_proj", "out_lin", "proj", "to_out", "output_proj", "out",
      "o_linear", "dense_out"}
_QKV = {"c_attn", "qkv_proj", "query_key_value", "wqkv", "qkv", "in_proj", "w_pack", "qkv_linear"}
_UP = {"up_proj", "gate_up_proj", "intermediate_dense", "fc1", "c_fc", "wi", "wi_1", "w3", "fc_in", "lin1", "dense_h_to_4h", "linear_1", "fc_1", "up"}
_GATE = {"gate_proj", "wi_0", "w1", "gate"}
_DOWN = {"down_proj", "output_dense", "fc2", "c_proj", "wo", "fc_out", "lin2", "dense_4h_to_h", "w2", "linear_2", "fc_2", "down"}
_PROJECTIONS = {"attn.q": _Q, "attn.k": _K, "attn.v": _V, "attn.o": _O, "attn.qkv": _QKV, "mlp.up": _UP,
                "mlp.gate": _GATE, "mlp.down": _DOWN}


def projection_role(name: str) -> str | None:
    """The role a projection module named ``name`` has in the families that use the name (``q_proj``: attn.q),
    or None where the name is not one, or names different roles in different families (``c_proj``, ``wo``)."""
    found = [role for role, names in _PROJECTIONS.items() if name.lower() in names]
    return found[0] if len(found) == 1 else None


_ACT_NAMES = {"act", "act_fn", "activation_fn", "activation", "intermediate_act_fn", "act_layer", "hidden_act",
              "transform_act_fn"}
_ACT_CLASSES = {"gelu", "silu", "relu", "tanh", "quickgelu", "gelutanh", "sigmoid", "mish", "relu6", "leakyrelu"}
_ROUTER_NAMES = {"router", "gate", "switch"}  # a mixture-of-experts router is not a gated MLP's gate
_EXPERT_PARAMS = {"gate_up_proj": "mlp.up", "up_proj": "mlp.up", "gate_proj": "mlp.gate", "down_proj": "mlp.down",
                  "w1": "mlp.gate", "w3": "mlp.up", "w2": "mlp.down"}
_POS_NAMES = {"wpe", "position_embeddings", "embed_positions", "pos_embed", "position_embedding", "pos_embedding"}


def _leaf(path: str) -> str:
    return path.rpartition(".")[2].lower()


@register("rules")
def label_by_rules(graph: Graph) -> RoleMap:
    h = graph.hierarchy
    by_id = graph.node_by_id
    roles = RoleMap()
    roles.add_blocks(h)

    def is_attention(path: str) -> bool:
        c = h[path] if path in h else None
        cls = (c.module_class if c else graph.modules.get(path, "")).lower()
        return _leaf(path) in _ATTN_NAMES or ("attention" in cls and "layer" not in cls)

    def attention_ancestor(path: str) -> str | None:
        """The outermost attention-like module enclosing ``path`` inside its block."""
        block = roles.block_of(path)
        found = None
        for p in reversed(ancestors(path)[:-1]):
            if p == block or (block is None and found is not None):
                break
            if is_attention(p):
                found = p
        return found

    # 1. projections
    projections: dict[str, str] = {}  # leaf path -> role
    for path, comp in h.composites.items():
        if comp.children or not path:
            continue
        if not any(by_id[n].op in _PRODUCTS for n in comp.nodes):
            continue
        if _leaf(path) == "base_layer":  # a PEFT layer wrapping the projection (LoRA): the wrapper takes the role
            path = path.rpartition(".")[0]
        name, parent = _leaf(path), _leaf(path.rpartition(".")[0])
        in_attn = attention_ancestor(path) is not None
        if in_attn:
            if name in _QKV:
                projections[path] = "attn.qkv"
            elif name in _Q:
                projections[path] = "attn.q"
            elif name in _K:
                projections[path] = "attn.k"
            elif name in _V:
                projections[path] = "attn.v"
            elif name in _O or parent == "output":
                projections[path] = "attn.o"
        elif roles.block_of(path) is not None or "mlp" in path or "experts" in path:
            siblings = {_leaf(c) for c in h[path.rpartition(".")[0]].children} if "." in path else set()
            if "router" in comp.module_class.lower() or (name in _ROUTER_NAMES and "experts" in siblings):
                continue
            if name in _GATE:
                projections[path] = "mlp.gate"
            elif name in _UP or parent == "intermediate":
                projections[path] = "mlp.up"
            elif name in _DOWN or (name == "dense" and parent == "output"):
                projections[path] = "mlp.down"
    for path, role in projections.items():
        roles.add(path, role)
        if role == "mlp.up" and _gates_half_of_itself(graph, path):
            roles.add(path, "mlp.gate")  # after mlp.up: a node's label is its module's first role
    # experts that hold their weights as batched parameters rather than Linear modules
    for path, comp in h.composites.items():
        if "expert" in _leaf(path) or "experts" in comp.module_class.lower():
            for param in comp.parameters:
                role = _EXPERT_PARAMS.get(param.rpartition(".")[2])
                if role and param.rpartition(".")[0] == path:
                    roles.parameters[param] = role
                    projections.setdefault(path, role)  # for grouping and data-flow walks

    # 2. attention and feed-forward modules
    def lca(paths: list[str]) -> str:
        common = ancestors(paths[0])
        for p in paths[1:]:
            anc = set(ancestors(p))
            common = [c for c in common if c in anc]
        return common[-1]

    groups: dict[str, list[str]] = {}
    for path, role in projections.items():
        if role.startswith("attn."):
            groups.setdefault(attention_ancestor(path), []).append(path)
    for attn_path, members in groups.items():
        top = lca(members + [attn_path])
        roles.add(top, "attn")
    mlp_groups: dict[str, list[str]] = {}
    for path, role in projections.items():
        if role.startswith("mlp."):
            mlp_groups.setdefault(roles.block_of(path) or path.rpartition(".")[0], []).append(path)
    for block, members in mlp_groups.items():
        top = lca(members)
        if top == block or top in roles.blocks or top == "":
            # no single module: the block's children that make up the feed-forward
            children = {p for m in members for p in ancestors(m) if p.rpartition(".")[0] == block}
            for child in sorted(children):
                roles.add(child, "mlp")
            mlp_paths = sorted(children)
        else:
            roles.add(top, "mlp")
            mlp_paths = [top]
        # activations of this feed-forward: modules, else the ops themselves
        for p in [p for p in h.composites if any(p == m or p.startswith(m + ".") for m in mlp_paths)]:
            cls = h[p].module_class.lower()
            if _leaf(p) in _ACT_NAMES or "activation" in cls or cls in _ACT_CLASSES:
                roles.add(p, "act")
        if block in roles.blocks:
            for child in h[block].children:
                if _leaf(child) in _ACT_NAMES and not roles.composites.get(child):
                    roles.add(child, "act")
        if not any("act" in roles.composites.get(p, []) for p in h.composites if any(p.startswith(m) for m in mlp_paths)):
            for m in mlp_paths:
                for n in h[m].nodes:
                    if by_id[n].op in ACTIVATIONS:
                        roles.add_node(n, "act")

    # activation modules outside feed-forwards too (an MLM head's transform, a pooler)
    for path, comp in h.composites.items():
        cls = comp.module_class.lower()
        if path and not comp.children and comp.nodes and (
            _leaf(path) in _ACT_NAMES or "activation" in cls or cls in _ACT_CLASSES
        ):
            roles.add(path, "act")

    # 3. normalisations
    _label_norms(graph, roles, projections)

    # 4. embeddings and the LM head
    vocab = None
    for path, comp in h.composites.items():
        ops = [by_id[n] for n in comp.nodes]
        emb = [n for n in ops if n.op == "aten.embedding.default" or n.op == "onnx::Gather"]
        if not emb or comp.children and len(ops) > 8:
            continue
        if roles.block_of(path) is not None:
            continue
        idx = emb[0].inputs[1] if len(emb[0].inputs) > 1 else None
        table = emb[0].inputs[0]
        if _leaf(path) in _POS_NAMES:
            roles.add(path, "embed.positions")
        elif idx is not None and _from_input(graph, idx):
            roles.add(path, "embed.tokens")
            vocab = graph.values[table].shape[0] if graph.values[table].shape else None
    if vocab is not None:
        for out in graph.outputs:
            src = graph.producers.get(out.value)
            for _ in range(6):  # logits come out of the head through a few views
                if src is None or src.op in _PRODUCTS:
                    break
                ins = [i for i in src.inputs if i in graph.producers]
                src = graph.producers[ins[0]] if ins else None
            if src is not None and src.op in _PRODUCTS and src.module and roles.block_of(src.module) is None:
                if vocab in graph.values[src.outputs[0]].shape:
                    roles.add(src.module, "lm_head")
    return roles


_SPLIT_OPS = frozenset({"aten.split_with_sizes.default", "aten.split.Tensor", "aten.chunk.default",
                        "aten.unbind.int", "onnx::Split"})
_SLICE_OPS = frozenset({"aten.slice.Tensor", "onnx::Slice"})
_MUL_OPS = frozenset({"aten.mul.Tensor", "onnx::Mul"})


def _gates_half_of_itself(graph: Graph, path: str, depth: int = 6) -> bool:
    """Is the projection at ``path`` a fused gate and up projection: its output split in two equal halves along
    the last dim, ``a`` and ``b``, and ``f(a) * b`` computed within ``depth`` ops of ``a`` (the activation)?"""
    h = graph.hierarchy
    for out in h[path].outputs:
        width = graph.values[out].shape[-1] if graph.values[out].shape else None
        splits = [c for c in graph.consumers.get(out, []) if c.op in _SPLIT_OPS]
        halves = [[o for o in c.outputs if o] for c in splits]
        slices = [o for c in graph.consumers.get(out, []) if c.op in _SLICE_OPS for o in c.outputs if o]
        if len(slices) == 2:
            halves.append(slices)
        for pair in halves:
            shapes = [graph.values[v].shape for v in pair]
            if len(pair) != 2 or shapes[0] != shapes[1] or not shapes[0] or \
                    (isinstance(width, int) and shapes[0][-1] * 2 != width):
                continue
            for a, b in (pair, pair[::-1]):
                seen, frontier = {a}, [a]
                for _ in range(depth):  # the values computed from a alone: the activation of the gate half
                    frontier = [o for v in frontier for c in graph.consumers.get(v, []) if b not in c.inputs
                                for o in c.outputs if o and o not in seen]
                    seen.update(frontier)
                if any(c.op in _MUL_OPS and set(c.inputs) & (seen - {a}) for c in graph.consumers.get(b, [])):
                    return True
    return False


def _from_input(graph: Graph, value: str, depth: int = 6) -> bool:
    """Does ``value`` come from a token-id input (``input_ids``, ``decoder_input_ids``) within ``depth`` ops?"""
    for _ in range(depth):
        v = graph.values.get(value)
        if v is not None and v.kind == "input":
            return value.endswith("input_ids")
        node = graph.producers.get(value)
        if node is None or not node.inputs:
            return False
        value = node.inputs[0]
    return False


def _label_norms(graph: Graph, roles: RoleMap, projections: dict[str, str]) -> None:
    h = graph.hierarchy
    norms = [
        p for p, c in h.composites.items()
        if p and "norm" in c.module_class.lower() and not c.children
    ]
    owner = {n.id: n.module for n in graph.nodes}

    def role_of(module: str) -> str | None:
        for p in ancestors(module):
            if p in projections:
                return projections[p]
        return None

    def reach(start: list[str], forward: bool, limit: int = 12) -> set[str]:
        """The projection roles first met walking the data flow from ``start`` values.

        Several when one norm feeds attention and feed-forward in parallel (GPT-J, Falcon).
        """
        seen, frontier = set(), list(start)
        for _ in range(limit):
            nxt, found = [], set()
            for v in frontier:
                nodes = graph.consumers.get(v, []) if forward else (
                    [graph.producers[v]] if v in graph.producers else [])
                for node in nodes:
                    if node.id in seen:
                        continue
                    seen.add(node.id)
                    role = role_of(owner[node.id])
                    if role:
                        found.add(role)
                    else:
                        nxt += [o for o in node.outputs if o] if forward else node.inputs
            if found:
                return found
            frontier = nxt
        return set()

    last_block_end: dict[str, int] = {}
    index = {n.id: i for i, n in enumerate(graph.nodes)}
    for block, (prefix, _) in roles.blocks.items():
        end = max((index[n] for n in h[block].nodes), default=-1)
        last_block_end[prefix] = max(last_block_end.get(prefix, -1), end)
    for path in norms:
        comp = h[path]
        if not comp.nodes:
            continue
        if roles.block_of(path) is not None:
            # Pre-norm: the residual stream also flows past the norm (its input has other
            # readers); the norm belongs to the sublayer it feeds.  Post-norm: the norm
            # closes the sublayer that produced its input.
            inside = set(comp.nodes)
            readers = {n.id for v in comp.inputs for n in graph.consumers.get(v, []) if n.id not in inside}
            if readers:
                table = {"attn.q": "norm.attn", "attn.k": "norm.attn", "attn.v": "norm.attn",
                         "attn.qkv": "norm.attn", "mlp.up": "norm.mlp", "mlp.gate": "norm.mlp"}
                found = reach(comp.outputs, forward=True)
            else:
                table = {"attn.o": "norm.attn", "mlp.down": "norm.mlp"}
                found = reach(comp.inputs, forward=False)
            for role in sorted({table[f] for f in found if f in table}):
                roles.add(path, role)
            continue
        first = min(index[n] for n in comp.nodes)
        stack = path.rpartition(".")[0]
        for prefix, end in last_block_end.items():
            if first > end and (prefix.startswith(stack + ".") or prefix.rpartition(".")[0] == stack or stack == ""):
                roles.add(path, "norm.final")
                break
