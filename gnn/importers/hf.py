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

import difflib
import importlib
import inspect
import json
import pathlib
from dataclasses import dataclass, field
from typing import Any

import torch

from gnn.errors import MadError, SourceError, UnsupportedOpError
from gnn.importers.exported import from_exported_program, module_paths, tied_parameters

MAX_CONFIG_BYTES = 5_000_000

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


# -- config ---------------------------------------------------------------------


def model_types() -> list[str]:
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

    return sorted(CONFIG_MAPPING_NAMES)


def load_config(spec: str, overrides: dict[str, Any] | None = None):
    """Resolve ``hf:<type>``, ``hf:<org/name>`` or a folder to a config with overrides applied.

    Top-level overrides are passed to the config's constructor, so the settings
    it derives (``head_dim`` from ``hidden_size``, T5's decoder depth from
    ``num_layers``) follow them, exactly as ``LlamaConfig(hidden_size=...)`` would.
    """
    from transformers import AutoConfig

    if spec.startswith("hf:"):
        name = spec[3:]
        if not name:
            raise SourceError("empty model name in `hf:`; use hf:<model_type> (e.g. hf:llama) or hf:<org>/<name>")
        if "/" in name:
            try:
                config = AutoConfig.from_pretrained(name, local_files_only=True)
            except OSError:
                raise SourceError(
                    f"`{name}` is not in the local Hugging Face cache and downloads are off; "
                    "put its config.json in a folder and pass the folder"
                ) from None
            raw = config.to_dict()
            make = lambda **kw: type(config).from_dict({**raw, **kw})  # noqa: E731
        else:
            types = model_types()
            if name not in types:
                close = difflib.get_close_matches(name, types, n=5, cutoff=0.6)
                hint = f"; did you mean {', '.join(close)}?" if close else "; `mad types` lists them"
                raise SourceError(f"unknown model type `{name}`{hint}")
            make = lambda **kw: AutoConfig.for_model(name, **kw)  # noqa: E731
            try:
                config = make()
            except Exception as e:  # noqa: BLE001 - a broken default config in transformers
                raise SourceError(f"transformers could not build the default config of `{name}`: {_first_line(e)}") from None
    else:
        folder = pathlib.Path(spec)
        cfg_file = folder / "config.json"
        if not cfg_file.is_file():
            raise SourceError(f"no config.json in `{spec}`; a config folder must hold a Hugging Face config.json")
        if cfg_file.stat().st_size > MAX_CONFIG_BYTES:
            raise SourceError(f"`{cfg_file}` is over {MAX_CONFIG_BYTES // 1_000_000} MB; a config.json is a few KB")
        try:
            raw = json.loads(cfg_file.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise SourceError(f"`{cfg_file}` is not valid JSON ({e}); expected a Hugging Face config.json") from None
        if not isinstance(raw, dict) or "model_type" not in raw:
            raise SourceError(f"`{cfg_file}` has no `model_type`; expected a Hugging Face config.json")
        if raw["model_type"] not in model_types():
            raise SourceError(f"`{cfg_file}` names unknown model_type `{raw['model_type']}`")
        cls = type(AutoConfig.for_model(raw["model_type"]))
        make = lambda **kw: cls.from_dict({**raw, **kw})  # noqa: E731
        try:
            config = make()
        except Exception as e:  # noqa: BLE001
            raise SourceError(f"`{cfg_file}` was rejected by transformers: {_first_line(e)}") from None
    return apply_overrides(config, overrides or {}, make)


# Settings that are valid on every config although they are not in its to_dict().
_ALWAYS_SETTABLE = {"use_cache", "dtype"}
# Kernel choices, stored privately on the config (``config._attn_implementation``).
_IMPLEMENTATIONS = ("attn_implementation", "experts_implementation")


def _sub_configs(config) -> list:
    subs = []
    for key in getattr(config, "sub_configs", {}) or {}:
        sub = _safe_getattr(config, key)
        if sub is not None and hasattr(sub, "to_dict"):
            subs.append(sub)
    return subs


def _safe_getattr(obj, name: str, default=None):
    """getattr that survives configs raising non-AttributeErrors for per-layer settings."""
    try:
        return getattr(obj, name, default)
    except Exception:  # noqa: BLE001 - e.g. AmbiguousGlobalPerLayerAttributeError
        return default


def _all_configs(config) -> list:
    """The config and its sub-configs at every depth (a VLM inside a retrieval model, ...)."""
    found, todo = [], [config]
    while todo:
        cfg = todo.pop()
        if any(cfg is f for f in found):
            continue
        found.append(cfg)
        todo += _sub_configs(cfg)
    return found


def _has_key(config, key: str) -> bool:
    return key in config.to_dict() or key in getattr(config, "attribute_map", {}) or _safe_getattr(config, key) is not None


def _unknown(config, key: str, attr: str) -> SourceError:
    close = difflib.get_close_matches(attr, sorted(config.to_dict()), n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return SourceError(f"--set {key}: {type(config).__name__} has no setting `{attr}`{hint}")


def apply_overrides(config, overrides: dict[str, Any], make=None):
    """Return the config with ``key=value`` overrides; ``text_config.key`` reaches a sub-config.

    A bare key the top-level config does not have is set on every sub-config
    that has it, so ``num_hidden_layers=2`` shrinks both towers of a
    vision-language model.  ``make(**kwargs)`` rebuilds the top-level config
    with constructor arguments; without it, values are set as attributes.
    """
    top: dict[str, Any] = {}
    nested: list[tuple[Any, str, Any]] = []  # (sub-config path, attr, value), applied after a rebuild
    impl: dict[str, Any] = {}
    for key, value in overrides.items():
        if key in _IMPLEMENTATIONS:
            impl[key] = value
        elif "." in key:
            head, _, attr = key.rpartition(".")
            target = config
            for part in head.split("."):
                target = getattr(target, part, None)
                if target is None or not hasattr(target, "to_dict"):
                    raise SourceError(f"--set {key}: `{part}` is not a sub-config of {type(config).__name__}")
            if not _has_key(target, attr):
                raise _unknown(target, key, attr)
            nested.append((head, attr, value))
        else:
            in_top = _has_key(config, key) or key in _ALWAYS_SETTABLE
            subs = [k for k in (getattr(config, "sub_configs", {}) or {}) if _sub_has(config, k, key)]
            if not in_top and not subs:
                raise _unknown(config, key, key)
            if in_top:
                top[key] = value
            nested += [(k, key, value) for k in subs]
    if "num_hidden_layers" in top:
        for k, v in _per_layer_settings(config, top["num_hidden_layers"]).items():
            top.setdefault(k, v)
    if top:
        if make is not None:
            try:
                config = make(**top)
            except Exception as e:  # noqa: BLE001 - the config's own consistency checks
                raise SourceError(f"--set rejected by {type(config).__name__}: {_first_line(e)}") from None
        else:
            for k, v in top.items():
                setattr(config, k, v)
    for head, attr, value in nested:
        target = config
        for part in head.split("."):
            target = getattr(target, part)
        explicit = {a for h, a, _ in nested if h == head}
        if attr == "num_hidden_layers":
            for k, v in _per_layer_settings(target, value).items():
                if k not in explicit:
                    setattr(target, k, v)
        _set_keeping_derived(target, attr, value, explicit=explicit)
    for key, value in impl.items():
        setattr(config, f"_{key}", value)
    return config


def _per_layer_settings(cfg, depth) -> dict[str, list]:
    """Per-layer settings (lists as long as the current depth, like ``layer_types``) fitted to a new depth.

    Shortening keeps the first layers; lengthening repeats the pattern, so a
    2-layer Gemma keeps its sliding/full attention alternation and stays valid.
    """
    old = _safe_getattr(cfg, "num_hidden_layers")
    if not isinstance(old, int) or not isinstance(depth, int) or old <= 0 or old == depth or depth < 0:
        return {}
    return {
        k: [v[i % old] for i in range(depth)]
        for k, v in cfg.to_dict().items()
        if isinstance(v, list) and len(v) == old
    }


def _sub_has(config, sub_key: str, attr: str) -> bool:
    sub = _safe_getattr(config, sub_key)
    return sub is not None and hasattr(sub, "to_dict") and _has_key(sub, attr)


def _set_keeping_derived(cfg, attr: str, value, explicit: set[str]) -> None:
    """Set an attribute; keep ``head_dim`` derived from width and heads as constructors do."""
    hidden, heads, head_dim = (_safe_getattr(cfg, a) for a in ("hidden_size", "num_attention_heads", "head_dim"))
    derived = isinstance(hidden, int) and isinstance(heads, int) and heads and head_dim == hidden // heads
    setattr(cfg, attr, value)
    if derived and attr in ("hidden_size", "num_attention_heads") and "head_dim" not in explicit:
        cfg.head_dim = cfg.hidden_size // cfg.num_attention_heads


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
    is_decoder = bool(_safe_getattr(config, "is_decoder", False))
    if model_type in _mapping("speech-seq2seq"):
        order = ["speech-seq2seq", "seq2seq-lm", "causal-lm"]
    elif model_type in _mapping("image-text-to-text") and _sub_configs(config):
        order = ["image-text-to-text", "causal-lm"]
    elif model_type in _mapping("seq2seq-lm"):
        order = ["seq2seq-lm", "causal-lm"]
    elif _sub_configs(config) and model_type not in _mapping("causal-lm"):
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
    for cfg in [config] + _sub_configs(config):
        for name in names:
            value = _safe_getattr(cfg, name)
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


def import_hf(spec: str, opts: HFOptions | None = None):
    """Import a Hugging Face architecture; raises :class:`SourceError` when no head traces."""
    opts = opts or HFOptions()
    config = load_config(spec, opts.overrides)
    for cfg in _all_configs(config):
        if hasattr(cfg, "use_cache"):
            cfg.use_cache = False
    if "experts_implementation" not in opts.overrides:
        # Mixture-of-experts as batched matmuls: static shapes and plain ATen ops,
        # where the default grouped_mm kernel is a custom op and "eager" loops over
        # experts with data-dependent shapes.
        config._experts_implementation = "batched_mm"
    errors: list[str] = []
    for cls in candidate_classes(config, opts.head):
        try:
            model = build_meta_model(cls, config)
        except Exception as e:  # noqa: BLE001 - any failure means "try the next head"
            errors.append(f"{cls.__name__}: build failed: {_first_line(e)}")
            continue
        variants = dummy_inputs(model, config, opts)
        if not variants:
            errors.append(f"{cls.__name__}: no known inputs for main input `{model.main_input_name}`")
            continue
        graph = None
        for inputs in variants:
            try:
                # Tensors the forward creates without a device land on meta too.
                with torch.no_grad(), torch.device("meta"):
                    ep = torch.export.export(model, (), inputs, strict=False)
                graph = from_exported_program(
                    ep, name=cls.__name__, modules=module_paths(model), tied=tied_parameters(model)
                )
                break
            except UnsupportedOpError as e:
                errors.append(f"{cls.__name__}: {e}")
            except Exception as e:  # noqa: BLE001
                errors.append(f"{cls.__name__}({', '.join(k for k in inputs if k != 'use_cache')}): export failed: {_first_line(e)}")
        if graph is None:
            continue
        expected = sum(p.numel() for p in model.parameters())
        graph.meta.update(
            source=spec,
            model_type=config.model_type,
            model_class=cls.__name__,
            overrides={k: v for k, v in sorted(opts.overrides.items())},
            example_inputs={k: list(v.shape) for k, v in inputs.items() if isinstance(v, torch.Tensor)},
            module_parameters=expected,
        )
        return graph
    if not errors:
        raise SourceError(f"`{config.model_type}` has no model class in transformers")
    raise SourceError(f"could not trace `{config.model_type}`: " + " | ".join(errors[:3]))


def _first_line(e: BaseException) -> str:
    """The gist of an exception in one line (the next line too when the first only introduces it)."""
    lines = [line.strip() for line in str(e).strip().splitlines() if line.strip()]
    text = lines[0] if lines else ""
    if text.endswith(":") and len(lines) > 1:
        text = f"{text} {lines[1]}"
    return f"{type(e).__name__}: {text}"[:300]
