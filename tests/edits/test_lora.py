"""add_lora against peft.get_peft_model on the real models."""

import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForMaskedLM, AutoModelForSeq2SeqLM

from gnn.edits import EditError, apply_program
from gnn.exporters.fx import to_graph_module
from gnn.importers.hf import HFOptions, import_hf
from gnn.importers.torch_module import import_module
from tests.conftest import TINY, state_of
from tests.edits.ground_truth import assert_same_architecture

CONFIGS = {
    "llama": {**TINY["llama"], "num_hidden_layers": 3},
    "qwen2": {**TINY["llama"], "num_hidden_layers": 3},
    "mistral": {**TINY["mistral"], "num_hidden_layers": 3},
    "gpt2": {**TINY["gpt2"], "n_layer": 3},
    "bert": {**TINY["bert"], "num_hidden_layers": 3},
    "t5": {**TINY["t5"], "num_layers": 3},
}
HEADS = {"bert": AutoModelForMaskedLM, "t5": AutoModelForSeq2SeqLM}


def _inputs(family, device="meta"):
    ids = {"input_ids": torch.zeros(1, 8, dtype=torch.long, device=device)}
    if family == "t5":
        ids["decoder_input_ids"] = torch.zeros(1, 4, dtype=torch.long, device=device)
    if family != "bert":
        ids["use_cache"] = False
    return ids


def _peft_graph(family, peft_kwargs):
    with torch.device("meta"):
        model = HEADS.get(family, AutoModelForCausalLM).from_config(AutoConfig.for_model(family, **CONFIGS[family]))
    peft_model = get_peft_model(model, LoraConfig(**peft_kwargs))
    return import_module(peft_model.base_model.model, (), _inputs(family)), peft_model


@pytest.mark.parametrize("family", sorted(CONFIGS))
@pytest.mark.parametrize("target", [{"layers": [-1]}, {}])
def test_add_lora_is_what_peft_builds(family, target):
    graph = import_hf(f"hf:{family}", HFOptions(overrides=CONFIGS[family], seq_len=8))
    result = apply_program(graph, [{"op": "add_lora", "target": target, "r": 4, "alpha": 16}])
    config = dict(result.extras["peft_config"])
    assert config.pop("peft_type") == "LORA"
    reference, peft_model = _peft_graph(family, config)
    assert_same_architecture(result.graph, reference)
    assert result.graph.num_trainable_parameters == sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    # no roles named: peft's own default target modules for the type
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as defaults

    assert config["target_modules"] == sorted(defaults[family])


def test_roles_and_peft_defaults():
    graph = import_hf("hf:llama", HFOptions(overrides=CONFIGS["llama"], seq_len=8))
    result = apply_program(graph, [{"op": "add_lora", "target": {"roles": ["attn.q", "attn.k", "mlp.down"]}}])
    config = result.extras["peft_config"]
    assert config["target_modules"] == ["down_proj", "k_proj", "q_proj"]
    assert (config["r"], config["lora_alpha"], config["lora_dropout"]) == (8, 8, 0.0)  # peft's defaults
    assert config["layers_to_transform"] is None


def test_lora_graph_computes_the_peft_model():
    """With the peft model's weights (adapters non-zero), the edited graph gives its logits."""
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(AutoConfig.for_model("llama", **CONFIGS["llama"])).eval()
    graph = import_hf("hf:llama", HFOptions(overrides=CONFIGS["llama"], seq_len=8))
    result = apply_program(graph, [{"op": "add_lora", "target": {"layers": [0, 2]}, "r": 4, "alpha": 8}])
    config = dict(result.extras["peft_config"])
    config.pop("peft_type")
    peft_model = get_peft_model(model, LoraConfig(**config)).eval()
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.normal_()
    inner = peft_model.base_model.model
    ids = torch.randint(0, 100, (1, 8))
    with torch.no_grad():
        expected = inner(input_ids=ids).logits
        got = to_graph_module(result.graph, weights=state_of(inner))(input_ids=ids)["logits"]
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    "edit, message",
    [
        ({"op": "add_lora", "r": 0}, "`r` must be a positive integer, got 0"),
        ({"op": "add_lora", "r": -4}, "`r` must be a positive integer, got -4"),
        ({"op": "add_lora", "alpha": 0}, "`alpha` must be a positive number"),
        ({"op": "add_lora", "dropout": 1.5}, "`dropout` must be in [0, 1)"),
        ({"op": "add_lora", "target": {"roles": ["norm.final"]}}, "selects no Linear/Conv1D projection"),
        ({"op": "add_lora", "target": {"layers": [12]}}, "layer 12 is out of range; model.layers: 3 layers (0..2)"),
    ],
)
def test_bad_lora_parameters(edit, message):
    graph = import_hf("hf:llama", HFOptions(overrides=CONFIGS["llama"], seq_len=8))
    with pytest.raises(EditError) as info:
        apply_program(graph, [edit])
    assert message in str(info.value)


def test_q_and_v_of_a_fused_projection_mean_the_fused_projection(graphs):
    """GPT-2 keeps q, k and v in c_attn: LoRA "on q and v" goes there, as peft does with target c_attn."""
    from gnn.edits import apply_program

    result = apply_program(graphs["gpt2"], [{"op": "add_lora", "target": {"layers": [-1], "roles": ["attn.q", "attn.v"]}}])
    assert result.extras["peft_config"]["target_modules"] == ["c_attn"]
    assert result.diff.params_after - result.diff.params_before == 8 * 64 + 3 * 64 * 8


def test_plain_module_names_match_as_peft_target_modules_do():
    """`modules: ["q_proj", "v_proj"]` is peft's `target_modules`: a name matches every module whose path ends
    with it; a glob still matches whole paths, and a name no module ends with matches nothing."""
    graph = import_hf("hf:llama", HFOptions(overrides=CONFIGS["llama"], seq_len=8))
    by_name = apply_program(graph, [{"op": "add_lora", "target": {"modules": ["q_proj", "v_proj"]}}])
    by_role = apply_program(graph, [{"op": "add_lora", "target": {"roles": ["attn.q", "attn.v"]}}])
    assert by_name.extras["peft_config"]["target_modules"] == ["q_proj", "v_proj"]
    assert_same_architecture(by_name.graph, by_role.graph)
    assert apply_program(graph, [{"op": "freeze", "target": {"modules": ["model.layers.*.mlp"]}}]).diff
    with pytest.raises(EditError, match="matches nothing"):
        apply_program(graph, [{"op": "add_lora", "target": {"modules": ["proj"]}}])  # a suffix, not a name
