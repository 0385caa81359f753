"""Shared fixtures: tiny real configs of the families the tests cover, imported once per session."""

from __future__ import annotations

import copy
import os
import warnings

import pytest
import torch

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
warnings.filterwarnings("ignore")

# Tiny but real configs: every width divisible as the architectures require.
TINY = {
    "llama": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, vocab_size=100),
    "gpt2": dict(n_embd=64, n_layer=2, n_head=4, vocab_size=100, n_positions=64),
    "bert": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, vocab_size=100),
    "t5": dict(d_model=64, d_ff=128, num_layers=2, num_heads=4, d_kv=16, vocab_size=100),
    "vit": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, image_size=32,
                patch_size=8),
    "whisper": dict(d_model=64, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
                    decoder_attention_heads=4, encoder_ffn_dim=128, decoder_ffn_dim=128,
                    max_source_positions=32, num_mel_bins=16),
    "bloom": dict(hidden_size=64, n_layer=2, n_head=4, vocab_size=100),
    "mistral": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                    num_key_value_heads=2, vocab_size=100),
}


def tiny_graph(model_type: str, seq_len: int = 8):
    from gnn.importers.hf import HFOptions, import_hf

    return import_hf(f"hf:{model_type}", HFOptions(overrides=TINY[model_type], seq_len=seq_len))


_CACHE: dict[str, object] = {}
_META: dict[str, dict] = {}  # each cached graph's meta as imported, to name the test that changes it


@pytest.fixture(scope="session")
def graphs():
    """Lazily imported tiny graphs, shared by every test of the session (do not mutate them)."""

    class Graphs:
        def __getitem__(self, model_type):
            if model_type not in _CACHE:
                _CACHE[model_type] = tiny_graph(model_type)
                _META[model_type] = copy.deepcopy(_CACHE[model_type].meta)
            return _CACHE[model_type]

    return Graphs()


@pytest.fixture(autouse=True)
def _shared_graphs_unchanged():
    """A test that changes a shared graph fails itself, rather than a later test on the same worker."""
    yield
    changed = sorted(t for t, meta in _META.items() if _CACHE[t].meta != meta)
    for t in changed:
        _CACHE.pop(t)  # the next test imports it again
        _META.pop(t)
    assert not changed, f"this test changed the shared graphs' meta: {changed}"


def real_model(model_type: str):
    """The same tiny architecture with real random weights, for equivalence checks."""
    from transformers import (AutoConfig, AutoModelForCausalLM, AutoModelForImageClassification,
                              AutoModelForMaskedLM, AutoModelForSeq2SeqLM, AutoModelForSpeechSeq2Seq)

    torch.manual_seed(0)
    config = AutoConfig.for_model(model_type, **TINY[model_type])
    cls = {"bert": AutoModelForMaskedLM, "t5": AutoModelForSeq2SeqLM, "vit": AutoModelForImageClassification,
           "whisper": AutoModelForSpeechSeq2Seq}.get(model_type, AutoModelForCausalLM)
    return cls.from_config(config).eval()


def state_of(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Parameters and every buffer (non-persistent ones too, e.g. rotary inv_freq)."""
    state = dict(model.state_dict())
    state.update(dict(model.named_buffers()))
    return state
