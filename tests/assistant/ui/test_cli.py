"""The `mad` command: happy paths and every bad input the graph-core issue names."""

import json
import os
import pickle
import subprocess
import sys

import onnx
import pytest

from assistant.ui.cli import run
from gnn.ir.serialize import to_dict, to_json
from tests.conftest import TINY, real_model

LLAMA_SET = [a for k, v in TINY["llama"].items() for a in ("--set", f"{k}={v}")]


def mad(capsys, *argv):
    code = run([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_refused(code, err, *fragments):
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1, err  # one line, no traceback
    assert lines[0].startswith("mad: error: ")
    for fragment in fragments:
        assert fragment in lines[0]


def test_import_writes_json_onnx_and_explorer(tmp_path, capsys):
    out = tmp_path / "g.json"
    code, stdout, _ = mad(capsys, "import", "hf:llama", *LLAMA_SET, "-o", out,
                          "--onnx", tmp_path / "g.onnx", "--explorer", tmp_path / "e.json")
    assert code == 0, stdout
    onnx.checker.check_model(str(tmp_path / "g.onnx"), full_check=True)
    assert json.loads((tmp_path / "e.json").read_text())["graphs"][0]["nodes"]
    code, stdout, _ = mad(capsys, "summary", out, "--json")
    summary = json.loads(stdout)
    assert summary["params"] == sum(p.numel() for p in real_model("llama").parameters())
    assert summary["layers"] == 2
    assert summary["ops"]["aten.mm.default"] > 0
    assert mad(capsys, "validate", out)[0] == 0
    code, _, _ = mad(capsys, "export", out, "--onnx", tmp_path / "again.onnx")
    assert code == 0 and (tmp_path / "again.onnx").exists()


def test_summary_of_each_source_kind(tmp_path, capsys, graphs):
    (tmp_path / "g.json").write_text(to_json(graphs["gpt2"]))
    code, out, _ = mad(capsys, "summary", tmp_path / "g.json")
    assert code == 0 and "transformer.h.0-1 × GPT2Block" in out
    code, out, _ = mad(capsys, "summary", "hf:gpt2", "--set", "n_layer=1", "--json")
    assert json.loads(out)["params"] == 124_439_808 - 11 * 7_087_872  # GPT-2 small keeping 1 of its 12 blocks


def test_python_dash_m_and_no_traceback():
    proc = subprocess.run([sys.executable, "-m", "assistant", "summary", "hf:mistrall"],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "mad: error: unknown model type `mistrall`; did you mean mistral, mistral4, mistral3, ministral, mixtral?"
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    "argv, fragments",
    [
        (["hf:lama"], ["unknown model type `lama`", "did you mean llama"]),
        (["hf:llama", "--set", "num_hidden_layers"], ["malformed --set `num_hidden_layers`", "KEY=VALUE"]),
        (["hf:llama", "--set", "num_hiden_layers=2"], ["has no setting `num_hiden_layers`", "num_hidden_layers"]),
        (["hf:llama", "--set", "hidden_size=66", "--set", "num_attention_heads=4", "--set", "num_hidden_layers=1"],
         ["--set rejected by LlamaConfig", "hidden size (66) is not a multiple"]),
        (["hf:llama", "--head", "poetry"], ["unknown head `poetry`"]),
        (["missing/folder"], ["no such file or folder"]),
    ],
)
def test_bad_sources_write_nothing(tmp_path, capsys, argv, fragments):
    out = tmp_path / "g.json"
    code, _, err = mad(capsys, "import", *argv, "-o", out)
    assert_refused(code, err, *fragments)
    assert list(tmp_path.iterdir()) == []


def test_malformed_config_folder(tmp_path, capsys):
    folder = tmp_path / "cfg"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "llama", "hidden_size": ')
    code, _, err = mad(capsys, "import", folder, "-o", tmp_path / "g.json")
    assert_refused(code, err, "is not valid JSON", "Hugging Face config.json")
    (folder / "config.json").write_text('{"hidden_size": 8}')
    code, _, err = mad(capsys, "import", folder, "-o", tmp_path / "g.json")
    assert_refused(code, err, "has no `model_type`")
    assert not (tmp_path / "g.json").exists()


def test_pickles_are_refused_unread(tmp_path, capsys):
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    for suffix in (".pt", ".pth", ".bin", ".pkl"):
        path = tmp_path / f"model{suffix}"
        path.write_bytes(pickle.dumps(Exploit()))
        code, _, err = mad(capsys, "summary", path)
        assert_refused(code, err, f"refusing `model{suffix}`", "pickles")
    assert not marker.exists()


def test_truncated_and_invalid_onnx(tmp_path, capsys, graphs):
    from gnn.exporters.onnx import save_onnx

    good = save_onnx(graphs["gpt2"], tmp_path / "good.onnx")
    data = good.read_bytes()
    (tmp_path / "cut.onnx").write_bytes(data[: len(data) // 3])
    code, _, err = mad(capsys, "import", tmp_path / "cut.onnx", "-o", tmp_path / "g.json")
    assert_refused(code, err, "cut.onnx")
    (tmp_path / "junk.onnx").write_text("not a protobuf at all")
    code, _, err = mad(capsys, "validate", tmp_path / "junk.onnx")
    assert_refused(code, err, "junk.onnx")
    assert not (tmp_path / "g.json").exists()


def test_unsupported_onnx_op_is_named(tmp_path, capsys):
    from onnx import TensorProto, helper

    node = helper.make_node("FusedGelu", ["x"], ["y"], domain="com.example", name="/block/FusedGelu")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)])
    onnx.save(model, tmp_path / "custom.onnx")
    code, _, err = mad(capsys, "import", tmp_path / "custom.onnx", "-o", tmp_path / "g.json")
    assert_refused(code, err, "unsupported op(s)", "`com.example::FusedGelu` at block")
    assert not (tmp_path / "g.json").exists()


def test_file_over_the_size_limit(tmp_path, capsys, graphs, monkeypatch):
    path = tmp_path / "g.json"
    path.write_text(to_json(graphs["gpt2"]))
    monkeypatch.setenv("MAD_MAX_FILE_MB", "0.01")
    code, _, err = mad(capsys, "validate", path)
    assert_refused(code, err, "over the 0 MB limit", "MAD_MAX_FILE_MB")


def test_graph_json_failing_the_schema(tmp_path, capsys, graphs):
    data = to_dict(graphs["gpt2"])
    del data["nodes"][2]["op"]
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    code, _, err = mad(capsys, "export", path, "--onnx", tmp_path / "o.onnx")
    assert_refused(code, err, "fails the schema", "'op' is a required property")
    assert not (tmp_path / "o.onnx").exists()
    path.write_text("{ not json")
    code, _, err = mad(capsys, "validate", path)
    assert_refused(code, err, "not valid JSON")


def test_graph_with_a_cycle_or_a_shape_error(tmp_path, capsys, graphs):
    g = graphs["gpt2"].copy()
    a, b = g.nodes[10], g.nodes[11]
    a.args[0] = {"value": b.outputs[0]}
    path = tmp_path / "cycle.json"
    path.write_text(to_json(g))
    code, out, _ = mad(capsys, "validate", path)
    assert code == 1 and ("[cycle]" in out or "[order]" in out)

    g = graphs["gpt2"].copy()
    node = next(n for n in g.nodes if n.op == "aten.addmm.default")
    g.values[node.outputs[0]].shape = [8, 7]
    path = tmp_path / "shape.json"
    path.write_text(to_json(g))
    code, out, _ = mad(capsys, "validate", path)
    assert code == 1
    assert f"error: {node.module} ({node.id}: aten.addmm.default): [shape]" in out
    code, _, err = mad(capsys, "export", path, "--onnx", tmp_path / "o.onnx")
    assert code == 1 and "graph is invalid" in err and not (tmp_path / "o.onnx").exists()


def test_too_big_onnx_is_refused_and_nothing_is_written(tmp_path, capsys):
    """Llama-3-8B shape: 32 GB of fp32 weights do not fit in this machine's memory."""
    out, onnx_out = tmp_path / "g.json", tmp_path / "g.onnx"
    code, _, err = mad(capsys, "import", "hf:llama", "--set", "intermediate_size=14336", "--set", "num_key_value_heads=8",
                       "--set", "vocab_size=128256", "-o", out, "--onnx", onnx_out)
    assert_refused(code, err, "GB of weights to write as ONNX")
    assert sorted(os.listdir(tmp_path)) == []


def test_edit_writes_the_edited_graph_and_prints_the_diff(tmp_path, capsys):
    program = tmp_path / "p.json"
    program.write_text('{"edits": [{"op": "remove_layers", "target": {"layers": [-1]}}, {"op": "freeze"}]}')
    out = tmp_path / "e.json"
    code, stdout, _ = mad(capsys, "edit", "hf:llama", *LLAMA_SET, "--program", program, "-o", out)
    assert code == 0 and "parameters:" in stdout and "trainable:" in stdout
    code, stdout, _ = mad(capsys, "summary", out, "--json")
    summary = json.loads(stdout)
    assert summary["layers"] == 1 and summary["trainable_params"] == 0


@pytest.mark.parametrize(
    "program, fragments",
    [
        ('{"edits": [{"op": "shrink"}]}', ["unknown edit op `shrink`", "edits are:"]),
        ('{"edits": [{"op": "remove_layers", "target": {"layers": [40]}}]}', ["layer 40 is out of range", "(0..1)"]),
        ('{"edits": [{"op": "freeze", "target": {"roles": ["mlp.middle"]}}]}', ["unknown role `mlp.middle`"]),
        ('{"edits": [{"op": "add_lora", "r": 0}]}', ["`r` must be a positive integer, got 0"]),
        ('{"edits": [{"op": "set_kv_heads", "kv_heads": 3}]}', ["`kv_heads` must divide the 4 attention heads",
                                                               "choose one of 1, 2, 4"]),
        ('{"edits": [{"op": "freeze"', ["not valid JSON"]),
        ('no-such-program.json', ["--program is neither JSON nor an existing file"]),
    ],
)
def test_bad_edit_programs_write_nothing(tmp_path, capsys, program, fragments):
    out = tmp_path / "e.json"
    code, _, err = mad(capsys, "edit", "hf:llama", *LLAMA_SET, "--program", program, "-o", out, "--onnx", tmp_path / "e.onnx")
    assert_refused(code, err, *fragments)
    assert list(tmp_path.iterdir()) == []


def test_edit_writes_the_peft_config(tmp_path, capsys):
    from peft import LoraConfig

    out, peft_out = tmp_path / "e.json", tmp_path / "lora.json"
    program = '{"edits": [{"op": "add_lora", "target": {"layers": [-1], "roles": ["attn.q", "attn.v"]}, "r": 4, "alpha": 16}]}'
    code, stdout, _ = mad(capsys, "edit", "hf:llama", *LLAMA_SET, "--program", program, "-o", out, "--peft-config", peft_out)
    assert code == 0
    config = json.loads(peft_out.read_text())
    assert config["target_modules"] == ["q_proj", "v_proj"] and config["layers_to_transform"] == [1]
    config.pop("peft_type")
    LoraConfig(**config)  # peft accepts it as is
    summary = json.loads(mad(capsys, "summary", out, "--json")[1])
    assert summary["trainable_params"] == 2 * 4 * 64 + 4 * 64 + 4 * 32  # A and B of q (64->64) and v (64->32)


def test_peft_config_without_lora_is_refused(tmp_path, capsys):
    code, _, err = mad(capsys, "edit", "hf:llama", *LLAMA_SET, "--program", '{"edits": [{"op": "freeze"}]}',
                       "-o", tmp_path / "e.json", "--peft-config", tmp_path / "p.json")
    assert_refused(code, err, "--peft-config: this program makes no peft config")
    assert list(tmp_path.iterdir()) == []


def test_edit_emits_the_code_and_the_config_that_make_the_same_graph(tmp_path, capsys):
    from transformers import AutoConfig

    from gnn.edits import apply_program
    from gnn.edits.recipe import _difference, _imported, _rebuild
    from gnn.sources import load

    program = '{"edits": [{"op": "set_kv_heads", "kv_heads": 1}, {"op": "remove_layers", "target": {"layers": [-1]}}]}'
    out, py, cfg = tmp_path / "e.json", tmp_path / "edit.py", tmp_path / "config.json"
    code, stdout, err = mad(capsys, "edit", "hf:llama", *LLAMA_SET, "--program", program, "-o", out,
                            "--emit-code", py, "--emit-config", cfg)
    assert code == 0, err
    assert "checked: run on the rebuilt model, it gives MAD's graph" in stdout
    config = AutoConfig.for_model(**{k: v for k, v in json.loads(cfg.read_text()).items() if k != "model_type"},
                                  model_type="llama")
    assert (config.num_key_value_heads, config.num_hidden_layers) == (1, TINY["llama"]["num_hidden_layers"] - 1)
    assert oct(cfg.stat().st_mode & 0o777) == oct(0o666 & ~_umask())  # an ordinary file, not a private temp file
    # the written snippet, run by the user on their own model, gives the written graph
    graph = load("hf:llama", TINY["llama"])
    want = apply_program(graph, program).graph
    model, variants = _rebuild(graph)
    namespace: dict = {}
    exec(py.read_text(), namespace)
    assert _difference(want, _imported(namespace["edit"](model), variants)) is None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@pytest.mark.parametrize("program, flag, fragments", [
    ('{"edits": [{"op": "insert_adapter", "target": {"layers": [-1], "roles": ["mlp"]}, "bottleneck": 8}]}',
     "--emit-config", ["--emit-config: no config.json for this program: edit 0 (`insert_adapter`) is not a config "
                       "setting; --emit-code gives a snippet"]),
    ('{"edits": [{"op": "set_kv_heads", "kv_heads": 3}]}', "--emit-code", ["kv_heads"]),
])
def test_emit_refusals_write_nothing(tmp_path, capsys, program, flag, fragments):
    code, _, err = mad(capsys, "edit", "hf:llama", *LLAMA_SET, "--program", program, "-o", tmp_path / "e.json",
                       flag, tmp_path / "out")
    assert_refused(code, err, *fragments)
    assert list(tmp_path.iterdir()) == []


def test_emit_code_for_a_graph_of_no_config_says_it_cannot_be_checked(tmp_path, capsys, graphs):
    src = tmp_path / "g.json"
    data = to_dict(graphs["llama"])
    data["meta"] = {k: v for k, v in data["meta"].items() if k != "source"}  # as a graph from an ONNX file or a torch module: nothing to rebuild
    src.write_text(json.dumps(data))
    code, _, err = mad(capsys, "edit", src, "--program", '{"edits": [{"op": "freeze"}]}', "-o", tmp_path / "e.json",
                       "--emit-code", tmp_path / "edit.py")
    assert_refused(code, err, "only a graph imported from a Hugging Face config can be checked")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.json"]


def test_roles_lists_what_the_labeler_found(capsys):
    code, out, _ = mad(capsys, "roles", "hf:llama", *LLAMA_SET, "--json")
    assert code == 0
    found = json.loads(out)
    assert found["attn.q"] == ["model.layers.0.self_attn.q_proj", "model.layers.1.self_attn.q_proj"]
    assert found["lm_head"] == ["lm_head"] and "attn.qkv" not in found
    code, out, _ = mad(capsys, "roles", "hf:gpt2", "--set", "n_layer=2")
    assert code == 0 and "attn.qkv" in out and "transformer.h.0.attn.c_attn" in out
