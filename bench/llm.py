"""Assistant latency: request -> validated graph with the default model on this CPU, and model load.

    python -m bench.llm

Each measurement runs in a fresh process:

* load: the assistant as ``mad edit --request`` builds it (SmolLM2-135M-Instruct, the shipped
  adapter and projector), from the converted copy cached after the first run; beside it, in the
  same run, the alternative of reading the GGUF file every time (an empty ``MAD_CACHE``: what the
  first run does);
* requests (warm, as in the app): requests of the development set ``corpora/dev_2.json`` (those
  written for Llama) on the Llama-3-8B graph (32 blocks), one process, each timed from the request
  to the validated graph (reading, graph tokens, constrained generation where the words leave a
  field open, the edit engine with full re-validation; a question or refusal ends at the answer).
  The first request also builds the constrained decoder's token table; it is reported on its own
  and left out of the percentiles;
* cold (as ``mad edit --request`` runs): each of the first requests in a fresh process, timed the
  same way, beside the whole command's time (imports, the 8B graph's import, the model's load).

Results go to ``bench/results/llm.json`` and the "Assistant" section of ``docs/benchmarks.md``.
"""

from __future__ import annotations

import json
import pathlib
import statistics
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "llm.json"
REQUESTS = 16
COLD = 6


def dev_requests() -> list[str]:
    data = json.loads((ROOT / "corpora" / "dev_2.json").read_text())
    return [r["request"] for r in data["requests"] if r["model"] == "llama"]


def worker_cold(i: int) -> dict:
    start = time.perf_counter()
    from assistant.interpret import Assistant
    from bench.run import LLAMA3_8B
    from gnn.importers.hf import HFOptions, import_hf

    t = time.perf_counter()
    graph = import_hf("hf:llama", HFOptions(overrides=LLAMA3_8B))
    import_s = time.perf_counter() - t
    t = time.perf_counter()
    a = Assistant(log=lambda *_: None)
    load_s = time.perf_counter() - t
    request = dev_requests()[i]
    out = a.interpret(graph, request)
    return {"request": request, "action": out.action, "request_s": round(out.seconds, 2),
            "import_s": round(import_s, 2), "load_s": round(load_s, 2),
            "total_s": round(time.perf_counter() - start, 2)}


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

    from assistant.interpret import Assistant
    from bench.run import LLAMA3_8B
    from gnn.importers.hf import HFOptions, import_hf

    graph = import_hf("hf:llama", HFOptions(overrides=LLAMA3_8B))
    a = Assistant(log=lambda *_: None)
    rows = []
    for request in dev_requests()[:n + 1]:
        out = a.interpret(graph, request)
        rows.append({"request": request, "action": out.action, "tries": len(out.answers),
                     "seconds": round(out.seconds, 2)})
    times = sorted(r["seconds"] for r in rows[1:])
    return {"graph": f"Llama-3-8B shape, {len(graph.nodes)} ops", "first_s": rows[0]["seconds"],
            "p50_s": round(statistics.median(times), 2),
            "p95_s": times[min(len(times) - 1, int(0.95 * len(times)))], "rows": rows,
            "adapter": _where(a.adapter), "threads": torch.get_num_threads()}


def _quantile(xs: list[float], q: str) -> float:
    return round(statistics.median(xs), 2) if q == "p50" else xs[min(len(xs) - 1, int(0.95 * len(xs)))]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] == "--worker":
        sys.path.insert(0, str(ROOT))
        work = {"load": worker_load, "requests": lambda: worker_requests(int(args[2])),
                "cold": lambda: worker_cold(int(args[2]))}[args[1]]
        print(json.dumps(work()))
        return 0
    from bench.run import spawn

    res = {"load": spawn("bench.llm", "load")}
    with tempfile.TemporaryDirectory() as empty:
        res["load_gguf"] = spawn("bench.llm", "load", env={"MAD_CACHE": empty})
    res["requests"] = spawn("bench.llm", "requests", str(REQUESTS), timeout=3600)
    rows = [spawn("bench.llm", "cold", str(i), timeout=600) for i in range(COLD)]
    res["cold"] = {"rows": rows, **({"error": next(r["error"] for r in rows if "error" in r)}
                                    if any("error" in r for r in rows) else {
        f"{key}_{q}": _quantile(sorted(r[key] for r in rows), q) for key in ("request_s", "total_s")
        for q in ("p50", "p95")})}
    print(json.dumps({k: {a: b for a, b in v.items() if a != "rows"} for k, v in res.items()}, indent=1))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(res, indent=1) + "\n")
    from bench.run import RESULTS as MAIN
    from bench.run import write_doc

    write_doc(json.loads(MAIN.read_text()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
