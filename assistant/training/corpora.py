"""Build the architecture corpus: facts and a description of every model type, from its graph.

    python -m assistant.training.corpora [--types llama gpt2 ...] [--workers 2]

Each model type in ``gnn/training/splits.json`` is imported from its default config (the
real depth and width, on the meta device), its facts read off the graph
(:mod:`assistant.facts`) and described (:mod:`assistant.describe`); with the shipped
graph model, its composite embeddings (the graph tokens) are kept beside it in the
cache.  Per type results go to ``~/.cache/mad/corpora`` (resumable); the corpus,
``corpora/architectures.jsonl``, is written at the end (temporary file, then rename),
one line per type with its family and split, sorted by type, and so are the graph
tokens the language model trains with, ``corpora/graph_tokens.safetensors`` (each
type's, pooled to the prompt's at most 48 ``<graph>`` places, in float16).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time

from gnn.fileio import cache_dir as mad_cache
from gnn.fileio import staged, write_text
from gnn.training.workers import spawn_map, time_limit

ROOT = pathlib.Path(__file__).resolve().parents[2]
CORPUS = ROOT / "corpora" / "architectures.jsonl"
GRAPH_TOKENS = ROOT / "corpora" / "graph_tokens.safetensors"
TIMEOUT = 300


def cache_dir() -> pathlib.Path:
    return mad_cache("corpora")


def build_one(model_type: str) -> dict:
    """Facts, description and graph tokens of one model type (an ``error`` line if it cannot be imported)."""
    import torch

    from assistant.describe import describe
    from assistant.facts import facts
    from assistant.graph_tokens import graph_tokens
    from gnn.errors import describe as describe_error
    from gnn.importers.hf import HFOptions, import_hf
    from gnn.training.build import family_of, load_splits

    torch.set_num_threads(1)
    info = load_splits()["types"][model_type]
    row = {"model_type": model_type, "family": family_of(model_type), "split": info["split"]}
    try:
        with time_limit(TIMEOUT):
            graph = import_hf(f"hf:{model_type}", HFOptions(seq_len=16))
            f = facts(graph)
            row.update(facts=f.to_dict(), description=describe(f))
            tokens = graph_tokens(graph)
            if tokens is not None:
                torch.save(tokens, cache_dir() / f"{model_type}.tokens.pt")
    except Exception as e:  # noqa: BLE001 - recorded, not fatal: the corpus says which types it lacks
        row["error"] = describe_error(e)
    return row


def _work(model_type: str) -> dict:
    out = cache_dir() / f"{model_type}.json"
    if out.exists():
        return json.loads(out.read_text())
    start = time.perf_counter()
    row = build_one(model_type)
    row["seconds"] = round(time.perf_counter() - start, 1)
    write_text(out, json.dumps(row))
    return row


def map_types(work, wanted: list[str], workers: int):
    """``work(model_type)`` for each of ``wanted`` in ``workers`` spawned processes, yielded as each finishes
    (each process does at most 8, so memory a trace leaves behind is given back)."""
    from gnn.training.build import load_splits

    unknown = [t for t in wanted if t not in load_splits()["types"]]
    if unknown:
        raise SystemExit(f"not in gnn/training/splits.json: {', '.join(unknown)}")
    yield from spawn_map(work, wanted, workers, per_child=8)


def build(types: list[str] | None = None, workers: int = 2, log=print) -> pathlib.Path:
    from gnn.training.build import load_splits

    every = sorted(load_splits()["types"])
    wanted = types or every
    cache_dir().mkdir(parents=True, exist_ok=True)
    for i, row in enumerate(map_types(_work, wanted, workers), 1):
        log(f"[{i}/{len(wanted)}] {row['model_type']}: " + (f"error: {row['error']}" if "error" in row
                                                             else f"{row['facts']['layers']} blocks"))
    rows = [json.loads((cache_dir() / f"{t}.json").read_text()) for t in every if (cache_dir() / f"{t}.json").exists()]
    write_text(CORPUS, "".join(json.dumps({k: v for k, v in r.items() if k != "seconds"}) + "\n" for r in rows))
    write_graph_tokens([r["model_type"] for r in rows])
    return CORPUS


def write_graph_tokens(types: list[str]) -> None:
    """The cached graph tokens of ``types``, pooled as prompts use them, in one committed file."""
    import torch
    from safetensors.torch import save_file

    from assistant.graph_tokens import pool_tokens

    tokens = {t: pool_tokens(torch.load(path)).half().contiguous()
              for t in types if (path := cache_dir() / f"{t}.tokens.pt").exists()}
    with staged([GRAPH_TOKENS]) as (tmp,):
        save_file(tokens, str(tmp))


def load_graph_tokens() -> dict:
    """Model type -> its pooled graph tokens, from ``corpora/graph_tokens.safetensors`` (empty if absent)."""
    from safetensors.torch import load_file

    return load_file(str(GRAPH_TOKENS)) if GRAPH_TOKENS.exists() else {}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--types", nargs="+", metavar="MODEL_TYPE", help="only these model types")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    out = build(args.types, args.workers)
    lines = out.read_text().splitlines()
    print(f"{sum('error' not in json.loads(x) for x in lines)} of {len(lines)} architectures described in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
