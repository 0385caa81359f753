"""Assistant latency: request -> validated graph with the default model on this CPU, and model load.

    python -m bench.llm

Each measurement runs in a fresh process:

* load: the assistant as ``mad edit --request`` builds it (SmolLM2-135M-Instruct, the shipped
  adapter and projector), from the converted copy cached after the first run; beside it, in the
  same run, the alternative of reading the GGUF file every time (an empty ``MAD_CACHE``: what the
  first run does);
* requests: held-out phrasings on the Llama-3-8B graph (32 blocks), each timed from the request
  to the validated graph (facts, graph tokens, constrained generation, the edit engine with full
  re-validation; a question or refusal ends at the answer).  The first request also builds the
  constrained decoder's token table; it is reported on its own and left out of the percentiles.

Results go to ``bench/results/llm.json`` and the "Assistant" section of ``docs/benchmarks.md``.
"""

from __future__ import annotations

import json
import pathlib
import random
import statistics
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "llm.json"
REQUESTS = 16


def worker_load() -> dict:
    import torch

    from assistant.interpret import Assistant

    start = time.perf_counter()
    a = Assistant(log=lambda *_: None)
    return {"load_s": round(time.perf_counter() - start, 2), "adapter": _where(a.adapter),
            "threads": torch.get_num_threads()}


def _where(adapter) -> str | None:
    if adapter is None:
        return None
    path = pathlib.Path(adapter).resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def worker_requests(n: int) -> dict:
    import torch

    from assistant.facts import facts
    from assistant.interpret import Assistant
    from assistant.training.instructions import examples
    from bench.run import LLAMA3_8B
    from gnn.importers.hf import HFOptions, import_hf

    graph = import_hf("hf:llama", HFOptions(overrides=LLAMA3_8B))
    f = facts(graph)
    held = examples(f, random.Random(0), held_out=True)
    random.Random(0).shuffle(held)
    a = Assistant(log=lambda *_: None)
    rows = []
    for e in held[:n + 1]:
        out = a.interpret(graph, e.request)
        rows.append({"request": e.request, "action": out.action, "reference": e.answer["action"],
                     "tries": len(out.answers), "seconds": round(out.seconds, 2)})
    times = sorted(r["seconds"] for r in rows[1:])
    return {"graph": f"Llama-3-8B shape, {len(graph.nodes)} ops", "first_s": rows[0]["seconds"],
            "p50_s": round(statistics.median(times), 2),
            "p95_s": times[min(len(times) - 1, int(0.95 * len(times)))], "rows": rows,
            "adapter": _where(a.adapter), "threads": torch.get_num_threads()}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] == "--worker":
        sys.path.insert(0, str(ROOT))
        print(json.dumps(worker_load() if args[1] == "load" else worker_requests(int(args[2]))))
        return 0
    from bench.run import spawn

    res = {"load": spawn("bench.llm", "load")}
    with tempfile.TemporaryDirectory() as empty:
        res["load_gguf"] = spawn("bench.llm", "load", env={"MAD_CACHE": empty})
    res["requests"] = spawn("bench.llm", "requests", str(REQUESTS), timeout=3600)
    print(json.dumps({k: {a: b for a, b in v.items() if a != "rows"} for k, v in res.items()}, indent=1))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(res, indent=1) + "\n")
    from bench.run import RESULTS as MAIN
    from bench.run import write_doc

    write_doc(json.loads(MAIN.read_text()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
