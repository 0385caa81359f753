import numpy as np
import onnx
import torch
from onnx import TensorProto, helper

from gnn.importers.onnx import import_onnx
from gnn.validate import validate


class Inner(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(4, 4)

    def forward(self, x):
        return torch.relu(self.lin(x))


class Stack(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.blocks = torch.nn.ModuleList([Inner(), Inner()])
        self.norm = torch.nn.LayerNorm(4)

    def forward(self, x):
        for block in self.blocks:
            x = block(x)
        return torch.softmax(self.norm(x), -1)


def test_hierarchy_from_torch_onnx_name_scopes(tmp_path):
    program = torch.onnx.export(Stack(), (torch.randn(2, 4),), dynamo=True, optimize=False, verbose=False)
    program.save(str(tmp_path / "m.onnx"))
    graph = import_onnx(tmp_path / "m.onnx")
    assert validate(graph).ok
    h = graph.hierarchy
    assert h["blocks.1.lin"].module_class == "Linear"
    assert h["blocks.0"].module_class == "Inner"
    assert [r.label for r in h.top_repeats()] == ["blocks.0-1"]
    assert h["blocks.0.lin"].num_parameters == 20  # 4x4 weight + 4 bias


def test_hierarchy_from_slash_scoped_names(tmp_path):
    torch.onnx.export(Stack(), (torch.randn(2, 4),), str(tmp_path / "m.onnx"), dynamo=False,
                      input_names=["x"], dynamic_axes={"x": {0: "batch"}})
    graph = import_onnx(tmp_path / "m.onnx")
    assert validate(graph).ok
    assert "blocks.0.lin" in graph.hierarchy
    assert graph.values["x"].shape == ["batch", 4]  # symbolic dims stay symbolic
    ops = {n.op for n in graph.nodes}
    assert "aten.relu.default" in ops and "aten._softmax.default" in ops  # mapped where the meaning is the same
    assert "onnx::Gemm" in ops  # kept where it is not


def test_flat_graph_without_names(tmp_path):
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Tanh", ["h"], ["y"])]
    w = helper.make_tensor("w", TensorProto.FLOAT, [3, 5], np.zeros(15, dtype=np.float32))
    g = helper.make_graph(nodes, "flat", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 5])], initializer=[w])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "flat.onnx")
    graph = import_onnx(tmp_path / "flat.onnx")
    assert validate(graph).ok
    assert {n.module for n in graph.nodes} == {""}
    assert graph.num_parameters == 15
    assert [n.op for n in graph.nodes] == ["onnx::MatMul", "aten.tanh.default"]


def test_onnx_shape_error_is_found(tmp_path):
    nodes = [helper.make_node("MatMul", ["x", "w"], ["y"], name="/proj/MatMul")]
    w = helper.make_tensor("w", TensorProto.FLOAT, [3, 5], np.zeros(15, dtype=np.float32))
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 5])], initializer=[w])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "g.onnx")
    graph = import_onnx(tmp_path / "g.onnx")
    graph.values["y"].shape = [2, 6]
    (issue,) = validate(graph).errors
    assert issue.module == "proj" and issue.rule == "shape" and "expected [2, 6], got [2, 5]" in str(issue)
