"""The way back to code: what to run in one's own transformers / peft code to make an edit program, proven.

    >>> r = recipe(graph, {"edits": [{"op": "set_kv_heads", "kv_heads": 2}]})
    >>> r.config          # the edited config.json, where the config expresses every edit (else None)
    >>> r.lora            # the LoraConfig arguments of an add_lora edit (else None)
    >>> print(r.code)     # def edit(model): ... -> the same change on a loaded transformers model

``code`` always exists: a self-contained snippet on torch, transformers and peft that performs the
program on the loaded model in place (pretrained weights kept where the edit keeps them; new blocks
copy the block they follow, fewer key/value heads average the heads they merge, as GQA uptraining
does). It names every module by its path on the graph the edit saw, so it touches exactly what MAD's
edit touched. :func:`check` proves a recipe: the source model is built again, the snippet is run on
it (and the config, when there is one, is built), and each result is imported and must equal MAD's
edited graph: parameters with their shapes and trainable flags, and every op with its arguments.

A program the snippet cannot express yet (a functional activation inside a larger module, fewer key/value
heads in a fused q/k/v projection) raises :class:`EditError` naming the edit; MAD's graph, ONNX and
Model Explorer exports still carry it.
"""

from __future__ import annotations

import copy
import inspect
import json
from dataclasses import dataclass, field

import torch
from torch import nn

from gnn.errors import EditError
from gnn.ir.graph import Graph

# -- the snippet's helpers: real functions, emitted verbatim where a snippet needs them ---------------------------


def _base(model):
    """A peft model's transformers model (edits after LoRA name the same paths)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def _put(model, path, module):
    """Set the module at ``path`` (dotted, as ``named_modules`` writes it)."""
    parent, _, name = path.rpartition(".")
    setattr(_base(model).get_submodule(parent), name, module)


def _follow(model, path, name, extra):
    """Run the output of the module at ``path`` (the first one, when it returns a tuple) through ``extra``,
    kept as its submodule ``name`` so that its parameters are saved and trained with it."""
    module = _base(model).get_submodule(path)
    module.add_module(name, extra)

    def hook(m, args, out):
        if isinstance(out, tuple):
            return (getattr(m, name)(out[0]),) + tuple(out[1:])
        return getattr(m, name)(out)

    module.register_forward_hook(hook)


def _depth(model, stack, blocks):
    """Put ``blocks`` as the stack at ``stack``, each attention's layer index (its cache slot) renumbered."""
    _put(model, stack, nn.ModuleList(blocks))
    for i, block in enumerate(blocks):
        for m in block.modules():
            if hasattr(m, "layer_idx"):
                m.layer_idx = i


def _remove_blocks(model, stack, indices):
    """Drop the blocks at ``indices`` of the stack at ``stack``; the rest are renumbered."""
    blocks = _base(model).get_submodule(stack)
    _depth(model, stack, [b for i, b in enumerate(blocks) if i not in indices])


def _insert_blocks(model, stack, after, count):
    """Insert ``count`` copies of each block at an index in ``after`` right behind it (trainable)."""
    out = []
    for i, block in enumerate(_base(model).get_submodule(stack)):
        out.append(block)
        for _ in range(count if i in after else 0):
            out.append(copy.deepcopy(out[-1]).requires_grad_(True))
    _depth(model, stack, out)


def _kv_heads(model, attention, k, v, heads, kv, head_dim):
    """``kv`` key/value heads in the attention at ``attention``: its k and v projections get ``kv * head_dim``
    outputs, each new head the mean of the heads it merges (or a copy of the one it splits from)."""
    attn = _base(model).get_submodule(attention)
    for path in (k, v):
        old = _base(model).get_submodule(path)
        new = nn.Linear(old.in_features, kv * head_dim, bias=old.bias is not None,
                        device=old.weight.device, dtype=old.weight.dtype)
        n = old.out_features // head_dim
        with torch.no_grad():
            for name in ("weight", "bias") if old.bias is not None else ("weight",):
                w = getattr(old, name).reshape(n, head_dim, -1)  # one slice per old head
                w = w.reshape(kv, n // kv, head_dim, -1).mean(1) if n >= kv else w.repeat_interleave(kv // n, 0)
                getattr(new, name).copy_(w.reshape(getattr(new, name).shape))
        _put(model, path, new)
    attn.num_key_value_groups = heads // kv  # transformers' repeat_kv: each k/v head serves this many queries


def _train_only(model, prefixes, trainable):
    """Mark the parameters under ``prefixes`` (all of them for ``None``) trainable or frozen."""
    for name, p in _base(model).named_parameters():
        if prefixes is None or name.startswith(tuple(p + "." for p in prefixes)):
            p.requires_grad_(trainable)


# -- recipes -------------------------------------------------------------------------------------------------------


@dataclass
class Recipe:
    """What to run for a program: the edited ``config`` (a dict, ``config.json``'s content) where the config
    expresses every edit, ``lora``: the LoraConfig arguments of the program's add_lora, and ``code``: the
    snippet (``def edit(model): ...``)."""

    config: dict | None
    lora: dict | None
    code: str
    config_changes: dict = field(default_factory=dict)  # the settings ``config`` changes, for the reader
    no_config: str = ""  # why ``config`` is None: which edit the config cannot express


_ACT_KEYS = ("hidden_act", "activation_function", "hidden_activation")


def _config_of(graph: Graph):
    from gnn.importers.hf import load_config

    meta = graph.meta
    if not str(meta.get("source", "")).startswith("hf:"):
        return None  # a graph from a file or a module: no config to give back
    return load_config(meta["source"], dict(meta.get("overrides") or {}))


def recipe(graph: Graph, program) -> Recipe:
    """The recipe of ``program`` on ``graph`` (a graph imported from a model; ``graph`` is not changed)."""
    from gnn.edits.engine import apply_program, parse_program
    from gnn.roles import label

    edits = parse_program(program)
    config = _config_of(graph)
    changes: dict | None = {} if config is not None else None
    why = "" if config is not None else "the graph was not imported from a Hugging Face config"
    lines: list[str] = []
    helpers: list = []
    lora = None
    current = graph
    for i, edit in enumerate(edits):
        roles = label(current)
        try:
            body, used, change = _EMIT[edit.op](edit, current, roles, config)
        except EditError as e:
            raise EditError(f"edit {i} (`{edit.op}`): {e}") from None
        result = apply_program(current, [edit], validate_result=False)
        if edit.op == "add_lora":
            lora = {k: v for k, v in result.extras["peft_config"].items() if k != "peft_type" and v is not None}
            body = [f"lora = LoraConfig({', '.join(f'{k}={v!r}' for k, v in lora.items())})",
                    "model = get_peft_model(model, lora)"]
        said = {k: v for k, v in edit.to_dict().items() if v != {}}
        lines += [f"# {i + 1}. {json.dumps(said)}"] + body
        helpers += [h for h in used if h not in helpers]
        if changes is not None and change is None:
            why = f"edit {i} (`{edit.op}`) is not a config setting"
        if changes is not None:
            changes = None if change is None else {**changes, **change}
        current = result.graph
    code = _snippet(lines, helpers, lora is not None)
    edited = None
    if config is not None and changes:
        from gnn.importers.hf_config import apply_overrides

        edited = json.loads(apply_overrides(copy.deepcopy(config), changes).to_json_string(use_diff=False))
    elif changes == {}:
        why = "the program changes no config setting"
    return Recipe(edited, lora, code, changes or {}, why)


def _snippet(lines: list[str], helpers: list, peft: bool) -> str:
    head = ["import copy", "", "import torch", "from torch import nn", "from transformers.activations import ACT2FN"]
    if peft:
        head.append("from peft import LoraConfig, get_peft_model")
    from gnn.edits.ops.modules import Adapter

    order = [_base, _put, _follow, _depth, _remove_blocks, _insert_blocks, _kv_heads, _train_only, Adapter]
    needs, todo = set(), list(helpers)
    while todo:  # the helpers' own helpers too
        h = todo.pop()
        if h not in needs:
            needs.add(h)
            todo += [o for o in order if o is not h and f"{o.__name__}(" in inspect.getsource(h)]
    sources = [inspect.getsource(h) for h in order if h in needs]
    body = "\n".join("    " + line if line else "" for line in lines)
    return ("\n".join(head) + "\n\n\n" + "\n\n".join(sources) + "\n\n"
            + "def edit(model):\n    \"\"\"The edit program on a loaded transformers model; returns the model.\"\"\"\n"
            + body + "\n    return model\n")


# -- one emitter per op: (code lines, helpers used, config changes or None) ----------------------------------------


def _blocks(edit, graph, roles):
    from gnn.edits.ops.layers import target_blocks

    blocks, stacks = target_blocks(edit, graph, roles)
    by_stack: dict[str, list[int]] = {}
    for b in blocks:
        prefix, index = roles.blocks[b]
        by_stack.setdefault(prefix, []).append(index)
    return by_stack, stacks


def _depth_change(config, stacks, delta) -> tuple[list[str], dict | None]:
    """The config's new depth (one stack only: an encoder-decoder's two depths are two settings)."""
    if config is None or len(stacks) != 1 or getattr(config, "num_hidden_layers", None) is None:
        return [], None
    (members,) = stacks.values()
    depth = len(members) + delta
    return [f"_base(model).config.num_hidden_layers = {depth}"], {"num_hidden_layers": depth}


def _remove(edit, graph, roles, config):
    by_stack, stacks = _blocks(edit, graph, roles)
    lines = [f"_remove_blocks(model, {s!r}, {sorted(i)})" for s, i in by_stack.items()]
    more, change = _depth_change(config, stacks, -sum(len(i) for i in by_stack.values()))
    return lines + more, [_remove_blocks, _base], change


def _insert(edit, graph, roles, config):
    import dataclasses

    if edit.target.layers is None and edit.target.modules is None:
        edit = dataclasses.replace(edit, target=dataclasses.replace(edit.target, layers=[-1]))
    by_stack, stacks = _blocks(edit, graph, roles)
    lines = [f"_insert_blocks(model, {s!r}, {sorted(i)}, {edit.count})" for s, i in by_stack.items()]
    more, change = _depth_change(config, stacks, sum(len(i) for i in by_stack.values()) * edit.count)
    return lines + more, [_insert_blocks, _base], change


def _kv(edit, graph, roles, config):
    from gnn.analysis.attention import head_layout

    lines = []
    for attention in roles.paths("attn"):
        inside = lambda role: [p for p in roles.paths(role) if p.startswith(attention + ".")]  # noqa: E731
        k, v = inside("attn.k"), inside("attn.v")
        if len(k) != 1 or len(v) != 1:
            raise EditError(f"no snippet for key/value heads in `{attention}`: its keys and values come from a fused "
                            "projection; the edited graph and its ONNX export carry the change")
        layout = head_layout(graph, roles, attention)
        lines.append(f"_kv_heads(model, {attention!r}, {k[0]!r}, {v[0]!r}, {layout.heads}, {edit.kv_heads}, "
                     f"{layout.head_dim})")
    if not lines:
        raise EditError("the graph has no attention (role `attn`)")
    if config is None or not getattr(config, "num_key_value_heads", None):
        raise EditError(f"no snippet for key/value heads in {graph.modules.get(attention, 'this attention')}: its "
                        "transformers class has no key/value head setting; the edited graph and its ONNX export "
                        "carry the change")
    lines.append(f"_base(model).config.num_key_value_heads = {edit.kv_heads}")
    return lines, [_kv_heads, _base], {"num_key_value_heads": edit.kv_heads}


def _activation(edit, graph, roles, config):
    from gnn.edits.ops.activation import ALIASES
    from gnn.edits.target import Target, select

    t = edit.target
    sel = select(graph, roles, Target(layers=t.layers, roles=t.roles or ["act"], modules=t.modules, nodes=t.nodes))
    paths = [p for p in sel.paths if "act" in roles.composites.get(p, [])]
    if sel.nodes or not paths:
        raise EditError("no snippet for an activation that is not a module of its own (a function call inside "
                        "another module); the edited graph and its ONNX export carry the change")
    name = ALIASES.get(edit.to, edit.to)
    lines = [f"_put(model, {p!r}, ACT2FN[{name!r}])" for p in paths]
    every = len(paths) == len(roles.paths("act"))
    key = next((k for k in _ACT_KEYS if config is not None and isinstance(getattr(config, k, None), str)), None)
    return lines, [_put], {key: name} if every and key else None


def _norm(edit, graph, roles, config):
    from gnn.edits.ops.modules import _width
    from gnn.edits.surgery import boundaries

    paths = edit.paths(graph, roles)
    sites = boundaries(graph, paths)
    make = "nn.LayerNorm" if edit.to == "layernorm" else "nn.RMSNorm"
    eps = edit.eps or (1e-5 if edit.to == "layernorm" else 1e-6)
    return [f"_put(model, {p!r}, {make}({_width(graph, sites[p])}, eps={eps!r}))" for p in paths], [_put], None


def _adapter(edit, graph, roles, config):
    from gnn.edits.ops.activation import ALIASES
    from gnn.edits.ops.modules import Adapter, _width
    from gnn.edits.surgery import boundaries

    paths = edit.paths(graph, roles)
    sites = boundaries(graph, paths)
    act = ALIASES.get(edit.activation, edit.activation)
    return [f"_follow(model, {p!r}, 'adapter', Adapter({_width(graph, sites[p])}, {edit.bottleneck}, {act!r}))"
            for p in paths], [_follow, Adapter], None


def _dropout(edit, graph, roles, config):
    paths = edit.paths(graph, roles)
    return [f"_follow(model, {p!r}, 'dropout_added', nn.Dropout({edit.p}))" for p in paths], [_follow], None


def _freeze(edit, graph, roles, config):
    from gnn.edits.target import select

    trainable = edit.op == "unfreeze"
    if not edit.target.to_dict():
        return [f"_train_only(model, None, {trainable})"], [_train_only], None
    paths = select(graph, roles, edit.target).paths
    return [f"_train_only(model, {paths!r}, {trainable})"], [_train_only], None


def _lora(edit, graph, roles, config):
    return [], [], None  # the LoraConfig comes from the edit itself (recipe)


_EMIT = {"remove_layers": _remove, "insert_layers": _insert, "set_kv_heads": _kv, "replace_activation": _activation,
         "replace_norm": _norm, "insert_adapter": _adapter, "add_dropout": _dropout, "freeze": _freeze,
         "unfreeze": _freeze, "add_lora": _lora}


# -- the proof -----------------------------------------------------------------------------------------------------


def _rebuild(graph: Graph, overrides: dict | None = None):
    """The model ``graph`` was imported from, built again on the meta device (its config, with ``overrides``), and
    the example inputs it was traced with."""
    import transformers

    from gnn.importers.hf import HFOptions, build_meta_model, dummy_inputs, traced_config

    meta = graph.meta
    if not str(meta.get("source", "")).startswith("hf:") or not meta.get("model_class"):
        raise EditError("only a graph imported from a Hugging Face config can be checked (it is built again)")
    config = traced_config(meta["source"], {**(meta.get("overrides") or {}), **(overrides or {})})
    model = build_meta_model(getattr(transformers, meta["model_class"]), config)
    shapes = [s for s in (meta.get("example_inputs") or {}).values() if len(s) == 2] or [[1, 16]]
    opts = HFOptions(seq_len=max(s[1] for s in shapes), batch_size=shapes[0][0])  # the text's length
    variants = dummy_inputs(model, config, opts)
    same = [v for v in variants
            if {k: list(t.shape) for k, t in v.items() if isinstance(t, torch.Tensor)} == meta.get("example_inputs")]
    return model, same or variants


def _imported(model, variants) -> Graph:
    from gnn.errors import MadError
    from gnn.importers.torch_module import import_module

    model.eval()
    for name, m in model.named_modules():  # an added dropout acts (MAD traces it in training mode)
        if name.endswith("dropout_added"):
            m.train()
    error = None
    for inputs in variants:
        try:
            return import_module(model, (), inputs, train=None)
        except MadError as e:
            error = e
    raise EditError(f"the edited model does not trace: {error}")


def _difference(want: Graph, got: Graph) -> str | None:
    from gnn.ir.graph import graph_key

    (pw, ow), (pg, og) = graph_key(want), graph_key(got)
    if pw != pg:
        a, b = set(pw) - set(pg), set(pg) - set(pw)
        return f"parameters differ: MAD has {sorted(a)[:2]}, the code's model has {sorted(b)[:2]}"
    if ow != og:
        a, b = dict(ow), dict(og)
        diff = [(k, a.get(k, 0), b.get(k, 0)) for k in set(a) | set(b) if a.get(k, 0) != b.get(k, 0)]
        op, x, y = sorted(diff, key=repr)[0]
        return f"ops differ ({len(diff)} kinds), e.g. {op[0]}: MAD {x}, the code's model {y}"
    return None


def check(graph: Graph, program, made: Recipe | None = None) -> Recipe:
    """Prove a recipe (``recipe(graph, program)`` unless given): its snippet run on the model ``graph`` was
    imported from, and the model built from its config, each imported, must equal MAD's edited graph.  Returns the
    recipe; raises :class:`EditError` naming the first difference."""
    from gnn.edits.engine import apply_program

    made = made or recipe(graph, program)
    want = apply_program(graph, program).graph
    model, variants = _rebuild(graph)
    namespace: dict = {}
    exec(compile(made.code, "<mad recipe>", "exec"), namespace)  # noqa: S102 - the snippet MAD just wrote
    with torch.device("meta"):
        edited = namespace["edit"](model)
    problem = _difference(want, _imported(_base(edited), variants))
    if problem:
        raise EditError(f"the snippet does not give MAD's graph: {problem}")
    if made.config is not None:
        model, variants = _rebuild(graph, made.config_changes)
        problem = _difference(want, _imported(model, variants))
        if problem:
            raise EditError(f"the edited config does not give MAD's graph: {problem}")
    return made
