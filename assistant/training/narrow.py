"""Narrow variants of the training types: the graphs requests are usually made on, at several depths.

    python -m assistant.training.narrow [--types llama gpt2 ...] [--workers 2]

The architecture corpus (:mod:`assistant.training.corpora`) holds each type at its full size, so
its depth hardly varies (24 to 80 blocks) and its graph tokens are always pooled to 48.
Requests like "remove the last 2 layers" are answered differently on a 2-block graph,
and a small graph has a handful of graph tokens, not 48.  So each training-split type is
also imported with 1, 2 and 3 blocks (where the depth is one setting; otherwise at its
default), and the 2-block graph edited to multi-query attention, the other norm and
another activation by the edit engine; each graph's facts and graph tokens are kept.

Per type results go to ``~/.cache/mad/narrow`` (resumable); at the end the facts go to
``corpora/narrow.jsonl`` (one line per graph) and the graph tokens, float16, to
``corpora/narrow_tokens.safetensors`` under ``<type>@<variant>``.  Both are committed, so
``mad train llm`` needs neither the network nor this build.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time

from gnn.fileio import cache_dir as mad_cache
from gnn.fileio import staged, write_text
from gnn.training.workers import time_limit

ROOT = pathlib.Path(__file__).resolve().parents[2]
NARROW = ROOT / "corpora" / "narrow.jsonl"
NARROW_TOKENS = ROOT / "corpora" / "narrow_tokens.safetensors"
TIMEOUT = 240
DEPTHS = {"depth1": 1, "depth2": 2, "depth3": 3}


def cache_dir() -> pathlib.Path:
    return mad_cache("narrow")


def _edits(f) -> dict[str, list[dict]]:
    """Edit variants of the 2-block graph with facts ``f``: each changes one fact the outline shows."""
    out = {}
    if f.heads and (f.kv_heads or 0) > 1:
        out["mqa"] = [{"op": "set_kv_heads", "kv_heads": 1}]
    if f.norm in ("RMSNorm", "LayerNorm"):
        out["norm"] = [{"op": "replace_norm", "to": "layernorm" if f.norm == "RMSNorm" else "rmsnorm"}]
    if f.activation:
        out["act"] = [{"op": "replace_activation", "to": "gelu" if f.activation == "SiLU" else "silu"}]
    return out


def build_one(model_type: str) -> tuple[list[dict], dict]:
    """Rows (variant, facts) and graph tokens of one type's narrow graphs; a row with ``error`` for a failed one."""
    import torch

    from assistant.facts import facts
    from assistant.graph_tokens import graph_tokens
    from gnn.edits import apply_program
    from gnn.errors import describe as describe_error
    from gnn.importers.hf import HFOptions, import_hf
    from gnn.training.build import load_splits

    torch.set_num_threads(1)
    info = load_splits()["types"][model_type]
    depths = DEPTHS if info.get("layers_set") else {"default": None}
    rows, tokens = [], {}

    def keep(variant: str, graph) -> None:
        f = facts(graph)
        rows.append({"model_type": model_type, "variant": variant, "facts": f.to_dict()})
        t = graph_tokens(graph)
        if t is not None:
            tokens[variant] = t
        return f

    try:
        with time_limit(TIMEOUT):
            base = None
            for variant, n in depths.items():
                overrides = {"num_hidden_layers": n} if n else {}
                try:
                    graph = import_hf(f"hf:{model_type}", HFOptions(overrides=overrides, seq_len=8))
                    f = keep(variant, graph)
                except Exception as e:  # noqa: BLE001 - recorded: a depth the architecture does not take
                    rows.append({"model_type": model_type, "variant": variant, "error": describe_error(e)})
                    continue
                if n in (2, None):
                    base = (graph, f)
            if base is not None:
                for variant, program in _edits(base[1]).items():
                    try:
                        keep(variant, apply_program(base[0], {"edits": program}).graph)
                    except Exception as e:  # noqa: BLE001
                        rows.append({"model_type": model_type, "variant": variant, "error": describe_error(e)})
    except TimeoutError as e:
        rows.append({"model_type": model_type, "variant": "*", "error": str(e)})
    return rows, tokens


def _work(model_type: str) -> list[dict]:
    import torch

    out = cache_dir() / f"{model_type}.json"
    if out.exists():
        return json.loads(out.read_text())
    rows, tokens = build_one(model_type)
    torch.save({k: v.half() for k, v in tokens.items()}, cache_dir() / f"{model_type}.tokens.pt")
    write_text(out, json.dumps(rows))
    return rows


def build(types: list[str] | None = None, workers: int = 2, log=print) -> pathlib.Path:
    import torch
    from safetensors.torch import save_file

    from assistant.graph_tokens import pool_tokens
    from assistant.training.corpora import map_types
    from gnn.training.build import load_splits

    every = sorted(t for t, v in load_splits()["types"].items() if v["split"] == "train")
    wanted = types or every
    cache_dir().mkdir(parents=True, exist_ok=True)
    for i, rows in enumerate(map_types(_work, wanted, workers), 1):
        ok = [r["variant"] for r in rows if "facts" in r]
        log(f"[{i}/{len(wanted)}] {rows[0]['model_type'] if rows else '?'}: {', '.join(ok) or 'none'}")
    done = [t for t in sorted(set(every) | set(wanted)) if (cache_dir() / f"{t}.json").exists()]
    rows = [r for t in done for r in json.loads((cache_dir() / f"{t}.json").read_text())]
    write_text(NARROW, "".join(json.dumps(r) + "\n" for r in rows))
    tokens = {}
    for t in done:
        for variant, v in torch.load(cache_dir() / f"{t}.tokens.pt").items():
            tokens[f"{t}@{variant}"] = pool_tokens(v.float()).half().contiguous()
    with staged([NARROW_TOKENS]) as (tmp,):
        save_file(tokens, str(tmp))
    return NARROW


def load_narrow() -> list[dict]:
    """The narrow graphs' rows with their graph tokens (``tokens``: None where there are none)."""
    from safetensors.torch import load_file

    if not NARROW.exists():
        return []
    tokens = load_file(str(NARROW_TOKENS)) if NARROW_TOKENS.exists() else {}
    rows = [json.loads(line) for line in NARROW.read_text().splitlines() if line.strip()]
    rows = [r for r in rows if "facts" in r]
    for r in rows:
        r["tokens"] = tokens.get(f"{r['model_type']}@{r['variant']}")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--types", nargs="+", metavar="MODEL_TYPE", help="only these model types")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    out = build(args.types, args.workers)
    rows = out.read_text().splitlines()
    print(f"{sum('facts' in json.loads(x) for x in rows)} narrow graphs of "
          f"{len({json.loads(x)['model_type'] for x in rows})} types in {out} ({time.perf_counter() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
