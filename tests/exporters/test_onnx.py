import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from gnn.errors import ExportError
from gnn.exporters.onnx import example_inputs, save_onnx
from gnn.importers.onnx import import_onnx
from gnn.validate import validate
from tests.conftest import real_model, state_of


@pytest.mark.parametrize("family", ["llama", "bert"])
def test_onnx_passes_the_checker_and_runs(tmp_path, graphs, family):
    graph = graphs[family]
    model = real_model(family)
    path = save_onnx(graph, tmp_path / "m.onnx", weights=state_of(model))
    onnx.checker.check_model(onnx.load(path), full_check=True)
    inputs = {k: v for k, v in example_inputs(graph).items()}
    inputs["input_ids"] = torch.randint(0, 100, inputs["input_ids"].shape)
    sess = ort.InferenceSession(str(path))
    (logits,) = sess.run(["logits"], {k: v.numpy() for k, v in inputs.items()})
    with torch.no_grad():
        expected = model(**inputs).logits.numpy()
    np.testing.assert_allclose(logits, expected, atol=1e-4)


def test_onnx_nodes_carry_module_paths(tmp_path, graphs):
    path = save_onnx(graphs["llama"], tmp_path / "m.onnx")
    model = onnx.load(path)
    spaces = {p.value for n in model.graph.node for p in n.metadata_props if p.key == "namespace"}
    assert "model.layers.1.self_attn.q_proj" in spaces
    assert any(n.name.startswith("/model/layers/1/mlp/") for n in model.graph.node)


def test_onnx_round_trip_keeps_hierarchy_and_validates(tmp_path, graphs):
    path = save_onnx(graphs["llama"], tmp_path / "m.onnx")
    graph = import_onnx(path)
    assert validate(graph).ok
    assert graph.hierarchy["model.layers.0.self_attn"].module_class == "LlamaAttention"
    assert [r.label for r in graph.hierarchy.top_repeats()] == ["model.layers.0-1"]
    again = save_onnx(graph, tmp_path / "again.onnx")
    onnx.checker.check_model(onnx.load(again), full_check=True)
    ort.InferenceSession(str(again)).run(None, {"input_ids": np.zeros((1, 8), dtype=np.int64)})


def test_too_big_to_materialise_is_refused_before_allocating(tmp_path, graphs):
    target = tmp_path / "big.onnx"
    with pytest.raises(ExportError, match=r"needs 0\.0 GB of weights .* more than the 0\.0 GB"):
        save_onnx(graphs["llama"], target, memory_budget=1000)
    assert list(tmp_path.iterdir()) == []


def test_over_two_gigabytes_goes_to_external_data(tmp_path):
    """Default Llama width with one layer: 2.7 GB of fp32 weights, past protobuf's limit."""
    from gnn.importers.hf import HFOptions, import_hf

    graph = import_hf("hf:llama", HFOptions(overrides={"num_hidden_layers": 1, "vocab_size": 64000}, seq_len=4))
    path = save_onnx(graph, tmp_path / "big.onnx")
    assert (tmp_path / "big.onnx.data").stat().st_size > 2 * 1024**3
    assert path.stat().st_size < 50 * 1024**2
    onnx.checker.check_model(str(path))
