import json
import os
import subprocess
import sys

import pytest

from gnn.errors import SourceError
from gnn.importers.hf import HFOptions, candidate_classes, import_hf, load_config
from tests.conftest import TINY, real_model


@pytest.mark.parametrize("family", ["llama", "gpt2", "bert", "t5", "vit", "whisper"])
def test_parameter_count_equals_the_module(graphs, family):
    graph = graphs[family]
    assert graph.num_parameters == sum(p.numel() for p in real_model(family).parameters())


@pytest.mark.parametrize(
    "family, head",
    [("llama", "LlamaForCausalLM"), ("bert", "BertForMaskedLM"), ("t5", "T5ForConditionalGeneration"),
     ("vit", "ViTForImageClassification"), ("whisper", "WhisperForConditionalGeneration")],
)
def test_head_class_follows_the_architecture(graphs, family, head):
    assert graphs[family].meta["model_class"] == head


def test_inputs_follow_the_modality(graphs):
    assert graphs["vit"].meta["example_inputs"] == {"pixel_values": [1, 3, 32, 32]}
    assert set(graphs["t5"].meta["example_inputs"]) == {"input_ids", "decoder_input_ids"}
    assert graphs["whisper"].meta["example_inputs"]["input_features"] == [1, 16, 64]


def test_overrides_go_through_the_config_constructor():
    config = load_config("hf:llama", {"hidden_size": 64, "num_attention_heads": 4})
    assert config.head_dim == 16  # derived from the new width, as LlamaConfig(...) would
    config = load_config("hf:t5", {"num_layers": 3})
    assert config.num_decoder_layers == 3


def test_bare_override_reaches_sub_configs():
    config = load_config("hf:llava", {"num_hidden_layers": 2})
    assert config.text_config.num_hidden_layers == 2
    assert config.vision_config.num_hidden_layers == 2
    config = load_config("hf:llava", {"text_config.num_hidden_layers": 3})
    assert config.text_config.num_hidden_layers == 3 and config.vision_config.num_hidden_layers != 3


def test_default_config_is_the_reference_shape():
    """hf:mistral is Mistral-7B's shape; built on meta, so nothing is allocated."""
    # VmHWM, not ru_maxrss: the latter survives exec and would count the pytest parent.
    code = (
        "import json, re;"
        "from gnn.importers.hf import import_hf, HFOptions;"
        "g = import_hf('hf:mistral', HFOptions(overrides={'num_hidden_layers': 32}));"
        "hwm = int(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1));"
        "print(json.dumps([g.num_parameters, hwm]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    params, maxrss_kb = json.loads(out.stdout.strip().splitlines()[-1])
    assert params == 7_241_732_096
    assert maxrss_kb < 2_000_000  # 29 GB of fp32 weights would not fit; < 2 GB means none were allocated


def test_mixture_of_experts_imports():
    graph = import_hf("hf:mixtral", HFOptions(overrides={"num_hidden_layers": 1}))
    ops = {n.op for n in graph.nodes}
    assert "aten.topk.default" in ops and "aten.bmm.default" in ops
    assert graph.num_parameters == graph.meta["module_parameters"]


def test_vision_language_model_imports_both_towers():
    graph = import_hf("hf:clip", HFOptions(overrides={"num_hidden_layers": 1}))
    modules = {n.module.split(".")[0] for n in graph.nodes}
    assert {"text_model", "vision_model"} <= modules


def test_explicit_head():
    graph = import_hf("hf:bert", HFOptions(overrides=TINY["bert"], head="base"))
    assert graph.meta["model_class"] == "BertModel"
    with pytest.raises(SourceError, match="unknown head `nope`; choose one of causal-lm"):
        candidate_classes(load_config("hf:bert"), "nope")


def test_config_folder(tmp_path):
    real_model("llama").config.save_pretrained(tmp_path)
    graph = import_hf(str(tmp_path))
    assert graph.num_parameters == sum(p.numel() for p in real_model("llama").parameters())


def test_hub_id_absent_from_cache_is_a_clear_error():
    with pytest.raises(SourceError, match="not in the local Hugging Face cache"):
        load_config("hf:nobody/no-such-model")


def test_hub_id_found_in_the_local_cache(tmp_path):
    """A config already in the HF cache (models--org--name/snapshots/<rev>/config.json) is used offline."""
    repo = tmp_path / "models--acme--tiny-llama"
    snap = repo / "snapshots" / "0123456789abcdef0123456789abcdef01234567"
    snap.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(snap.name)
    real_model("llama").config.save_pretrained(snap)
    # The cache location is read when huggingface_hub is imported: use a fresh process.
    env = dict(os.environ, HF_HUB_CACHE=str(tmp_path), HF_HUB_OFFLINE="1")
    code = "from gnn.importers.hf import load_config; c = load_config('hf:acme/tiny-llama'); print(c.hidden_size, c.num_hidden_layers)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.split() == ["64", "2"]
