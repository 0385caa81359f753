import json

import pytest

from gnn.errors import SourceError
from gnn.ir.serialize import check_schema, from_json, to_dict, to_json


@pytest.mark.parametrize("family", ["llama", "gpt2", "bert", "t5", "vit", "whisper"])
def test_json_round_trip_is_lossless(graphs, family):
    graph = graphs[family]
    text = to_json(graph)
    again = from_json(text)
    assert again == graph
    assert to_json(again) == text  # deterministic bytes
    check_schema(json.loads(text))


def test_round_trip_of_an_onnx_graph(tmp_path, graphs):
    from gnn.exporters.onnx import save_onnx
    from gnn.importers.onnx import import_onnx

    save_onnx(graphs["llama"], tmp_path / "m.onnx")
    graph = import_onnx(tmp_path / "m.onnx")
    assert from_json(to_json(graph)) == graph


def test_module_order_survives_serialisation(graphs):
    graph = graphs["llama"]
    again = from_json(to_json(graph))
    assert list(again.modules) == list(graph.modules)


def test_schema_rejects_a_malformed_graph(graphs):
    data = to_dict(graphs["gpt2"])
    data["nodes"][0]["op"] = 42
    with pytest.raises(SourceError, match=r"fails the schema .* at nodes/0/op"):
        from_json(json.dumps(data))


def test_newer_format_versions_are_refused(graphs):
    data = to_dict(graphs["gpt2"])
    data["version"] = 2
    with pytest.raises(SourceError, match="format version 2"):
        from_json(json.dumps(data))
