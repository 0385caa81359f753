"""A graph read from ONNX, edited, written back to ONNX: the ops an edit traced in are written too."""

from collections import Counter

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from gnn.edits import apply_program
from gnn.exporters.onnx import save_onnx
from gnn.importers.onnx import import_onnx


@pytest.mark.parametrize("program", [
    [{"op": "add_lora", "target": {"layers": [-1], "roles": ["attn.q", "attn.v"]}}],
    [{"op": "insert_adapter", "bottleneck": 8}],
    [{"op": "replace_activation", "to": "gelu"}],
    [{"op": "replace_norm", "to": "layernorm"}],
])
def test_edited_onnx_graph_exports_and_runs(graphs, tmp_path, program):
    graph = import_onnx(save_onnx(graphs["llama"], tmp_path / "m.onnx"))
    edited = apply_program(graph, program).graph
    path = save_onnx(edited, tmp_path / "e.onnx")
    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    ids = np.zeros((1, 8), dtype=np.int64)
    (logits,) = ort.InferenceSession(str(path)).run(None, {model.graph.input[0].name: ids})
    assert logits.shape == (1, 8, 100) and np.isfinite(logits).all()
    unedited = onnx.load(save_onnx(graph, tmp_path / "same.onnx"))
    assert Counter(n.op_type for n in model.graph.node) != Counter(n.op_type for n in unedited.graph.node)
