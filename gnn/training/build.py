"""Build the MAD dataset of architecture graphs into a local cache.

    python -m gnn.training.build [--workers 2] [--families llama gpt2 ...] [--no-onnx] [--cache DIR]

The recipe, per model type listed in ``gnn/training/splits.json`` (every type the graph
core imports in full, split by family so held-out families never reach training):

* config variants, each a fresh import: depth 2 (the base) and depth 3 where the depth
  is one setting;
* edit variants of the base and depth-3 graphs, made by the edit engine: grouped-query
  and multi-query attention, another activation, the other norm, LoRA with peft's
  defaults, bottleneck adapters, LoRA with everything else frozen;
* the base graph exported by torch.onnx and read back with every name and metadata
  stripped (:mod:`gnn.training.scramble`); its node labels come from the named export.

Each graph is stored tokenized (:mod:`gnn.nn.tokens`) with its node roles
(:mod:`gnn.roles.labels`), one shard per model type (``<cache>/<type>.pt``); shards
already built are kept, so an interrupted build resumes.  Default cache:
``$MAD_CACHE/dataset`` or ``~/.cache/mad/dataset``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import pathlib
import re
import sys
import tempfile
import time
import warnings

from gnn.training.workers import spawn_map, time_limit

HERE = pathlib.Path(__file__).parent
SPLITS = HERE / "splits.json"
VERSION = 1
TIMEOUT_S = 300

EDIT_VARIANTS = {
    "mqa": [{"op": "set_kv_heads", "kv_heads": 1}],
    "gqa": "half",  # kv heads = half the query heads, where that divides
    "act": [{"op": "replace_activation", "to": "gelu_tanh"}],
    "act_silu": [{"op": "replace_activation", "to": "silu"}],
    "norm": [{"op": "replace_norm", "to": "rmsnorm"}],
    "norm_ln": [{"op": "replace_norm", "to": "layernorm"}],
    "lora": [{"op": "add_lora"}],
    "adapter": [{"op": "insert_adapter", "bottleneck": 16}],
    "lora_frozen": [{"op": "freeze"}, {"op": "add_lora", "target": {"roles": ["attn.q", "attn.k", "attn.v", "attn.o"]}}],
}
DEEP_EDITS = ("mqa", "act", "lora")  # also applied to the depth-3 graph


def cache_dir(arg: str | None = None) -> pathlib.Path:
    if arg:
        return pathlib.Path(arg)
    from gnn.fileio import cache_dir as mad_cache

    return mad_cache("dataset")


def family_of(model_type: str) -> str:
    """The family a model type belongs to for the split: its leading letters (``qwen2_moe`` -> ``qwen``)."""
    return re.match(r"[a-z]+", model_type.lower()).group() if re.match(r"[a-z]+", model_type.lower()) else model_type


def load_splits() -> dict:
    return json.loads(SPLITS.read_text())


# -- one model type -------------------------------------------------------------------------


def record(graph, variant: str, model_type: str, kind: str, source: str, roles=None) -> dict:
    import torch

    from gnn.nn.tokens import tokenize
    from gnn.roles.labels import node_roles
    from gnn.vocab import NODE_ROLES

    tokens = tokenize(graph)
    labels = roles if roles is not None else node_roles(graph)
    return {
        "model_type": model_type, "family": family_of(model_type), "kind": kind, "variant": variant,
        "source": source, "params": graph.num_parameters, "op": tokens.op, "feats": tokens.feats,
        "pe": tokens.pe, "edge_index": tokens.edge_index, "composite": tokens.composite,
        "hier_depth": tokens.hier_depth, "ops": [n.op for n in graph.nodes],
        "role": torch.tensor([NODE_ROLES.index(r) for r in labels], dtype=torch.long),
    }


def _heads(graph) -> int | None:
    from gnn.analysis.attention import attention_heads
    from gnn.roles import label

    found = attention_heads(graph, label(graph, "rules"))
    return found[0] if found else None  # None: no grouped variant


def build_type(model_type: str, info: dict, onnx: bool = True) -> tuple[list[dict], list[str]]:
    """Every graph of one model type, and a line per variant that could not be made."""
    import torch

    from gnn.edits import apply_program
    from gnn.errors import describe
    from gnn.importers.hf import HFOptions, import_hf
    from gnn.training.scramble import scramble

    torch.set_num_threads(1)
    kind, records, skipped = info["kind"], [], []
    base = {"num_hidden_layers": 2} if info.get("layers_set") else {}
    configs = {"base": base}
    if base:
        configs["depth3"] = {"num_hidden_layers": 3}
    graphs = {}
    for name, overrides in configs.items():
        try:
            graphs[name] = import_hf(f"hf:{model_type}", HFOptions(overrides=overrides, seq_len=8))
            records.append(record(graphs[name], name, model_type, kind, "hf"))
        except Exception as e:  # noqa: BLE001 - a variant the architecture does not take
            skipped.append(f"{name}: {describe(e)}")
    if "base" not in graphs:
        return records, skipped
    for start in ("base", "depth3"):
        if start not in graphs:
            continue
        heads = _heads(graphs[start])
        for name, program in EDIT_VARIANTS.items():
            if start == "depth3" and name not in DEEP_EDITS:
                continue
            if program == "half":
                if not heads or heads % 2 or heads < 4:
                    continue
                program = [{"op": "set_kv_heads", "kv_heads": heads // 2}]
            try:
                edited = apply_program(graphs[start], program).graph
                records.append(record(edited, f"{start}+{name}", model_type, kind, "hf"))
            except Exception as e:  # noqa: BLE001
                skipped.append(f"{start}+{name}: {describe(e)}")
    if onnx:
        errors = []
        for overrides in _small(model_type, base):  # exported with weights: keep the file small
            try:
                small = import_hf(f"hf:{model_type}", HFOptions(overrides=overrides, seq_len=8))
                records.append(_scrambled(small, model_type, kind, scramble))
                break
            except Exception as e:  # noqa: BLE001
                errors.append(describe(e))
        else:
            skipped.append(f"onnx: {errors[-1] if errors else 'no config'}")
    return records, skipped


def _small(model_type: str, base: dict) -> list[dict]:
    """Overrides that shrink the base config's widths and vocabulary (tried in order) for the ONNX export."""
    from gnn.importers.hf import load_config
    from gnn.importers.hf_config import safe_getattr

    out = []
    try:
        config = load_config(f"hf:{model_type}", base)
        text = config.get_text_config() if hasattr(config, "get_text_config") else config
        hidden, vocab = safe_getattr(text, "hidden_size"), safe_getattr(text, "vocab_size")
        smaller = {"vocab_size": 512} if isinstance(vocab, int) and vocab > 512 else {}
        if isinstance(hidden, int) and hidden >= 1024 and hidden % 4 == 0:
            heads = safe_getattr(text, "num_attention_heads") or 1
            if isinstance(heads, int) and (hidden // 4) % heads == 0 \
                    and safe_getattr(text, "head_dim") in (None, hidden // heads):
                width = {"hidden_size": hidden // 4}
                if isinstance(safe_getattr(text, "intermediate_size"), int):
                    width["intermediate_size"] = hidden // 2
                out.append({**base, **smaller, **width})
        if smaller:
            out.append({**base, **smaller})
    except Exception:  # noqa: BLE001 - configs that cannot be read plainly get the base only
        pass
    out.append(base)
    return out


def _scrambled(graph, model_type: str, kind: str, scramble) -> dict:
    import onnx

    from gnn.exporters.onnx import save_onnx
    from gnn.importers.onnx import import_onnx
    from gnn.roles.labels import node_roles

    with tempfile.TemporaryDirectory() as tmp:
        named_path = save_onnx(graph, pathlib.Path(tmp) / "named.onnx")
        named = import_onnx(named_path)
        labels = node_roles(named)
        blank = pathlib.Path(tmp) / "blank.onnx"
        onnx.save(scramble(onnx.load(named_path)), blank)
        stripped = import_onnx(blank)
    if [n.op for n in stripped.nodes] != [n.op for n in named.nodes]:
        raise ValueError("the scrambled model imports to other ops than the named one")
    return record(stripped, "base+onnx", model_type, kind, "onnx-stripped", roles=labels)


def _work(args) -> tuple[str, int, list[str], float]:
    model_type, info, out, onnx = args
    warnings.filterwarnings("ignore")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    import torch

    start = time.perf_counter()
    try:
        with time_limit(TIMEOUT_S):
            records, skipped = build_type(model_type, info, onnx)
    except TimeoutError:
        records, skipped = [], [f"timed out after {TIMEOUT_S} s"]
    except Exception as e:  # noqa: BLE001 - one model type's failure must not stop the build
        from gnn.errors import describe

        records, skipped = [], [f"failed: {describe(e)}"]
    path = pathlib.Path(out) / f"{model_type}.pt"
    tmp = path.with_suffix(".tmp")
    torch.save({"version": VERSION, "records": records, "skipped": skipped}, tmp)
    os.replace(tmp, path)
    return model_type, len(records), skipped, time.perf_counter() - start


# -- the whole dataset ----------------------------------------------------------------------


def build(types: list[str] | None = None, workers: int = 2, onnx: bool = True, cache: str | None = None,
          log=print) -> pathlib.Path:
    splits = load_splits()
    info = splits["types"]
    wanted = types or sorted(info)
    unknown = [t for t in wanted if t not in info]
    if unknown:
        raise SystemExit(f"not in gnn/training/splits.json: {', '.join(unknown)}")
    out = cache_dir(cache)
    out.mkdir(parents=True, exist_ok=True)
    # a fixed shuffle: an interrupted build still spans the families and every split
    todo = sorted((t for t in wanted if not (out / f"{t}.pt").exists()),
                  key=lambda t: hashlib.sha256(t.encode()).hexdigest())
    log(f"{len(wanted) - len(todo)} of {len(wanted)} model types already built in {out}")
    jobs = [(t, info[t], str(out), onnx) for t in todo]
    if jobs:
        for i, (t, n, skipped, secs) in enumerate(spawn_map(_work, jobs, workers, per_child=16), 1):
            log(f"[{i}/{len(jobs)}] {t}: {n} graphs in {secs:.0f}s" + (f"; skipped {len(skipped)}" if skipped else ""))
    return out


def load(cache: str | None = None, types: list[str] | None = None) -> list[dict]:
    """Every stored graph record (of ``types``, default all built)."""
    import torch

    out = cache_dir(cache)
    paths = [out / f"{t}.pt" for t in types] if types else sorted(out.glob("*.pt"))
    records = []
    for path in paths:
        if path.exists():
            records.extend(torch.load(path, weights_only=False)["records"])
    return records


def make_splits(coverage: pathlib.Path, val: float = 0.1, test: float = 0.15) -> dict:
    """The committed split: every model type imported in full, families hashed into train/val/test."""
    from gnn.vocab import kind_of

    rows = json.loads(coverage.read_text())
    types = {}
    for r in rows:
        if r["status"] != "ok" or r.get("unused_params", 0) > 0.1 * max(r.get("params", 0), 1):
            continue
        types[r["model_type"]] = {"kind": kind_of(r["inputs"], r["model_class"]), "layers_set": r["layers_set"],
                                  "family": family_of(r["model_type"])}
    families = sorted({v["family"] for v in types.values()})
    split = {}
    for fam in families:
        x = int(hashlib.sha256(fam.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
        split[fam] = "test" if x < test else "val" if x < test + val else "train"
    for v in types.values():
        v["split"] = split[v["family"]]
    return {
        "version": VERSION,
        "how": "families = leading letters of the model type; each family hashed (sha256) into a split",
        "families": {s: sorted(f for f in families if split[f] == s) for s in ("train", "val", "test")},
        "types": dict(sorted(types.items())),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", nargs="+", metavar="MODEL_TYPE", help="only these model types")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-onnx", action="store_true", help="skip the stripped ONNX variants")
    parser.add_argument("--cache", help="where shards go (default: $MAD_CACHE/dataset or ~/.cache/mad/dataset)")
    parser.add_argument("--make-splits", metavar="COVERAGE_JSON", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.make_splits:
        SPLITS.write_text(json.dumps(make_splits(pathlib.Path(args.make_splits)), indent=1) + "\n")
        return 0
    out = build(args.families, args.workers, not args.no_onnx, args.cache)
    records = load(args.cache or None, args.families)
    print(f"{len(records)} graphs in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
