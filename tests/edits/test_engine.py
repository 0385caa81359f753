"""The edit engine against transformers ground truth, and its refusals."""

import pytest
import torch

from gnn.edits import EditError, History, apply_program
from gnn.exporters.fx import to_graph_module
from gnn.importers.hf import HFOptions, import_hf
from gnn.ir.serialize import to_json
from tests.conftest import TINY, state_of
from tests.edits.ground_truth import assert_same_architecture

FAMILIES = {  # tiny configs with 3 blocks; the key that sets the activation
    "llama": ({**TINY["llama"], "num_hidden_layers": 3}, "hidden_act"),
    "qwen2": ({**TINY["llama"], "num_hidden_layers": 3}, "hidden_act"),
    "mistral": ({**TINY["mistral"], "num_hidden_layers": 3}, "hidden_act"),
    "gpt2": ({**TINY["gpt2"], "n_layer": 3}, "activation_function"),
    "bert": ({**TINY["bert"], "num_hidden_layers": 3}, "hidden_act"),
}


def _import(family, **changes):
    config, _ = FAMILIES[family]
    return import_hf(f"hf:{family}", HFOptions(overrides={**config, **changes}, seq_len=8))


def _depth_key(family):
    return "n_layer" if family == "gpt2" else "num_hidden_layers"


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_remove_layers_matches_a_shallower_config(family):
    graph = _import(family)
    before = to_json(graph)
    result = apply_program(graph, {"edits": [{"op": "remove_layers", "target": {"layers": [1]}}]})
    assert to_json(graph) == before  # the input graph is never modified
    assert_same_architecture(result.graph, _import(family, **{_depth_key(family): 2}))
    assert result.diff.params_after < result.diff.params_before


@pytest.mark.parametrize("family, to", [("llama", "gelu"), ("qwen2", "relu"), ("mistral", "gelu_tanh"),
                                        ("gpt2", "relu"), ("bert", "silu"),
                                        ("gpt2", "linear"), ("llama", "linear")])  # identity: no op at all
def test_replace_activation_matches_the_config(family, to):
    graph = _import(family)
    result = apply_program(graph, {"edits": [{"op": "replace_activation", "to": to}]})
    _, key = FAMILIES[family]
    hf_name = {"gelu_tanh": "gelu_pytorch_tanh"}.get(to, to)
    assert_same_architecture(result.graph, _import(family, **{key: hf_name}))


def test_removed_layer_graph_computes_the_shallower_model():
    """With the kept layers' weights, the edited graph equals a 2-layer Llama's output."""
    from transformers import AutoConfig, AutoModelForCausalLM

    config, _ = FAMILIES["llama"]
    torch.manual_seed(0)
    deep = AutoModelForCausalLM.from_config(AutoConfig.for_model("llama", **config)).eval()
    edited = apply_program(_import("llama"), [{"op": "remove_layers", "target": {"layers": [1]}}]).graph
    shallow = AutoModelForCausalLM.from_config(AutoConfig.for_model("llama", **{**config, "num_hidden_layers": 2})).eval()
    state = {k.replace("layers.2.", "layers.1."): v for k, v in state_of(deep).items() if "layers.1." not in k}
    shallow.load_state_dict({k: v for k, v in state.items() if k in shallow.state_dict()})
    ids = torch.randint(0, 100, (1, 8))
    with torch.no_grad():
        torch.testing.assert_close(to_graph_module(edited, weights=state)(input_ids=ids)["logits"],
                                   shallow(input_ids=ids).logits, atol=1e-5, rtol=0)


def test_freeze_and_unfreeze_count_trainable_parameters(graphs):
    result = apply_program(graphs["llama"], [{"op": "freeze"},
                                             {"op": "unfreeze", "target": {"layers": [-1], "roles": ["attn.q", "attn.v"]}}])
    assert result.diff.trainable_before == graphs["llama"].num_parameters
    assert result.diff.trainable_after == 64 * 64 + 64 * 32  # q_proj + v_proj (2 KV heads of 16) of the last layer
    from gnn.analysis.summary import summarize

    assert summarize(result.graph)["trainable_params"] == result.diff.trainable_after


def test_history_undo_redo(graphs):
    history = History(graphs["gpt2"])
    first = history.apply([{"op": "freeze"}]).graph
    history.apply([{"op": "replace_activation", "to": "relu"}])
    assert history.undo() is first
    assert history.redo() is not first
    history.undo()
    history.undo()
    with pytest.raises(EditError, match="nothing to undo"):
        history.undo()
    history.redo()
    assert [e["op"] for e in history.step.program] == ["freeze"] and history.step.report.ok
    assert history.reset() is graphs["gpt2"] and len(history.steps) == 1 and not history.step.program
    with pytest.raises(EditError, match="nothing to redo"):
        history.redo()


@pytest.mark.parametrize(
    "program, message",
    [
        ('{"edits": [{"op": "prune_heads"}]}', "unknown edit op `prune_heads`; edits are: add_dropout, add_lora, freeze, insert_adapter"),
        ('{"edits": [{"op": "freeze", "target": {"roles": ["attn.query"]}}]}', "unknown role `attn.query`; roles are: block"),
        ('{"edits": [{"op": "remove_layers", "target": {"layers": [40]}}]}', "layer 40 is out of range; model.layers: 3 layers (0..2)"),
        ('{"edits": [{"op": "replace_activation", "to": "swoosh"}]}', "unknown activation `swoosh`"),
        ('{"edits": [{"op": "freeze", "target": {"modules": ["model.nothing.*"]}}]}', "matches nothing; the graph has roles act, attn"),
        ('{"edits": [{"op": "freeze", "rank": 3}]}', "`freeze` has no parameter `rank`"),
        ('{"edits": [{"op": "remove_layers", "target": {"layers": [0, 1, 2]}}]}', "would remove every block of `model.layers`"),
        ('{"edits": [', "edit program is not valid JSON"),
        ('{"edit": []}', "fails the schema"),
    ],
)
def test_bad_programs_are_refused_and_change_nothing(program, message):
    graph = _import("llama")
    before = to_json(graph)
    with pytest.raises(EditError, match=None) as info:
        apply_program(graph, program)
    assert message in str(info.value)
    assert "\n" not in str(info.value)
    assert to_json(graph) == before


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_insert_layers_matches_a_deeper_config(family):
    graph = _import(family)
    result = apply_program(graph, [{"op": "insert_layers", "target": {"layers": [1]}, "count": 2}])
    assert_same_architecture(result.graph, _import(family, **{_depth_key(family): 5}))


def test_inserted_layers_compute_the_deeper_model():
    """Filled with a 4-layer Llama's weights, 3 layers + 1 inserted compute that model's logits."""
    from transformers import AutoConfig, AutoModelForCausalLM

    config, _ = FAMILIES["llama"]
    torch.manual_seed(0)
    deep = AutoModelForCausalLM.from_config(AutoConfig.for_model("llama", **{**config, "num_hidden_layers": 4})).eval()
    edited = apply_program(_import("llama"), [{"op": "insert_layers", "target": {"layers": [0]}}]).graph
    ids = torch.randint(0, 100, (1, 8))
    with torch.no_grad():
        torch.testing.assert_close(to_graph_module(edited, weights=state_of(deep))(input_ids=ids)["logits"],
                                   deep(input_ids=ids).logits, atol=1e-5, rtol=0)


def test_insert_layers_refuses_bad_counts():
    with pytest.raises(EditError, match="`count` must be a positive integer, got 0"):
        apply_program(_import("llama"), [{"op": "insert_layers", "target": {"layers": [0]}, "count": 0}])


