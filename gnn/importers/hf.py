"""Hugging Face transformers models from their config alone.

``hf:<model_type>`` takes that type's default config (``hf:mistral`` is
Mistral-7B's shape), ``hf:<org/name>`` a config already in the local HF cache
(never downloaded), and a folder its ``config.json``.  ``--set key=value``
overrides are applied on top.  The model is built on the meta device, so no
weight is ever allocated, and traced with ``torch.export`` on dummy inputs made
for its modality.

The head class follows the task the architecture is known for: seq2seq LM for
encoder-decoders, masked LM for encoders, causal LM for decoders, then
speech, vision and multimodal heads, the base model, and finally the concrete
model classes of the type's module (how sub-models such as
``aimv2_vision_model`` are reached).  Candidates are tried in that order.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass, field
from typing import Any

import torch

from gnn.errors import MadError, SourceError, describe
from gnn.importers.budget import check_budget
from gnn.importers.torch_module import import_module
from gnn.importers.hf_config import all_configs, load_config, safe_getattr, sub_configs
from gnn.importers.hf_config import apply_overrides, model_types  # noqa: F401 - re-exported

# Heads in the order they are tried; names follow transformers' auto mappings.
HEADS: dict[str, str] = {
    "causal-lm": "MODEL_FOR_CAUSAL_LM_MAPPING_NAMES",
    "seq2seq-lm": "MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES",
    "masked-lm": "MODEL_FOR_MASKED_LM_MAPPING_NAMES",
    "speech-seq2seq": "MODEL_FOR_SPEECH_SEQ_2_SEQ_MAPPING_NAMES",
    "image-text-to-text": "MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES",
    "image-classification": "MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES",
    "ctc": "MODEL_FOR_CTC_MAPPING_NAMES",
    "base": "MODEL_MAPPING_NAMES",
}


@dataclass
class HFOptions:
    """How a Hugging Face architecture is traced."""

    overrides: dict[str, Any] = field(default_factory=dict)  # --set key=value, applied to the config
    head: str | None = None  # one of HEADS, or None to pick by model type
    batch_size: int = 1  # dummy-input batch; FLOPs scale with it
    seq_len: int = 16  # dummy text length; small keeps tracing fast, FLOPs scale with it
    max_ops: int | None = None  # refuse a config estimated above this many ops before tracing (None: budget.MAX_OPS)


# -- model classes -----------------------------------------------------------------


def _mapping(head: str) -> dict:
    import transformers.models.auto.modeling_auto as auto

    return getattr(auto, HEADS[head])


def _class(name) -> type | None:
    import transformers

    if isinstance(name, (tuple, list)):
        name = name[0]
    try:
        return getattr(transformers, name)
    except (AttributeError, ImportError):
        return None


def concrete_classes(config) -> list[type]:
    """Model classes of the config's own module whose config class is this config's."""
    from transformers import PreTrainedModel

    module_name = type(config).__module__.replace(".configuration_", ".modeling_")
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return []
    found = []
    for obj in vars(module).values():
        if (
            inspect.isclass(obj)
            and issubclass(obj, PreTrainedModel)
            and getattr(obj, "config_class", None) is type(config)
            and not obj.__name__.endswith("PreTrainedModel")
        ):
            found.append(obj)
    # Plain "<X>Model" classes first: they need the fewest extra inputs.
    found.sort(key=lambda c: (not c.__name__.endswith("Model"), c.__name__))
    return found


def candidate_classes(config, head: str | None = None) -> list[type]:
    model_type = config.model_type
    if head is not None:
        if head not in HEADS:
            raise SourceError(f"unknown head `{head}`; choose one of {', '.join(HEADS)}")
        cls = _class(_mapping(head).get(model_type, ""))
        if cls is None:
            raise SourceError(f"`{model_type}` has no {head} head in transformers")
        return [cls]
    is_decoder = bool(safe_getattr(config, "is_decoder", False))
    if model_type in _mapping("speech-seq2seq"):
        order = ["speech-seq2seq", "seq2seq-lm", "causal-lm"]
    elif model_type in _mapping("image-text-to-text") and sub_configs(config):
        order = ["image-text-to-text", "causal-lm"]
    elif model_type in _mapping("seq2seq-lm"):
        order = ["seq2seq-lm", "causal-lm"]
    elif sub_configs(config) and model_type not in _mapping("causal-lm"):
        order = ["base"]  # dual encoders (CLIP-like): the base model holds both towers
    elif model_type in _mapping("masked-lm") and not is_decoder:
        order = ["masked-lm", "causal-lm"]
    else:
        order = ["causal-lm", "masked-lm"]
    order += ["speech-seq2seq", "image-text-to-text", "image-classification", "ctc", "base"]
    classes: list[type] = []
    for h in order:
        cls = _class(_mapping(h).get(model_type, ""))
        if cls is not None and cls not in classes:
            classes.append(cls)
    for cls in concrete_classes(config):
        if cls not in classes:
            classes.append(cls)
    return classes


# -- dummy inputs -------------------------------------------------------------------


def _get(config, *names, default=None):
    """First attribute found on the config or its vision/audio sub-configs."""
    for cfg in [config] + sub_configs(config):
        for name in names:
            value = safe_getattr(cfg, name)
            if value is not None:
                return value
    return default


def _image_size(config) -> tuple[int, int]:
    size = _get(config, "image_size", "img_size", "input_size", default=224)
    if isinstance(size, dict):
        size = size.get("height", 224), size.get("width", 224)
    if isinstance(size, (list, tuple)):
        size = tuple(size[-2:]) if len(size) >= 2 else (size[0], size[0])
        return int(size[0]), int(size[1])
    return int(size), int(size)


def dummy_inputs(model: torch.nn.Module, config, opts: HFOptions) -> list[dict[str, Any]]:
    """Candidate input sets (meta tensors) for the model's forward, most complete first.

    Chosen by the forward's parameter names: text (``input_ids``), images
    (``pixel_values``), audio (``input_features`` / ``input_values``), plus
    ``decoder_input_ids`` for encoder-decoders.  A model that reads text and
    images gets both, then text alone (vision-language models whose image
    tokens cannot be placed on the meta device still trace their text path).
    """
    params = inspect.signature(model.forward).parameters
    b, s = opts.batch_size, opts.seq_len
    meta = dict(device="meta")
    main = getattr(model, "main_input_name", "input_ids")
    if main not in params:  # sub-models often inherit a main_input_name they do not take
        main = next((n for n in ("input_ids", "pixel_values", "input_features", "input_values") if n in params), main)
    base: dict[str, Any] = {}
    if "use_cache" in params:
        base["use_cache"] = False  # no KV cache object in the outputs
    if "decoder_input_ids" in params and getattr(config, "is_encoder_decoder", False):
        base["decoder_input_ids"] = torch.zeros(b, max(s // 2, 1), dtype=torch.long, **meta)
    text = {"input_ids": torch.zeros(b, s, dtype=torch.long, **meta)} if "input_ids" in params else {}
    image = {}
    if "pixel_values" in params:
        channels = _get(config, "num_channels", "in_channels", "in_chans", default=3)
        h, w = _image_size(config)
        image = {"pixel_values": torch.zeros(b, channels, h, w, **meta)}
    audio = {}
    if "input_features" in params and main == "input_features":
        audio = {"input_features": _audio_features(config, b)}
    elif "input_values" in params and main == "input_values":
        if _get(config, "max_length") and _get(config, "num_mel_bins"):  # spectrogram transformers
            audio = {"input_values": torch.zeros(b, _get(config, "max_length"), _get(config, "num_mel_bins"), **meta)}
        else:  # raw waveform: one second at 16 kHz
            audio = {"input_values": torch.zeros(b, 16000, **meta)}
    variants = []
    if audio:
        variants.append({**base, **audio})
        if text and _required(params["input_ids"]):
            variants[-1].update(text)
    elif main == "pixel_values" or (image and not text):
        variants.append({**base, **image})
        if text and _required(params["input_ids"]):
            variants[-1].update(text)
    elif text:
        if image:
            variants.append({**base, **text, **image})
        variants.append({**base, **text})
    return [v for v in variants if any(isinstance(t, torch.Tensor) for t in v.values())]


def _required(param: inspect.Parameter) -> bool:
    return param.default is inspect.Parameter.empty


def _audio_features(config, b: int) -> torch.Tensor:
    meta = dict(device="meta")
    mels = _get(config, "num_mel_bins", "feature_size", "n_mels")
    max_src = _get(config, "max_source_positions")
    if mels and max_src:  # Whisper-style: (B, n_mels, frames), 2 conv strides -> 2 * positions
        return torch.zeros(b, mels, 2 * max_src, **meta)
    per_channel = _get(config, "input_feat_per_channel")
    if per_channel:  # Speech2Text-style: (B, frames, features)
        return torch.zeros(b, 64, per_channel * _get(config, "input_channels", default=1), **meta)
    return torch.zeros(b, 64, mels or 80, **meta)


# -- import -------------------------------------------------------------------------


def build_meta_model(cls: type, config) -> torch.nn.Module:
    with torch.device("meta"):
        model = cls._from_config(config)
    return model.eval()


def traced_config(spec: str, overrides: dict[str, Any]):
    """The config of ``spec`` with ``overrides``, set up for tracing: no cache, and mixture-of-experts as batched
    matmuls (static shapes and plain ATen ops, where the default grouped_mm kernel is a custom op and "eager"
    loops over experts with data-dependent shapes)."""
    config = load_config(spec, overrides)
    for cfg in all_configs(config):
        if hasattr(cfg, "use_cache"):
            cfg.use_cache = False
    if "experts_implementation" not in overrides:
        config._experts_implementation = "batched_mm"
    return config


# Settings that change what the model computes but that a short trace on the meta device does not show (a
# window longer than the dummy text, the rope scaling folded into a constant), or shows only as ops; recorded
# in ``graph.meta["config"]`` so that descriptions can state them, marked as coming from the config.
CONFIG_ONLY = (
    "sliding_window", "use_sliding_window", "layer_types",  # Mistral's window; Qwen2's switch; Gemma-2/3 alternation
    "rope_parameters", "rope_scaling",  # transformers 5 calls the rope settings rope_parameters, 4 rope_scaling
    "attn_logit_softcapping", "final_logit_softcapping",  # Gemma-2: cap * tanh(x / cap)
    "num_experts_per_tok", "num_local_experts", "num_experts", "n_routed_experts",  # routing top-k, expert count
    "n_shared_experts", "shared_expert_intermediate_size",  # DeepSeek's / Qwen2-MoE's always-on experts
)


def config_only(config) -> dict[str, Any]:
    """The :data:`CONFIG_ONLY` settings the config (its text config, for a vision-language model) sets: not
    None and JSON-serialisable, so the graph's JSON keeps them."""
    import json

    try:
        text = config.get_text_config() or config
    except (NotImplementedError, ValueError, AttributeError):
        text = config
    out: dict[str, Any] = {}
    for key in CONFIG_ONLY:
        value = safe_getattr(text, key)
        if key == "rope_scaling" and "rope_parameters" in out:
            continue  # transformers 5 aliases one to the other
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError):
            continue
        if value is not None:
            out[key] = value
    return out


def import_hf(spec: str, opts: HFOptions | None = None):
    """Import a Hugging Face architecture; raises :class:`SourceError` when no head traces, or when the config is
    estimated over the work limit (:func:`check_budget`), before building anything."""
    opts = opts or HFOptions()
    config = traced_config(spec, opts.overrides)
    check_budget(spec, config, opts.max_ops)
    errors: list[str] = []
    for cls in candidate_classes(config, opts.head):
        try:
            model = build_meta_model(cls, config)
        except Exception as e:  # noqa: BLE001 - any failure means "try the next head"
            errors.append(f"{cls.__name__}: build failed: {describe(e)}")
            continue
        variants = dummy_inputs(model, config, opts)
        if not variants:
            errors.append(f"{cls.__name__}: no known inputs for main input `{model.main_input_name}`")
            continue
        graph = None
        for inputs in variants:
            try:
                graph = import_module(model, (), inputs, name=cls.__name__)
                break
            except MadError as e:  # untraceable with these inputs, or an op outside the vocabulary
                errors.append(f"{cls.__name__}({', '.join(k for k in inputs if k != 'use_cache')}): {e}")
        if graph is None:
            continue
        graph.meta.update(
            source=spec,
            model_type=config.model_type,
            model_class=cls.__name__,
            overrides={k: v for k, v in sorted(opts.overrides.items())},
            config=config_only(config),
        )
        return graph
    if not errors:
        raise SourceError(f"`{config.model_type}` has no model class in transformers")
    raise SourceError(f"could not trace `{config.model_type}`: " + " | ".join(errors[:3]))
