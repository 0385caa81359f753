"""The prompts: texts in prompts/, filled in by assistant.prompting; the edit list read off the registry."""

import dataclasses

import jinja2
import pytest

from assistant.prompting import ops_text, render, system_prompt
from gnn.edits import EDITS
from gnn.edits.ops.base import Edit, register


def test_the_system_prompt_names_every_edit_and_the_parameters_it_lists():
    text = system_prompt()
    assert ("Ops: add_lora (r, alpha, dropout), remove_layers, insert_layers (count), replace_activation (to), "
            "replace_norm (to: rmsnorm or layernorm), set_kv_heads (kv_heads; 1 is multi-query), insert_adapter "
            "(bottleneck, activation), add_dropout (p), freeze, unfreeze.") in text
    for op, cls in EDITS.items():
        assert op in text
        fields = {f.name for f in dataclasses.fields(cls)}
        assert set(cls.prompt_params) <= fields


def test_a_new_edit_reaches_the_prompt_and_a_wrong_parameter_name_is_refused():
    @dataclasses.dataclass
    class Shrink(Edit):
        prompt_params = ("factor",)
        factor: int = 2

    register("shrink_width")(Shrink)
    try:
        assert ops_text().endswith(", unfreeze, shrink_width (factor)")
    finally:
        del EDITS["shrink_width"]

    @dataclasses.dataclass
    class Typo(Edit):
        prompt_params = ("factr",)
        factor: int = 2

    with pytest.raises(TypeError, match=r"edit `typo` names parameters it lacks: \['factr'\]"):
        register("typo")(Typo)
    assert "typo" not in EDITS


def test_a_template_value_left_out_is_an_error_not_an_empty_string():
    with pytest.raises(jinja2.UndefinedError, match="error"):
        render("retry.md")
    assert render("retry.md", error="no layer 9.") == "The engine refused that: no layer 9. Answer again."
