"""Cold start of the command line (issue 23): ``mad edit --request`` on a tiny model, each run a fresh process,
with a breakdown by phase.

    python -m bench.cold

Every row is the wall time of a fresh ``python -m assistant.ui.cli`` process, so the phases are differences of
commands that stop at successive points (each run ``RUNS`` times, the median kept):

* start: ``mad --help`` (the interpreter and the command line's own imports);
* graph: ``mad summary`` of the tiny Llama (torch and transformers imported, the config traced) minus start;
* edit: ``mad edit --program`` (an add_lora program: the engine, validation, the JSON written) minus graph;
* request: ``mad edit --request`` (the same edit in words: the language model loaded from its cached copy, the
  request read and the program decoded) minus edit; the target is on the whole command.

Results: ``bench/results/cold.json`` and the "Cold start" section of ``docs/benchmarks.md`` (``bench.run.cold_lines``).
"""

from __future__ import annotations

import json
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "cold.json"
TARGET_S = 8.0
RUNS = 3
TINY = ["--set", "num_hidden_layers=2", "--set", "hidden_size=64", "--set", "intermediate_size=128",
        "--set", "num_attention_heads=4", "--set", "num_key_value_heads=2", "--set", "vocab_size=128"]
REQUESTS = ["add LoRA to q and v", "LoRA r=16 on the query and value projections of the last layer",
            "swap the activation for GELU", "drop the last layer"]


def _time(args: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "assistant.ui.cli", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)
    seconds = time.perf_counter() - start
    if done.returncode not in (0, 1):  # 1: a question or refusal, still a whole request
        raise RuntimeError(f"`mad {' '.join(args)}` failed: {done.stderr.strip()[-500:]}")
    return seconds


def _median(args: list[str]) -> float:
    return round(statistics.median(_time(args) for _ in range(RUNS)), 2)


def main(argv=None) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = str(pathlib.Path(tmp) / "out.json")
        program = json.dumps({"edits": [{"op": "add_lora", "target": {"roles": ["attn.q", "attn.v"]}}]})
        _time(["edit", "hf:llama", *TINY, "--request", REQUESTS[0], "-o", out])  # caches warm (disk, not process)
        start = _median(["--help"])
        graph = _median(["summary", "hf:llama", *TINY])
        edit = _median(["edit", "hf:llama", *TINY, "--program", program, "-o", out])
        requests = {r: round(_time(["edit", "hf:llama", *TINY, "--request", r, "-o", out]), 2) for r in REQUESTS}
    whole = sorted(requests.values())
    res = {"target_s": TARGET_S, "runs": RUNS, "requests": requests,
           "whole_p50_s": round(statistics.median(whole), 2), "whole_max_s": whole[-1],
           "phases": {"start (interpreter, command line)": start, "graph (torch, transformers, trace)": round(graph - start, 2),
                      "edit (engine, validation, write)": round(edit - graph, 2),
                      "request (language model load, reading, decoding)": round(statistics.median(whole) - edit, 2)}}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    tmp = RESULTS.with_suffix(".tmp")
    tmp.write_text(json.dumps(res, indent=1) + "\n")
    tmp.replace(RESULTS)
    print(json.dumps(res, indent=1))
    from bench.run import RESULTS as MAIN
    from bench.run import write_doc

    write_doc(json.loads(MAIN.read_text()))
    return res


if __name__ == "__main__":
    main()
