"""Edits on models read from ``torch.onnx`` files, named and stripped of every name, against the same edit on
the Hugging Face graph and against peft on the real module (issue 18).

torch.onnx writes a projection as a bias-free ``MatMul`` on a pre-transposed weight, drops zero biases,
stores identical initializers once (a fresh model's norm weights, all ones) and leaves some ops without
a name scope; the edits must still add exactly what they add to the model itself.
"""

from collections import Counter

import onnx
import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoConfig, AutoModelForCausalLM

from gnn.training.scramble import scramble
from gnn.edits import apply_program
from gnn.importers.hf import HFOptions, import_hf
from gnn.importers.onnx import import_onnx
from gnn.analysis.summary import format_summary, summarize
from tests.conftest import TINY

CONFIGS = {
    "llama": {**TINY["llama"], "num_hidden_layers": 3},
    "qwen2": {**TINY["llama"], "num_hidden_layers": 2},
    "mistral": {**TINY["mistral"], "num_hidden_layers": 2},
    "gpt2": {**TINY["gpt2"], "n_layer": 3},
}

# the four cases: (family, program, peft's LoraConfig for the same adapters on the real model)
LORA = {
    "llama q/v of the last layer": (
        "llama", {"op": "add_lora", "target": {"layers": [-1], "roles": ["attn.q", "attn.v"]}, "r": 8, "alpha": 16},
        dict(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], layers_to_transform=[2])),
    "qwen2 every attention projection r=4": (
        "qwen2", {"op": "add_lora", "target": {"roles": ["attn.q", "attn.k", "attn.v", "attn.o"]}, "r": 4},
        dict(r=4, lora_alpha=8, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"])),
    "mistral MLP of layers 0-1": (
        "mistral", {"op": "add_lora", "target": {"layers": [0, 1], "roles": ["mlp.gate", "mlp.up", "mlp.down"]}},
        dict(r=8, lora_alpha=8, target_modules=["gate_proj", "up_proj", "down_proj"], layers_to_transform=[0, 1])),
    "gpt2 fused qkv of the last layer": (
        "gpt2", {"op": "add_lora", "target": {"layers": [-1], "roles": ["attn.qkv"]}},
        dict(r=8, lora_alpha=8, target_modules=["c_attn"], layers_to_transform=[2], fan_in_fan_out=True)),
}


def _model(family: str, trained: bool) -> torch.nn.Module:
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(AutoConfig.for_model(family, **CONFIGS[family])).eval()
    if trained:  # as a trained checkpoint: no two norm weights alike, no zero bias for torch.onnx to drop
        with torch.no_grad():
            for name, p in model.named_parameters():
                if p.dim() == 1:
                    p.normal_()
    return model


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """``files[family, trained]`` -> (named path, stripped path), exported once by torch.onnx (dynamo)."""
    made: dict = {}

    def get(family: str, trained: bool = False):
        if (family, trained) not in made:
            folder = tmp_path_factory.mktemp(f"{family}_{'trained' if trained else 'fresh'}")
            named, stripped = folder / "named.onnx", folder / "stripped.onnx"
            ids = torch.zeros(1, 8, dtype=torch.long)
            torch.onnx.export(_model(family, trained), (), str(named), kwargs={"input_ids": ids, "use_cache": False},
                              dynamo=True, verbose=False)
            stripped_model = scramble(onnx.load(named))
            assert not any(n.metadata_props for n in stripped_model.graph.node)
            onnx.save(stripped_model, stripped)
            made[family, trained] = named, stripped
        return made[family, trained]

    return get


def _hf(family: str):
    return import_hf(f"hf:{family}", HFOptions(overrides=CONFIGS[family], seq_len=8))


def _deltas(graph, program):
    """(parameters added, what trains afterwards, the result): LoRA freezes everything but its adapters, so
    what trains is their size; any other edit adds trainable parameters to a model that all trains."""
    before = graph.copy()
    result = apply_program(graph, [program])
    assert graph == before  # the input is never changed
    d = result.diff
    trains = d.trainable_after if program["op"] == "add_lora" else d.trainable_after - d.trainable_before
    return d.params_after - d.params_before, trains, result


def _added_ops(before, after) -> Counter:
    return Counter(n.op for n in after.nodes) - Counter(n.op for n in before.nodes)


def _peft_deltas(family: str, peft_kwargs: dict) -> tuple[int, int]:
    model = _model(family, trained=False)
    before = sum(p.numel() for p in model.parameters())
    peft_model = get_peft_model(model, LoraConfig(**peft_kwargs))
    after = sum(p.numel() for p in peft_model.parameters())
    return after - before, sum(p.numel() for p in peft_model.parameters() if p.requires_grad)  # added, trainable


@pytest.mark.parametrize("stripped", [False, True], ids=["named", "stripped"])
@pytest.mark.parametrize("case", sorted(LORA))
def test_lora_on_torch_onnx_files_adds_what_peft_adds(files, case, stripped):
    """The parameter and trainable deltas are peft's on the real module, exactly; the projections keep the
    parameters the file gives them (no bias where the MatMul has none) and LoRA adds the ops it adds on the
    Hugging Face graph."""
    family, program, peft_kwargs = LORA[case]
    graph = import_onnx(files(family)[stripped])
    params, trainable, result = _deltas(graph, program)
    assert (params, trainable) == _peft_deltas(family, peft_kwargs)
    shapes = lambda g: sorted(tuple(v.shape) for v in g.parameters if ".lora_" not in v.name)  # noqa: E731
    assert shapes(result.graph) == shapes(graph)  # no bias invented, no weight reshaped
    hf = _hf(family)
    assert _added_ops(graph, result.graph) == _added_ops(hf, apply_program(hf, [program]).graph)


@pytest.mark.parametrize("program", [
    {"op": "insert_adapter", "bottleneck": 8},
    {"op": "replace_norm", "to": "layernorm"},
    {"op": "replace_activation", "to": "gelu"},
    {"op": "add_dropout", "target": {"roles": ["attn"]}, "p": 0.1},
    {"op": "add_dropout", "target": {"roles": ["mlp"], "layers": [0]}, "p": 0.1},
    {"op": "add_lora", "target": {"roles": ["attn.o", "mlp.down"]}, "r": 4},
], ids=lambda p: p["op"] + ("_" + "_".join(p["target"]["roles"]) if "target" in p else ""))
@pytest.mark.parametrize("stripped", [False, True], ids=["named", "stripped"])
@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_every_splicing_edit_on_an_onnx_file_is_the_edit_on_the_model(files, family, stripped, program):
    """On a file exported from a trained-like model (every weight its own initializer), each edit that puts
    modules in changes parameters, trainable parameters and ops as it does on the Hugging Face graph."""
    if family == "gpt2" and program["op"] == "replace_norm":
        program = {**program, "to": "rmsnorm"}
    graph = import_onnx(files(family, trained=True)[stripped])
    hf = _hf(family)
    params, trainable, result = _deltas(graph, program)
    hf_params, hf_trainable, hf_result = _deltas(hf, program)
    assert (params, trainable) == (hf_params, hf_trainable)
    # torch.onnx may flatten a projection's rows together with the reshape before it (GPT-2's c_proj reads
    # the attention heads): LoRA then reads the rows the matmul reads and needs no views of its own
    plain = lambda ops: Counter({op: n for op, n in ops.items() if op != "aten.view.default"})  # noqa: E731
    assert plain(_added_ops(graph, result.graph)) == plain(_added_ops(hf, hf_result.graph))
    if program["op"] == "replace_activation" and family == "llama":  # all of SiLU goes: x * sigmoid(x)
        assert not any(n.op == "aten.sigmoid.default" for n in result.graph.nodes)


def test_merged_initializers_are_explained_not_silently_short(files):
    """torch.onnx stores a fresh Llama's seven norm weights (all ones) once: the summary says so and by how
    much the count is short; replacing the norms differs from the model's delta by exactly that."""
    named, stripped = files("llama")
    hidden, norms = CONFIGS["llama"]["hidden_size"], 2 * CONFIGS["llama"]["num_hidden_layers"] + 1
    for path, by in ((named, "modules"), (stripped, "ops")):
        graph = import_onnx(path)
        summary = summarize(graph)
        (shared,) = summary["shared"]
        assert (shared["shape"], len(shared["places"]), shared["by"]) == ([hidden], norms, by)
        short = (norms - 1) * hidden
        text = format_summary(summary)
        assert f"{summary['params'] + short:,} parameters, {short:,} more than counted here" in text
        params, _, _ = _deltas(graph, {"op": "replace_norm", "to": "layernorm"})
        hf_params, _, _ = _deltas(_hf("llama"), {"op": "replace_norm", "to": "layernorm"})
        assert params == hf_params + short
    assert summarize(_hf("llama"))["shared"] == []  # a model's tied weights are the model's, not the file's
    assert summarize(import_onnx(files("llama", trained=True)[0]))["shared"] == []


def test_mad_edit_on_a_stripped_file(files, tmp_path, capsys):
    """The issue's reproduction, through the command line: the diff it prints is peft's +1,792."""
    from assistant.ui.cli import run

    program = '{"edits":[{"op":"add_lora","target":{"layers":[-1],"roles":["attn.q","attn.v"]},"r":8,"alpha":16}]}'
    out = tmp_path / "out.json"
    assert run(["edit", str(files("llama")[1]), "--program", program, "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "(+1,792)" in printed and "trainable:  123,776 -> 1,792" in printed
    assert out.is_file()
