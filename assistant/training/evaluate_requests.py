"""Requests as people write them, scored by the graph they produce (issue 20).

    python -m assistant.training.evaluate_requests corpora/blind_1.json --ablation  # shipped, graph tokens withheld
    python -m assistant.training.evaluate_requests corpora/dev_2.json --words-only  # the reading alone, no model
    python -m assistant.training.evaluate_requests SET --no-graph-tokens DIR  # an adapter trained without them

A set is a JSON file ``{"_doc", "requests": [{"id", "model", "request", "language", "classes",
"expected": {"action", "edits"?}}]}`` on two tiny graphs (``llama``, ``gpt2``; :data:`MODELS`).
Each request goes through :meth:`assistant.interpret.Assistant.interpret` and is scored:

* **exact edit**: an expected edit whose result equals the expected program's result: the same
  parameters (name, shape, trainable) and the same ops with the same non-tensor arguments;
* **silent wrong edit**: an edit applied that is not the expected one (an expected question or
  refusal answered with an edit counts too): the failure asking would have avoided;
* **ask/refuse right**: an expected question answered with a question, a refusal with a refusal;
* per class (numbers, positions, roles, names, direction, code, compound, ask, refuse, language)
  and latency p50/p95.

Every run also scores the reading without the language model (every clause's program is what its
words fix; ``--words-only``: that alone), and ``--ablation`` the shipped adapter with its graph tokens
withheld.  Results go to ``bench/results/requests_<set>.json`` and the report ``docs/llm-eval.md``
(every set scored so far, blind sets first).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import statistics
import sys
import time

from gnn.fileio import write_text
from gnn.ir.graph import graph_key

ROOT = pathlib.Path(__file__).resolve().parents[2]
# the graphs the sets are written for: tiny configs of two real families
MODELS = {
    "llama": ("hf:llama", {"num_hidden_layers": 4, "hidden_size": 64, "intermediate_size": 128,
                           "num_attention_heads": 8, "num_key_value_heads": 4, "vocab_size": 256}),
    "gpt2": ("hf:gpt2", {"n_layer": 4, "n_embd": 64, "n_head": 4, "vocab_size": 256, "n_positions": 64}),
}
CLASSES = ("numbers", "positions", "roles", "names", "direction", "code", "compound", "ask", "refuse", "language")


def results_path(path: str | pathlib.Path) -> pathlib.Path:
    """Where a set's scores go; a blind set's first scoring is kept there, later ones go beside it (``_dev``)."""
    return ROOT / "bench" / "results" / f"requests_{pathlib.Path(path).stem}.json"


def graphs() -> dict:
    from gnn.importers.hf import HFOptions, import_hf

    return {name: import_hf(source, HFOptions(overrides=overrides, seq_len=8))
            for name, (source, overrides) in MODELS.items()}


class WordsOnly:
    """An interpreter with no language model: each clause's program is what its words fix (the model's answer
    stands in as cut off), and a clause whose words name no edit fails."""

    def __new__(cls):
        from assistant.interpret import Assistant

        a = Assistant.__new__(Assistant)
        a.projector, a.graph_id, a.beams, a.rerank_weight = None, None, 1, 0.0
        a.generate = lambda chat, tokens=None, request=None, schema=None: "{"
        return a


def score(assistant, requests: list[dict], log=print) -> dict:
    from gnn.edits import apply_program
    from gnn.errors import MadError

    base = graphs()
    rows = []
    for r in requests:
        graph = base[r["model"]]
        expected = r["expected"]
        try:
            want = graph_key(apply_program(graph, {"edits": expected["edits"]}).graph) \
                if expected["action"] == "edit" else None
        except MadError as e:  # a hand-written expectation the engine refuses: reported, not scored
            log(f"{r['id']:>5} skipped: its expected program fails ({e})")
            continue
        start = time.perf_counter()
        out = assistant.interpret(graph, r["request"])
        seconds = time.perf_counter() - start
        got = graph_key(out.result.graph) if out.done else None
        exact = want is not None and got == want
        rows.append({"id": r["id"], "model": r["model"], "classes": r.get("classes", []), "request": r["request"],
                     "expected": expected["action"], "action": out.action, "program": out.program,
                     "message": out.message[:300], "exact": exact, "silent_wrong": out.done and not exact,
                     "right": exact if want is not None else out.action == expected["action"],
                     "seconds": round(seconds, 2)})
        log(f"{r['id']:>5} {r['model']:>5} {'ok ' if rows[-1]['right'] else 'WRONG' if rows[-1]['silent_wrong'] else '-- '}"
            f" {out.action:7} {seconds:5.1f}s  {r['request'][:70]}")
    return summary(rows)


def summary(rows: list[dict]) -> dict:
    edits = [r for r in rows if r["expected"] == "edit"]
    other = [r for r in rows if r["expected"] != "edit"]
    compound = [r for r in rows if "compound" in r["classes"]]
    times = sorted(r["seconds"] for r in rows)
    per = {c: [r["right"] for r in rows if c in r["classes"]] for c in CLASSES}
    return {
        "requests": len(rows),
        "exact_edit_success": round(sum(r["exact"] for r in edits) / max(len(edits), 1), 4),
        "silent_wrong_edits": round(sum(r["silent_wrong"] for r in rows) / max(len(rows), 1), 4),
        "ask_refuse_right": round(sum(r["right"] for r in other) / max(len(other), 1), 4),
        "compound_success": round(sum(r["right"] for r in compound) / max(len(compound), 1), 4),
        "per_class": {c: f"{sum(v)}/{len(v)}" for c, v in per.items() if v},
        "latency_p50_s": round(statistics.median(times), 2) if times else None,
        "latency_p95_s": round(times[min(len(times) - 1, int(0.95 * len(times)))], 2) if times else None,
        "rows": rows,
    }


def table(name: str, variants: dict[str, dict]) -> list[str]:
    """The report's lines for one set: headline figures and per-class right answers, one column per variant."""
    names = list(variants)
    lines = [f"| {name} | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for key, label in (("exact_edit_success", "exact-edit success (target ≥ 0.95)"),
                       ("silent_wrong_edits", "silent wrong edits, of all requests (target ≤ 0.01)"),
                       ("ask_refuse_right", "ask/refuse right (target ≥ 0.9)"),
                       ("compound_success", "compound success (target ≥ 0.9)"),
                       ("latency_p50_s", "latency p50 (s, tiny graphs)"), ("latency_p95_s", "latency p95 (s)")):
        lines.append(f"| {label} | " + " | ".join(str(variants[n][key]) for n in names) + " |")
    for c in CLASSES:
        lines.append(f"| class: {c} | " + " | ".join(variants[n]["per_class"].get(c, "") for n in names) + " |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("set", help="a request set (corpora/blind_1.json, corpora/dev_2.json)")
    parser.add_argument("--words-only", action="store_true", help="the reading alone, no language model")
    parser.add_argument("--ablation", action="store_true",
                        help="also score the shipped adapter with its graph tokens withheld (no <graph> in the prompt)")
    parser.add_argument("--no-graph-tokens", metavar="DIR", help="also score an adapter trained without graph tokens")
    parser.add_argument("--llm")
    parser.add_argument("--only", help="comma-separated request ids (development; nothing is written)")
    args = parser.parse_args(argv)
    data = json.loads(pathlib.Path(args.set).read_text())
    requests = data["requests"]
    if args.only:
        keep = set(args.only.split(","))
        requests = [r for r in requests if str(r["id"]) in keep]
    variants = {}
    if not args.words_only:
        from assistant.interpret import Assistant

        shipped = Assistant(args.llm, log=lambda *_: None)
        variants["LoRA + graph tokens (shipped)"] = score(shipped, requests)
        if args.ablation:
            shipped.projector = None  # the same weights; the prompt carries no graph tokens
            variants["same adapter, graph tokens withheld"] = score(shipped, requests)
        if args.no_graph_tokens:
            variants["LoRA trained without graph tokens"] = score(
                Assistant(args.llm, adapter=args.no_graph_tokens, log=lambda *_: None), requests)
    variants["reading alone (no model)"] = score(WordsOnly(), requests)
    for name, v in variants.items():
        print(f"== {name}: " + json.dumps({k: v[k] for k in v if k != "rows"}))
    if not args.only:
        out = results_path(args.set)
        blind = data.get("blind", pathlib.Path(args.set).stem.startswith("blind"))
        if out.exists() and json.loads(out.read_text()).get("blind"):  # scored once already: the record stays
            out, blind = out.with_name(out.stem + "_dev.json"), False
            data["_doc"] = f"Rescored as a development set after its blind scoring. {data.get('_doc', '')}"
        write_text(out, json.dumps({"set": args.set, "doc": data.get("_doc", ""), "blind": blind,
                                    "scored": time.strftime("%Y-%m-%d"), "variants": variants}, indent=1) + "\n")
        write_doc()
    return 0


def write_doc() -> None:
    """``docs/llm-eval.md`` from every set's results: blind sets first, then the development sets."""
    found = [json.loads(p.read_text()) for p in sorted((ROOT / "bench" / "results").glob("requests_*.json"))]
    found.sort(key=lambda r: r["set"], reverse=True)  # the newest blind set first
    found.sort(key=lambda r: not r.get("blind"))
    lines = ["# Request evaluation", "",
             "Generated by `python -m assistant.training.evaluate_requests SET [--ablation]` (results in "
             "`bench/results/requests_<set>.json`). Each request runs through the assistant on a tiny 4-block "
             "Llama (8 query, 4 key/value heads) or GPT-2 graph and is scored by the graph it produces: "
             "**exact edit** means the same parameters (name, shape, trainable) and the same ops with the same "
             "non-tensor arguments as the expected program's graph; a **silent wrong edit** is any edit applied "
             "that is not the expected one (an edit where a question or refusal was expected counts too). "
             "Classes are the writers' own labels; a request has several.", "",
             "Latency here is on the tiny graphs; on the Llama-3-8B graph see [benchmarks.md](benchmarks.md) "
             "(`python -m bench.llm`). The grammar's phrasing sets (the earlier evaluation) are in "
             "[llm-eval-phrasings.md](llm-eval-phrasings.md)."]
    for r in found:
        name = pathlib.Path(r["set"]).stem + ("" if r.get("blind") or not r.get("doc", "").startswith("Rescored")
                                               else " (rescored)")
        status = (f"**blind**, scored once on {r.get('scored', '?')}; a development set from then on"
                  if r.get("blind") else "development set (read and tuned against)")
        n = next(iter(r["variants"].values()))["requests"]
        lines += ["", f"## {name}: {status}", "", r.get("doc", "")[:600], "",
                  f"{n} requests scored (requests whose expected program the engine refuses are left out and "
                  "listed in the run's log).", "", *table(name, r["variants"])]
        first = next(iter(r["variants"]))
        wrong = [row for row in r["variants"][first]["rows"] if not row["right"]]
        if wrong:
            lines += ["", f"Not right with {first} ({len(wrong)}):", "",
                      "| id | expected | got | request |", "|---|---|---|---|"]
            for row in wrong:
                got = "silent wrong edit" if row["silent_wrong"] else row["action"]
                request = row["request"].replace("|", "\\|").replace("\n", " ")
                lines.append(f"| {row['id']} | {row['expected']} | {got} | {request} |")
    write_text(ROOT / "docs" / "llm-eval.md", "\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
