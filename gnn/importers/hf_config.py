"""Hugging Face configs: ``hf:<type>``, ``hf:<org>/<name>`` and folders, with ``--set`` overrides.

Top-level overrides go through the config's constructor, so the settings it
derives follow them exactly as ``LlamaConfig(hidden_size=...)`` would; a
dotted key (``text_config.num_hidden_layers``) reaches a sub-config, and a bare
key the top-level config lacks is set on every sub-config that has it.
"""

from __future__ import annotations

import difflib
import json
import pathlib
from typing import Any

from gnn.errors import SourceError, describe

MAX_CONFIG_BYTES = 5_000_000


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
                raise SourceError(f"transformers could not build the default config of `{name}`: {describe(e)}") from None
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
            raise SourceError(f"`{cfg_file}` was rejected by transformers: {describe(e)}") from None
    return apply_overrides(config, overrides or {}, make)


# Settings that are valid on every config although they are not in its to_dict().
_ALWAYS_SETTABLE = {"use_cache", "dtype"}
# Kernel choices, stored privately on the config (``config._attn_implementation``).
_IMPLEMENTATIONS = ("attn_implementation", "experts_implementation")


def sub_configs(config) -> list:
    subs = []
    for key in getattr(config, "sub_configs", {}) or {}:
        sub = safe_getattr(config, key)
        if sub is not None and hasattr(sub, "to_dict"):
            subs.append(sub)
    return subs


def safe_getattr(obj, name: str, default=None):
    """getattr that survives configs raising non-AttributeErrors for per-layer settings."""
    try:
        return getattr(obj, name, default)
    except Exception:  # noqa: BLE001 - e.g. AmbiguousGlobalPerLayerAttributeError
        return default


def all_configs(config) -> list:
    """The config and its sub-configs at every depth (a VLM inside a retrieval model, ...)."""
    found, todo = [], [config]
    while todo:
        cfg = todo.pop()
        if any(cfg is f for f in found):
            continue
        found.append(cfg)
        todo += sub_configs(cfg)
    return found


def _has_key(config, key: str) -> bool:
    return key in config.to_dict() or key in getattr(config, "attribute_map", {}) or safe_getattr(config, key) is not None


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
                raise SourceError(f"--set rejected by {type(config).__name__}: {describe(e)}") from None
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
    old = safe_getattr(cfg, "num_hidden_layers")
    if not isinstance(old, int) or not isinstance(depth, int) or old <= 0 or old == depth or depth < 0:
        return {}
    return {
        k: [v[i % old] for i in range(depth)]
        for k, v in cfg.to_dict().items()
        if isinstance(v, list) and len(v) == old
    }


def _sub_has(config, sub_key: str, attr: str) -> bool:
    sub = safe_getattr(config, sub_key)
    return sub is not None and hasattr(sub, "to_dict") and _has_key(sub, attr)


def _set_keeping_derived(cfg, attr: str, value, explicit: set[str]) -> None:
    """Set an attribute; keep ``head_dim`` derived from width and heads as constructors do."""
    hidden, heads, head_dim = (safe_getattr(cfg, a) for a in ("hidden_size", "num_attention_heads", "head_dim"))
    derived = isinstance(hidden, int) and isinstance(heads, int) and heads and head_dim == hidden // heads
    setattr(cfg, attr, value)
    if derived and attr in ("hidden_size", "num_attention_heads") and "head_dim" not in explicit:
        cfg.head_dim = cfg.hidden_size // cfg.num_attention_heads
