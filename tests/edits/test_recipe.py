"""The way back to code (issue 21): each recipe's snippet and config, run on the rebuilt tiny model, give MAD's graph."""

import pytest

from gnn.errors import EditError
from gnn.edits.recipe import check, recipe
from gnn.ir.graph import graph_key

PROGRAMS = [
    [{"op": "remove_layers", "target": {"layers": [0]}}],
    [{"op": "insert_layers", "target": {"layers": [0]}, "count": 2}],
    [{"op": "replace_activation", "to": "relu", "target": {"layers": [1]}}],
    [{"op": "insert_adapter", "bottleneck": 8, "target": {"roles": ["attn"], "layers": [1]}}],
    [{"op": "add_dropout", "p": 0.2, "target": {"roles": ["mlp"]}}],
    [{"op": "freeze"}, {"op": "unfreeze", "target": {"layers": [-1]}}],
    [{"op": "remove_layers", "target": {"layers": [1]}}, {"op": "add_lora", "r": 4}],
]


@pytest.mark.parametrize("family", ["llama", "gpt2", "bert"])
@pytest.mark.parametrize("edits", PROGRAMS[:2] + PROGRAMS[5:], ids=lambda e: "+".join(x["op"] for x in e))
def test_recipe_gives_mads_graph(graphs, family, edits):
    before = graph_key(graphs[family])
    made = check(graphs[family], {"edits": edits})
    assert "def edit(model):" in made.code
    assert graph_key(graphs[family]) == before  # the input graph is never changed


@pytest.mark.parametrize("edits", PROGRAMS[2:5] + [[{"op": "set_kv_heads", "kv_heads": 1}],
                                                     [{"op": "replace_norm", "to": "layernorm"}]],
                         ids=lambda e: e[0]["op"])
def test_llama_snippets_and_configs(graphs, edits):
    made = check(graphs["llama"], {"edits": edits})
    if edits[0]["op"] == "set_kv_heads":
        assert made.config["num_key_value_heads"] == 1 and made.config_changes == {"num_key_value_heads": 1}


def test_lora_recipe_is_peft_config(graphs):
    made = check(graphs["mistral"], {"edits": [{"op": "add_lora", "r": 4, "target": {"roles": ["attn.q", "attn.v"],
                                                                                    "layers": [1]}}]})
    assert made.lora["r"] == 4 and made.lora["target_modules"] == ["q_proj", "v_proj"]
    assert "get_peft_model(model, lora)" in made.code and made.config is None


def test_t5_snippet(graphs):
    check(graphs["t5"], {"edits": [{"op": "replace_norm", "to": "layernorm"}]})


def test_no_snippet_says_why(graphs):
    with pytest.raises(EditError, match="fused projection"):
        recipe(graphs["gpt2"], {"edits": [{"op": "set_kv_heads", "kv_heads": 1}]})
