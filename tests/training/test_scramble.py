"""Scrambled ONNX files keep the computation and lose every name."""

import numpy as np
import onnx
import onnxruntime as ort

from gnn.training.scramble import main, scramble
from gnn.exporters.onnx import save_onnx


def test_scrambled_model_computes_the_same_without_names(tmp_path, graphs):
    path = save_onnx(graphs["gpt2"], tmp_path / "m.onnx")
    model = onnx.load(path)
    assert main([str(path), str(tmp_path / "s.onnx")]) == 0
    blank = onnx.load(tmp_path / "s.onnx")
    onnx.checker.check_model(blank, full_check=True)
    names = {v.name for v in model.graph.initializer} | {n.name for n in model.graph.node}
    text = str(blank)
    assert not any(name in text for name in names if len(name) > 3)
    assert not blank.metadata_props and not any(n.metadata_props for n in blank.graph.node)
    assert [n.op_type for n in blank.graph.node] == [n.op_type for n in model.graph.node]
    ids = np.random.default_rng(0).integers(0, 100, (1, 8)).astype(np.int64)
    a = ort.InferenceSession(str(path)).run(None, {model.graph.input[0].name: ids})[0]
    b = ort.InferenceSession(str(tmp_path / "s.onnx")).run(None, {blank.graph.input[0].name: ids})[0]
    np.testing.assert_array_equal(a, b)


def test_scramble_usage(capsys):
    assert main(["only-one.onnx"]) == 2
    assert "usage:" in capsys.readouterr().err


def test_scramble_keeps_its_input(graphs, tmp_path):
    model = onnx.load(save_onnx(graphs["llama"], tmp_path / "m.onnx"))
    before = model.SerializeToString()
    scramble(model)
    assert model.SerializeToString() == before
