"""Module structure rebuilt from node roles lets edits work on ONNX files whose names were stripped."""

from collections import Counter

import onnx
import pytest

from gnn.roles.labels import node_roles
from gnn.training.scramble import scramble
from gnn.edits import apply_program
from gnn.errors import MadError
from gnn.exporters.onnx import save_onnx
from gnn.importers.onnx import import_onnx
from gnn.roles.structure import infer_modules


def _pair(graph, tmp_path):
    named = save_onnx(graph, tmp_path / "named.onnx")
    onnx.save(scramble(onnx.load(named)), tmp_path / "blank.onnx")
    return import_onnx(named), import_onnx(tmp_path / "blank.onnx")


def _added(before, after):
    return Counter(n.op for n in after.nodes) - Counter(n.op for n in before.nodes)


@pytest.mark.parametrize("family, roles", [("llama", ["attn.q", "attn.v"]), ("gpt2", ["attn.qkv"])])
def test_lora_on_a_stripped_onnx_file_with_true_roles(graphs, tmp_path, family, roles):
    """With the named twin's node roles (what the learned labeler is trained to predict), rebuilt
    modules take the same LoRA edit as the named file."""
    named, blank = _pair(graphs[family], tmp_path)
    rebuilt = infer_modules(blank, node_roles(named))
    assert not any(n.module for n in blank.nodes)  # the input stays as it was
    h_named, h_rebuilt = named.hierarchy, rebuilt.hierarchy
    prefix = "model.layers.0.self_attn." if family == "llama" else "transformer.h.0.attn."
    for name, rebuilt_name in ([("q_proj", "q_proj"), ("v_proj", "v_proj")] if family == "llama"
                               else [("c_attn", "qkv_proj")]):
        ops = [named.node_by_id[n].op for n in h_named[prefix + name].nodes]
        assert ops == [rebuilt.node_by_id[n].op for n in h_rebuilt[f"layers.0.self_attn.{rebuilt_name}"].nodes]
    program = [{"op": "add_lora", "target": {"layers": [-1], "roles": roles}}]
    a, b = apply_program(named, program), apply_program(rebuilt, program)
    assert a.diff.params_after - a.diff.params_before == b.diff.params_after - b.diff.params_before > 0
    assert _added(named, a.graph) == _added(rebuilt, b.graph)
    assert b.graph.num_parameters == a.graph.num_parameters


def test_irregular_roles_are_refused(graphs, tmp_path):
    _, blank = _pair(graphs["llama"], tmp_path)
    with pytest.raises(MadError, match="cannot rebuild the blocks of this unnamed graph: 0 query projections"):
        infer_modules(blank, ["other"] * len(blank.nodes))


def test_editing_an_unnamed_graph_needs_the_model(graphs, tmp_path, monkeypatch):
    from gnn.nn import checkpoint

    _, blank = _pair(graphs["llama"], tmp_path)
    monkeypatch.setenv("MAD_GNN_CHECKPOINT", str(tmp_path / "nowhere"))
    checkpoint._cached.cache_clear()
    with pytest.raises(MadError, match="no trained graph model at"):
        apply_program(blank, [{"op": "add_lora"}])
    checkpoint._cached.cache_clear()


def _one_hot(labels, confuse=()):
    """Probabilities that put 0.9 on each label; for roles in ``confuse`` (a, b) pairs, nodes of role a
    lean (0.6) to a but give b 0.4, the kind of q/k doubt the learned model has."""
    import torch

    from gnn.vocab import NODE_ROLES

    probs = torch.full((len(labels), len(NODE_ROLES)), 0.1 / (len(NODE_ROLES) - 1))
    for i, role in enumerate(labels):
        probs[i, NODE_ROLES.index(role)] = 0.9
    for a, b in confuse:
        for i, role in enumerate(labels):
            if role == a:
                probs[i] = 0.0
                probs[i, NODE_ROLES.index(a)], probs[i, NODE_ROLES.index(b)] = 0.4, 0.6
    return probs


@pytest.mark.parametrize("family, roles", [("llama", ["attn.q", "attn.v"]), ("gpt2", ["attn.qkv"])])
def test_decoding_groups_projections_per_attention(graphs, tmp_path, family, roles):
    """Joint decoding: when the model leans the wrong way on every key projection (its argmax says q, so
    two queries per attention), each attention still gets one q and one k, and the blocks come from the
    attentions alone (no residual labels needed)."""
    from gnn.roles.structure import decode_roles

    named, blank = _pair(graphs[family], tmp_path)
    truth = node_roles(named)
    labels = [r if r != "residual" else "other" for r in truth]
    decoded, blocks = decode_roles(blank, _one_hot(labels, confuse=[("attn.k", "attn.q")]))
    seeds = [n for n in blank.nodes if n.op == "onnx::MatMul" and truth[blank.nodes.index(n)] in ("attn.q", "attn.k")]
    assert seeds or family == "gpt2"
    assert [decoded[blank.nodes.index(n)] for n in seeds] == [truth[blank.nodes.index(n)] for n in seeds]
    assert sorted(set(blocks.values())) == list(range(len(set(blocks.values()))))
    rebuilt = infer_modules(blank, decoded, blocks)
    program = [{"op": "add_lora", "target": {"layers": [-1], "roles": roles}}]
    a, b = apply_program(named, program), apply_program(rebuilt, program)
    assert a.diff.params_after - a.diff.params_before == b.diff.params_after - b.diff.params_before > 0
    assert _added(named, a.graph) == _added(rebuilt, b.graph)


def test_rebuilt_blocks_hold_their_sublayers_norms_and_activation(graphs, tmp_path):
    """Beyond the projections: each attention and feed-forward is one module with one output, the activation
    and the norms are modules running the named file's ops, and a gate the labels call `up` (its output is
    the one activated) is named the gate all the same."""
    named, blank = _pair(graphs["llama"], tmp_path)
    swapped = [{"mlp.gate": "mlp.up", "mlp.up": "mlp.gate"}.get(r, r) for r in node_roles(named)]
    rebuilt = infer_modules(blank, swapped)
    h_named, h = named.hierarchy, rebuilt.hierarchy

    def ops(graph, path):
        return Counter(graph.node_by_id[n].op for n in graph.hierarchy[path].nodes)

    for name, rebuilt_name in [("input_layernorm", "input_layernorm"), ("post_attention_layernorm",
                               "post_attention_layernorm"), ("mlp.act_fn", "mlp.act_fn"),
                               ("mlp.gate_proj", "mlp.gate_proj"), ("mlp.up_proj", "mlp.up_proj")]:
        for b in (0, 1):
            assert ops(named, f"model.layers.{b}.{name}") == ops(rebuilt, f"layers.{b}.{rebuilt_name}"), name
    assert ops(named, "model.norm") == ops(rebuilt, "norm")
    for b in (0, 1):
        for part in ("self_attn", "mlp"):
            assert len(h[f"layers.{b}.{part}"].outputs) == 1
            assert len(h_named[f"model.layers.{b}.{part}"].outputs) == 1
    assert rebuilt.modules["layers.0.input_layernorm"] == "RMSNorm"
