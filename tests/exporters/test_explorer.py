from gnn.exporters.explorer import to_explorer


def test_namespaces_are_module_paths(graphs):
    graph = graphs["llama"]
    data = to_explorer(graph)
    (g,) = data["graphs"]
    assert data["label"] == graph.name  # a graph collection: what Model Explorer's JSON loader opens from a file
    nodes = {n["id"]: n for n in g["nodes"]}
    for node in graph.nodes:
        assert nodes[node.id]["namespace"] == node.module.replace(".", "/")
    for n in g["nodes"]:
        for e in n["incomingEdges"]:
            assert e["sourceNodeId"] in nodes
    assert g["groupNodeAttributes"]["model/layers/0"]["module_class"] == "LlamaDecoderLayer"
    shapes = [a["value"] for n in g["nodes"] for m in n["outputsMetadata"] for a in m["attrs"] if a["key"] == "tensor_shape"]
    assert "float32[1,8,100]" in shapes
