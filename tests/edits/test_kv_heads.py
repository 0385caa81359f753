"""``set_kv_heads``: the same graph as transformers' ``num_key_value_heads``, and grouped-query semantics
(query head ``h`` reads k/v head ``h // group``) on families that have no such setting."""

import pytest
import torch

from gnn.edits import EditError, apply_program
from gnn.exporters.fx import to_graph_module
from gnn.importers.hf import HFOptions, import_hf
from gnn.ir.serialize import to_json
from tests.conftest import TINY, real_model, state_of
from tests.edits.ground_truth import assert_same_architecture

LLAMA_LIKE = {"llama": TINY["llama"], "qwen2": TINY["llama"], "mistral": TINY["mistral"]}


def _import(family, **changes):
    config = {**LLAMA_LIKE.get(family, TINY.get(family, {})), "num_hidden_layers": 3} if family in LLAMA_LIKE \
        else {**TINY[family]}
    return import_hf(f"hf:{family}", HFOptions(overrides={**config, **changes}, seq_len=8))


@pytest.mark.parametrize("family", sorted(LLAMA_LIKE))
@pytest.mark.parametrize("start, kv_heads", [(2, 1), (2, 4), (4, 2), (1, 4)])  # the configs have 4 query heads
def test_set_kv_heads_matches_the_config(family, start, kv_heads):
    graph = _import(family, num_key_value_heads=start)
    before = to_json(graph)
    result = apply_program(graph, [{"op": "set_kv_heads", "kv_heads": kv_heads}])
    assert to_json(graph) == before
    assert_same_architecture(result.graph, _import(family, num_key_value_heads=kv_heads))
    assert result.graph.values["model.layers.0.self_attn.k_proj.weight"].shape == [kv_heads * 16, 64]
    inputs = 64 + (family == "qwen2")  # qwen2's k and v projections have biases
    assert result.diff.params_after - result.diff.params_before == 3 * 2 * (kv_heads - start) * 16 * inputs


def test_set_kv_heads_keeps_earlier_edits():
    graph = apply_program(_import("llama"), [{"op": "remove_layers", "target": {"layers": [-1]}},
                                             {"op": "add_lora", "target": {"roles": ["attn.q"]}}]).graph
    result = apply_program(graph, [{"op": "set_kv_heads", "kv_heads": 1}])
    reference = apply_program(_import("llama", num_key_value_heads=1, num_hidden_layers=2),
                              [{"op": "add_lora", "target": {"roles": ["attn.q"]}}]).graph
    assert_same_architecture(result.graph, reference)


# -- families without a kv-heads setting: the edited graph computes grouped-query attention -------


def _grouped(family, state, edited, heads, kv):
    """Weights for the edited graph (k/v heads 0, g, 2g, ... of ``state``) and the original model's weights
    with every query head's k/v replaced by its group's head: the two must compute the same."""
    group = heads // kv
    new, same = dict(state), dict(state)
    for name, value in edited.values.items():
        if value.kind != "parameter" or list(value.shape) == list(state[name].shape):
            continue
        w = state[name]
        dim = next(i for i, (a, b) in enumerate(zip(w.shape, value.shape)) if a != b)

        def pick(t):  # every group's first head, heads along `dim`
            return t.unflatten(dim, (heads, -1)).index_select(dim, torch.arange(0, heads, group))

        def rep(t):
            return t.repeat_interleave(group, dim)

        if family == "bloom":  # fused per head: (heads, 3, head_dim); the edited projection is [q | k | v]
            per = w.unflatten(dim, (heads, 3, -1))
            q, k, v = (per.select(dim + 1, i) for i in range(3))
            k, v = (t.index_select(dim, torch.arange(0, heads, group)) for t in (k, v))
            new[name] = torch.cat([t.flatten(dim, dim + 1) for t in (q, k, v)], dim)
            same[name] = torch.stack([q, rep(k), rep(v)], dim + 1).flatten(dim, dim + 2)
        elif family == "gpt2":  # fused Conv1D, [q | k | v] along the output features
            q, k, v = w.chunk(3, dim)
            new[name] = torch.cat([q, pick(k).flatten(dim, dim + 1), pick(v).flatten(dim, dim + 1)], dim)
            same[name] = torch.cat([q, rep(pick(k)).flatten(dim, dim + 1), rep(pick(v)).flatten(dim, dim + 1)], dim)
        else:  # separate k and v projections
            new[name] = pick(w).flatten(dim, dim + 1)
            same[name] = rep(pick(w)).flatten(dim, dim + 1)
    return new, same


@pytest.mark.parametrize("family, heads_key", [("bert", "num_attention_heads"), ("gpt2", "n_head"),
                                               ("t5", "num_heads"), ("bloom", "n_head")])
@pytest.mark.parametrize("kv", [1, 2])
def test_set_kv_heads_groups_query_heads(family, heads_key, kv):
    graph = import_hf(f"hf:{family}", HFOptions(overrides=TINY[family], seq_len=8))
    result = apply_program(graph, [{"op": "set_kv_heads", "kv_heads": kv}])
    model = real_model(family)
    new, same = _grouped(family, state_of(model), result.graph, TINY[family][heads_key], kv)
    model.load_state_dict({k: v for k, v in same.items() if k in model.state_dict()})
    inputs = {name: torch.randint(0, 100, shape) for name, shape in graph.meta["example_inputs"].items()}
    with torch.no_grad():
        got = to_graph_module(result.graph, weights=new)(**inputs)["logits"]
        want = model(**inputs).logits
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
    assert result.diff.params_after < result.diff.params_before


# -- refusals -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "program, message",
    [
        ([{"op": "set_kv_heads", "kv_heads": 3}],
         "`kv_heads` must divide the 4 attention heads of `model.layers.0.self_attn`, got 3; choose one of 1, 2, 4"),
        ([{"op": "set_kv_heads", "kv_heads": 0}], "`kv_heads` must be a positive integer, got 0"),
        ([{"op": "set_kv_heads", "kv_heads": 1, "target": {"layers": [0]}}],
         "`set_kv_heads` applies to the whole model; give no target"),
        ([{"op": "add_lora", "target": {"roles": ["attn.k"]}}, {"op": "set_kv_heads", "kv_heads": 1}],
         "set kv heads before adding LoRA or adapters to it"),
    ],
)
def test_set_kv_heads_refusals(program, message):
    graph = _import("llama")
    before = to_json(graph)
    with pytest.raises(EditError) as info:
        apply_program(graph, program)
    assert message in str(info.value)
    assert to_json(graph) == before


def test_set_kv_heads_refuses_onnx_graphs(tmp_path):
    from gnn.exporters.onnx import save_onnx
    from gnn.importers.onnx import import_onnx

    graph = import_onnx(save_onnx(_import("llama"), tmp_path / "m.onnx"))
    with pytest.raises(EditError, match="this graph was read from ONNX"):
        apply_program(graph, [{"op": "set_kv_heads", "kv_heads": 1}])
