"""Facts about an architecture, read off its graph: what descriptions and answers are made of.

Every fact comes from the graph (its ops, shapes, roles and the inputs it was traced
with), never from a model card or from what the language model believes: depth is
the number of repeated blocks, the width is the token embedding's output size, heads
and KV heads are where queries and keys are split into heads (the same analysis
``set_kv_heads`` uses), the norm and the activation are the ops their modules run.
A fact the graph does not show is ``None`` and is said to be unknown.

A Hugging Face graph also keeps the few settings of its config that a short trace cannot show
(``graph.meta["config"]``, recorded by the importer): the sliding window, the rope scaling, and
where the graph lacks them soft-capping and the experts' routing.  Facts taken from there are
named in ``from_config``, and descriptions say so.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import pathlib
from dataclasses import dataclass, field

from gnn.ir.families import ACTIVATIONS, MATMUL_OPS, SOFTMAX_OPS, norm_kind
from gnn.ir.graph import Graph
from gnn.roles import RoleMap, label

CORPORA = pathlib.Path(__file__).resolve().parents[1] / "corpora"

# transformers' activation modules by class name (those that trace into several primitive ops)
_ACT_CLASSES = {"NewGELUActivation": "GELU (tanh approximation)", "GELUTanh": "GELU (tanh approximation)",
                "PytorchGELUTanh": "GELU (tanh approximation)", "FastGELUActivation": "GELU (tanh approximation)",
                "QuickGELUActivation": "QuickGELU", "GELUActivation": "GELU", "SiLUActivation": "SiLU",
                "SiLU": "SiLU", "ReLUSquaredActivation": "squared ReLU", "ReLU": "ReLU", "GELU": "GELU",
                "Tanh": "tanh", "MishActivation": "Mish", "Mish": "Mish"}


@dataclass
class Facts:
    name: str
    kind: str | None = None  # decoder, encoder, encoder-decoder, vision, audio, multimodal
    layers: int = 0  # repeated blocks, all stacks
    stacks: dict[str, int] = field(default_factory=dict)  # stack path -> blocks
    hidden: int | None = None
    hidden_last: int | None = None  # the last stage's width, where stages differ (Swin: 96 first, 768 last)
    vocab: int | None = None  # the tokens the model predicts over (its logits), else its embedding table's rows
    vocab_source: str | None = None  # logits, embedding
    heads: int | None = None
    kv_heads: int | None = None
    head_dim: int | None = None
    attention: str | None = None  # multi-head, grouped-query, multi-query
    fused_qkv: bool = False
    sliding_window: int | None = None  # tokens a query attends back over, in the layers that use a window (config)
    sliding_window_layers: list[int] | None = None  # the config's layers with the window; None: every layer
    config_layers: int | None = None  # how many layers the config's layer_types covers
    rope_scaling: dict | None = None  # rope scaling other than none: type, factor, layers (the attention kind)
    softcapping: dict | None = None  # cap * tanh(x / cap): attention (on the scores), final (on the logits)
    norm: str | None = None  # RMSNorm, LayerNorm
    norm_position: str | None = None  # pre-norm, post-norm
    activation: str | None = None
    gated_mlp: bool = False
    fused_gate_up: bool = False  # one projection computes gate and up, split in halves (Phi-3's gate_up_proj)
    mlp_hidden: int | None = None
    experts: int | None = None  # a mixture of experts' routed experts per layer
    experts_per_token: int | None = None  # the router's top-k
    shared_experts: int | None = None  # experts every token goes through (DeepSeek, Qwen2-MoE)
    positions: str | None = None  # rotary, learned absolute, relative bias, alibi, sinusoidal
    tied_embeddings: bool = False
    params: int = 0
    trainable_params: int = 0
    lora: bool = False
    adapters: bool = False
    methods: list[dict] = field(default_factory=list)  # corpus entries the graph shows: id, name, paper, arxiv, year
    from_config: list[str] = field(default_factory=list)  # the fields above read from the config, not the graph

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@functools.cache
def methods_corpus() -> dict[str, dict]:
    return {e["id"]: e for e in json.loads((CORPORA / "methods.json").read_text())}


def _ops_of(graph: Graph, paths) -> list[str]:
    h = graph.hierarchy
    out = []
    for p in paths:
        out.extend(graph.node_by_id[n].op for n in h[p].nodes)
    return out


def _out_dim(graph: Graph, path: str) -> int | None:
    h = graph.hierarchy
    outs = h[path].outputs
    if not outs:
        return None
    shape = graph.values[outs[0]].concrete_shape(graph.dim_hints)
    return int(shape[-1]) if shape else None


def _first_block_paths(roles: RoleMap, role: str) -> list[str]:
    """Composites with ``role`` in the first block that has any (else anywhere)."""
    paths = roles.paths(role)
    if not paths:
        return []
    first = roles.block_of(paths[0])
    return [p for p in paths if roles.block_of(p) == first]


def _written_out(ops: list[str]) -> str | None:
    """Activations that trace into several primitive ops, known by their op pattern."""
    muls = sum(op in ("aten.mul.Tensor", "onnx::Mul") for op in ops)
    if any(op in ("aten.tanh.default", "onnx::Tanh") for op in ops) and muls >= 3:
        return "GELU (tanh approximation)"  # 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3)))
    if any(op in ("aten.erf.default", "onnx::Erf") for op in ops):
        return "GELU"
    if any(op in ("aten.sigmoid.default", "onnx::Sigmoid") for op in ops):
        return "QuickGELU" if muls >= 2 else "SiLU"  # x sigmoid(1.702 x) / x sigmoid(x)
    return None


def _activation(graph: Graph, roles: RoleMap) -> str | None:
    h = graph.hierarchy
    attn = roles.paths("attn")
    acts = _first_block_paths(roles, "act")
    # the feed-forward's activation, not one inside attention (Swin v2's position-bias MLP has a ReLU)
    for path in [p for p in acts if not any(p.startswith(a + ".") for a in attn)] or acts:
        cls = h[path].module_class or ""
        if cls in _ACT_CLASSES:
            return _ACT_CLASSES[cls]
        ops = _ops_of(graph, [path])
        if (found := _written_out(ops)) is not None:
            return found
        for op in ops:
            if op in ACTIVATIONS:
                return ACTIVATIONS[op]
    for node_id, rs in roles.nodes.items():
        if "act" in rs:
            node = graph.node_by_id[node_id]
            if node.module and (found := _written_out([n.op for n in graph.nodes if n.module == node.module])):
                return found
            if _silu_written_out(graph, node):
                return "SiLU"
            if node.op == "aten.gelu.default" and node.kwargs.get("approximate") == "tanh":
                return "GELU (tanh approximation)"
            if node.op in ACTIVATIONS:
                return ACTIVATIONS[node.op]
    if not roles.paths("act") and not roles.nodes and graph.meta.get("inferred_modules"):
        # modules rebuilt from a stripped file hold only projections: the activation by its op pattern
        if any(_silu_written_out(graph, node) for node in graph.nodes):
            return "SiLU"
        return _written_out([n.op for n in graph.nodes if n.op in ("onnx::Erf", "aten.erf.default")])
    return None


def _attention(graph: Graph, roles: RoleMap) -> tuple[int | None, int | None, int | None]:
    from gnn.analysis.attention import attention_heads

    return attention_heads(graph, roles) or (None, None, None)


def _positions(graph: Graph, roles: RoleMap) -> str | None:
    if roles.paths("embed.positions") or _added_position_table(graph, roles):
        return "learned absolute"
    ops = {n.op for n in graph.nodes}
    if {"aten.cos.default", "aten.sin.default"} <= ops or {"onnx::Cos", "onnx::Sin"} <= ops:
        return "rotary" if _rotates_half(graph) else "sinusoidal"
    if _linear_biases(graph):
        return "alibi"
    h = graph.hierarchy
    for path in roles.paths("attn"):  # T5-style: a bucketed relative-position embedding inside attention
        if any(graph.node_by_id[n].op in ("aten.embedding.default", "onnx::Gather") and
               any(graph.values[i].kind == "parameter" for i in graph.node_by_id[n].inputs) for n in h[path].nodes):
            return "relative bias"
    return None


def _added_position_table(graph: Graph, roles: RoleMap) -> bool:
    """A trained table added to the embeddings before the first block (ViT's position embeddings):
    an add reading a parameter shaped (1, positions, width)."""
    order = {n.id: i for i, n in enumerate(graph.nodes)}
    h = graph.hierarchy
    starts = [min(order[n] for n in h[b].nodes) for b in roles.blocks if h[b].nodes]
    if not starts:
        return False
    for node in graph.nodes[:min(starts)]:
        if node.op in ("aten.add.Tensor", "onnx::Add"):
            for i in node.inputs:
                v = graph.values[i]
                if v.kind == "parameter" and len(v.shape) == 3 and v.shape[0] == 1:
                    return True
    return False


def _linear_biases(graph: Graph, limit: int = 60) -> bool:
    """ALiBi (BLOOM, MPT): what is added to the attention scores before the softmax is built from
    positions (arange, cumsum) and per-head slopes (a power), not looked up in a trained table."""
    for soft in graph.nodes:
        if soft.op not in SOFTMAX_OPS:
            continue
        seen, todo, found = set(), [soft], set()
        while todo and len(seen) < limit:
            n = todo.pop(0)
            if n.id in seen:
                continue
            seen.add(n.id)
            found.add(n.op)
            if n.op in MATMUL_OPS and n is not soft:
                continue  # the score product itself: queries and keys lie behind it
            todo += [graph.producers[i] for i in n.inputs if i in graph.producers]
        if any(op.startswith("aten.pow.") or op == "onnx::Pow" for op in found) and \
                any(op.startswith(("aten.arange", "aten.cumsum")) or op in ("onnx::Range", "onnx::CumSum")
                    for op in found):
            return True
    return False


def _rotates_half(graph: Graph) -> bool:
    """RoPE's rotate_half: a negation concatenated with a slice of the same tensor."""
    for node in graph.nodes:
        if node.op in ("aten.cat.default", "onnx::Concat"):
            producers = [graph.producers.get(i) for i in node.inputs]
            if any(p is not None and p.op in ("aten.neg.default", "onnx::Neg") for p in producers):
                return True
    return False


def _kind(graph: Graph) -> str | None:
    from gnn.vocab import kind_of

    inputs = graph.meta.get("example_inputs") or {}
    cls = graph.meta.get("model_class")
    if not inputs or not cls:
        return None
    kind = kind_of(",".join(inputs), cls)
    if kind == "encoder" and "ForConditionalGeneration" in cls:
        # vision/audio language models (Llava, Qwen2-VL, Gemma 3, Voxtral) traced on their text path:
        # a generation head without a separate decoder input (the dataset's kind labels still say
        # encoder for these 47 types; to be relabelled with the next evaluation run)
        kind = "multimodal"
    return kind


def _norm_position(graph: Graph, roles: RoleMap) -> str | None:
    """Pre-norm when a block's first norm runs before its attention projections, post-norm after."""
    h = graph.hierarchy
    norms = _first_block_paths(roles, "norm.attn")
    projections = [p for r in ("attn.q", "attn.qkv") for p in _first_block_paths(roles, r)]
    if not norms or not projections:
        return None
    order = {n.id: i for i, n in enumerate(graph.nodes)}
    first = lambda p: min((order[n] for n in h[p].nodes), default=None)  # noqa: E731
    n, q = first(norms[0]), first(projections[0])
    if n is None or q is None:
        return None
    return "pre-norm" if n < q else "post-norm"


def _with_modules(graph: Graph) -> Graph:
    """A graph without module paths (a stripped ONNX file) with its projections and blocks rebuilt from the
    learned labeler's roles, as the edit engine does; unchanged if they cannot be rebuilt."""
    from gnn.errors import MadError
    from gnn.roles.structure import with_inferred_modules

    try:
        return with_inferred_modules(graph)
    except MadError:
        return graph


def _silu_written_out(graph: Graph, node) -> bool:
    """``x * sigmoid(x)``: the sigmoid's output multiplied by its own input (SiLU as ONNX exports it)."""
    if node.op not in ("aten.sigmoid.default", "onnx::Sigmoid") or not node.inputs:
        return False
    return any(c.op in ("aten.mul.Tensor", "onnx::Mul") and node.inputs[0] in c.inputs
               for o in node.outputs if o for c in graph.consumers.get(o, []))


def facts(graph: Graph, roles: RoleMap | None = None) -> Facts:
    """The facts of ``graph`` (``roles``: a role map of it; default the rule labeler's, or for a graph
    without module names the learned labeler's, with its projections and blocks rebuilt)."""
    if roles is None:
        graph = _with_modules(graph)
        roles = label(graph, "rules")
    h = graph.hierarchy
    f = Facts(name=graph.meta.get("model_class") or graph.name, kind=_kind(graph),
              params=graph.num_parameters, trainable_params=graph.num_trainable_parameters)
    f.stacks = {stack: len(blocks) for stack, blocks in roles.stacks().items()}
    f.layers = sum(f.stacks.values())
    embeds = roles.paths("embed.tokens")
    if embeds:
        f.hidden = _out_dim(graph, embeds[0])
        # the table the lookup reads (a shared table may be owned by another module)
        weights = [i for n in h[embeds[0]].nodes for i in graph.node_by_id[n].inputs
                   if graph.values[i].kind == "parameter" and len(graph.values[i].shape) == 2]
        if weights:
            f.vocab, f.vocab_source = int(graph.values[weights[0]].concrete_shape(graph.dim_hints)[0]), "embedding"
    # the logits' last dim: an embedding table can hold more rows (Molmo2's 128 image tokens) than the head predicts
    logits = [graph.values[o.value].concrete_shape(graph.dim_hints) for o in graph.outputs if o.name == "logits"]
    if logits and len(logits[0]) == 3:
        f.vocab, f.vocab_source = int(logits[0][-1]), "logits"
    if f.hidden is None:  # no token embedding (vision, audio): the residual stream's width
        outs = _first_block_paths(roles, "attn.o") or _first_block_paths(roles, "mlp.down")
        f.hidden = _out_dim(graph, outs[0]) if outs else None
        last = roles.paths("attn.o") or roles.paths("mlp.down")
        if f.hidden and last and (width := _out_dim(graph, last[-1])) != f.hidden:
            f.hidden_last = width  # a hierarchical model: each stage wider than the one before
    f.heads, f.kv_heads, f.head_dim = _attention(graph, roles)
    if f.heads:
        f.attention = ("multi-head" if f.kv_heads == f.heads else "multi-query" if f.kv_heads == 1
                       else "grouped-query")
    f.fused_qkv = bool(roles.paths("attn.qkv"))
    norm_paths = [p for r in ("norm.attn", "norm.mlp") for p in _first_block_paths(roles, r)]
    f.norm = norm_kind(_ops_of(graph, norm_paths)) if norm_paths else None
    f.norm_position = _norm_position(graph, roles)
    f.activation = _activation(graph, roles)
    f.gated_mlp = bool(roles.paths("mlp.gate"))
    ups = _first_block_paths(roles, "mlp.up")
    f.fused_gate_up = any("mlp.gate" in roles.composites[p] for p in ups)
    f.mlp_hidden = _out_dim(graph, ups[0]) if ups else None
    if f.fused_gate_up and f.mlp_hidden:
        f.mlp_hidden //= 2  # gate and up halves
    f.softcapping = _softcapping(graph, roles)
    f.experts, f.experts_per_token = _experts(graph, roles)
    _read_config(f, graph.meta.get("config") or {})
    f.positions = _positions(graph, roles)
    tied = graph.meta.get("tied_parameters") or {}
    heads = roles.paths("lm_head")
    f.tied_embeddings = bool(tied) and bool(heads) and bool(embeds) and any(
        p.startswith(heads[0] + ".") or p.startswith(embeds[0] + ".") for pair in tied.items() for p in pair)
    modules = [n.module for n in graph.nodes if n.module]
    f.lora = any(".lora_A" in m or ".lora_B" in m for m in modules)
    f.adapters = any(e.get("op") == "insert_adapter" for e in graph.meta.get("edits", []))
    f.methods = _methods(f)
    return f


def _softcapping(graph: Graph, roles: RoleMap) -> dict | None:
    """Gemma-2's soft-capping, ``cap * tanh(x / cap)``: a tanh between a division and a multiplication by the
    same number, on the attention scores (inside attention) or on the logits (outside every block)."""
    attn = roles.paths("attn")
    found = {}
    for node in graph.nodes:
        if node.op != "aten.tanh.default" or not node.inputs or node.inputs[0] not in graph.producers:
            continue
        div = graph.producers[node.inputs[0]]
        cap = div.args[1] if div.op == "aten.div.Tensor" and len(div.args) > 1 else None
        if not isinstance(cap, (int, float)) or isinstance(cap, bool) or not node.outputs[0]:
            continue
        if not any(c.op == "aten.mul.Tensor" and cap in c.args for c in graph.consumers.get(node.outputs[0], [])):
            continue
        module = node.module or ""
        if any(module == a or module.startswith(a + ".") for a in attn):
            found.setdefault("attention", float(cap))
        elif roles.block_of(module) is None:
            found.setdefault("final", float(cap))
    return found or None


def _experts(graph: Graph, roles: RoleMap) -> tuple[int | None, int | None]:
    """Routed experts per layer (the leading dim of the experts' batched weights) and the router's top-k (the
    ``topk`` over that many scores in the same feed-forward)."""
    weights = [p for p, r in roles.parameters.items() if r in ("mlp.up", "mlp.down")]
    if not weights:
        return None, None
    first = roles.block_of(weights[0])
    shape = graph.values[weights[0]].concrete_shape(graph.dim_hints) if weights[0] in graph.values else None
    experts = int(shape[0]) if shape and len(shape) == 3 else None
    top_k = None
    for node in graph.nodes:
        if node.op == "aten.topk.default" and experts and node.module and roles.block_of(node.module) == first:
            scores = graph.values[node.inputs[0]].concrete_shape(graph.dim_hints)
            if scores and int(scores[-1]) == experts and len(node.args) > 1 and isinstance(node.args[1], int):
                top_k = node.args[1]
                break
    return experts, top_k


def _read_config(f: Facts, config: dict) -> None:
    """The facts a short trace cannot show, from the settings the importer kept (``graph.meta["config"]``); facts
    the graph showed stay."""
    def take(name, value):
        if value is not None and getattr(f, name) is None:
            setattr(f, name, value)
            f.from_config.append(name)

    def whole(v):
        return v if isinstance(v, int) and not isinstance(v, bool) else None

    kinds = config.get("layer_types")
    window = whole(config.get("sliding_window"))
    if window and config.get("use_sliding_window") is not False:
        if isinstance(kinds, list) and kinds:
            layers = [i for i, k in enumerate(kinds) if k == "sliding_attention"]
            if layers:
                take("sliding_window", window)
                if len(layers) < len(kinds):
                    take("sliding_window_layers", layers)
                    take("config_layers", len(kinds))
        else:
            take("sliding_window", window)
    rope = config.get("rope_parameters", config.get("rope_scaling"))
    if isinstance(rope, dict):
        # Gemma 3 keeps one rope setting per attention kind: {"full_attention": {...}, "sliding_attention": {...}}
        per_kind = {k: v for k, v in rope.items() if isinstance(v, dict)} or {None: rope}
        for kind, params in per_kind.items():
            name = params.get("rope_type", params.get("type"))
            if name and name != "default":
                scaling = {"type": name}
                if isinstance(params.get("factor"), (int, float)):
                    scaling["factor"] = params["factor"]
                if kind:
                    scaling["layers"] = kind
                take("rope_scaling", scaling)
                break
    caps = {k: float(config[c]) for k, c in (("attention", "attn_logit_softcapping"),
                                             ("final", "final_logit_softcapping"))
            if isinstance(config.get(c), (int, float)) and config[c]}
    if caps and f.softcapping is None:
        take("softcapping", caps)
    experts = next((whole(config.get(k)) for k in ("num_local_experts", "num_experts", "n_routed_experts")
                    if whole(config.get(k))), None)
    if experts and experts > 1:
        take("experts", experts)
        take("experts_per_token", whole(config.get("num_experts_per_tok")))
        shared = whole(config.get("n_shared_experts")) or (1 if whole(config.get("shared_expert_intermediate_size"))
                                                            else None)
        take("shared_experts", shared)


def _methods(f: Facts) -> list[dict]:
    corpus = methods_corpus()
    ids = []
    if f.attention:
        ids.append({"multi-head": "multi_head_attention", "grouped-query": "grouped_query_attention",
                    "multi-query": "multi_query_attention"}[f.attention])
    if f.norm:
        ids.append("rmsnorm" if f.norm == "RMSNorm" else "layernorm")
    if f.norm_position:
        ids.append("pre_ln" if f.norm_position == "pre-norm" else "post_ln")
    if f.gated_mlp and f.activation == "SiLU":
        ids.append("swiglu")
    elif f.gated_mlp and f.activation and f.activation.startswith("GELU"):
        ids.append("geglu")
    elif f.gated_mlp:
        ids.append("glu")
    if f.sliding_window:
        ids.append("sliding_window_attention")
    if f.softcapping:
        ids.append("logit_soft_capping")
    if f.experts:
        ids.append("deepseekmoe" if f.shared_experts else "sparsely_gated_moe")
    ids.append({"rotary": "rope", "learned absolute": "learned_position_embedding", "alibi": "alibi",
                "relative bias": "t5_relative_position_bias", "sinusoidal": "sinusoidal_position_encoding",
                None: None}[f.positions])
    if f.rope_scaling:
        ids.append({"linear": "position_interpolation", "yarn": "yarn_rope_scaling",
                    "dynamic": "yarn_rope_scaling"}.get(f.rope_scaling["type"]))
    if f.tied_embeddings:
        ids.append("tied_embeddings")
    if f.lora:
        ids.append("lora")
    if f.adapters:
        ids.append("houlsby_adapter")
    out = []
    for i in ids:
        if i and i in corpus:
            e = corpus[i]
            out.append({"id": i, "name": e["name"], "paper": e["paper"], "arxiv": e["arxiv"], "year": e["year"]})
    return out
