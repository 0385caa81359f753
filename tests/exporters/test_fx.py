import pytest
import torch

from gnn.errors import ExportError
from gnn.exporters.fx import to_graph_module
from tests.conftest import real_model, state_of


def _inputs(family):
    g = torch.Generator().manual_seed(1)
    if family == "vit":
        return {"pixel_values": torch.randn(1, 3, 32, 32, generator=g)}
    ids = {"input_ids": torch.randint(0, 100, (1, 8), generator=g)}
    if family == "t5":
        ids["decoder_input_ids"] = torch.randint(0, 100, (1, 4), generator=g)
    return ids


@pytest.mark.parametrize("family", ["llama", "gpt2", "bert", "t5", "vit"])
def test_rebuilt_module_equals_the_original(graphs, family):
    """The graph traced on meta, given the real model's weights, computes the same logits."""
    model = real_model(family)
    rebuilt = to_graph_module(graphs[family], weights=state_of(model))
    inputs = _inputs(family)
    with torch.no_grad():
        expected = model(**inputs).logits
        got = rebuilt(**inputs)["logits"]
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


def test_random_weights_run(graphs):
    out = to_graph_module(graphs["mistral"], seed=3)(**_inputs("llama"))["logits"]
    assert out.shape == (1, 8, 100) and torch.isfinite(out).all()


def test_missing_weights_are_named(graphs):
    state = state_of(real_model("llama"))
    del state["model.norm.weight"]
    with pytest.raises(ExportError, match="weights lack 1 tensors the graph needs, e.g. model.norm.weight"):
        to_graph_module(graphs["llama"], weights=state)


def test_parameters_keep_their_paths(graphs):
    gm = to_graph_module(graphs["llama"])
    names = dict(gm.named_parameters())
    assert names["model.layers.0.self_attn.q_proj.weight"].shape == (64, 64)
    assert set(names) <= set(real_model("llama").state_dict())
