"""Evaluate the assistant's language model: requests to edits, questions and refusals.

    python -m assistant.training.evaluate_llm [--per-type 6] [--types 16] [--no-graph-adapter DIR] [--keep-base]
    python -m assistant.training.evaluate_llm --tune-rerank [--no-graph-adapter DIR]   # decoding.json, on dev requests
    python -m assistant.training.evaluate_llm --fresh [NAME] [--no-graph-adapter DIR]   # on corpora/fresh_phrasings*.json

Test requests are the instruction examples (:mod:`assistant.training.instructions`) of the test
families (never trained on), in the held-out phrasings (never trained on either), on
graphs of each family imported from a narrow config so the programs run quickly; the
prompt's facts are those graphs' facts.  For each model variant side by side (the base
model zero-shot, LoRA without graph tokens, LoRA with graph tokens; the adapters that
exist):

* exact match: the answer's action and program equal the reference;
* executed-edit success: for references that are edits, the program ran and the
  resulting graph equals the reference program's result (parameter count, trainable
  count, op multiset);
* handling of ambiguous and impossible requests: the answer is a question or a refusal
  where the reference is;
* latency: request to validated graph, p50 and p95, and the model's load time (the cached copy).

Descriptions do not depend on the language model (every fact is read off the graph), so
they are scored once: each number and fact that the architecture corpus's descriptions
of the held-out families state (blocks, width, vocabulary, heads, KV heads, head size,
activation, tied embeddings, parameters) is checked against the Hugging Face config and
the model transformers builds from it.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import pathlib
import random
import re
import statistics
import sys
import time
from collections import Counter

from gnn.fileio import write_text

ROOT = pathlib.Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "llm-eval-phrasings.md"
RESULTS = ROOT / "bench" / "results" / "llm_eval.json"
# Phrasings written after a training run to test it, by someone who saw no other phrasing, and when
FRESH = {
    "fresh_phrasings.json": "written after the fifth training run (2026-11-30). The fifth run's results on them were "
                            "read before the sixth run, whose grammar gained phrasings for what they got wrong (none "
                            "within the similarity filter of these), so for later runs they are a development set",
    "fresh_phrasings_2.json": "written after the fifth run's results were read and before the sixth run was trained; "
                              "nobody read them before they were scored; for later runs a development set",
    "fresh_phrasings_3.json": "written after the sixth run's results were read and before the seventh run was "
                              "trained; nobody read them before they were scored",
}


def adapter_digest() -> str:
    """The shipped adapter's weights, as a short digest: which adapter a kept result was scored with."""
    from assistant.llm import ADAPTER

    return hashlib.sha256((ADAPTER / "adapter_model.safetensors").read_bytes()).hexdigest()[:16]


def fresh_results(name: str) -> pathlib.Path:
    """Where the scores on the fresh phrasings ``name`` go: ``fresh_phrasings_2.json`` -> ``llm_eval_fresh_2.json``."""
    return ROOT / "bench" / "results" / ("llm_eval_" + name.removesuffix(".json").replace("_phrasings", "") + ".json")


def _signature(graph) -> tuple:
    return graph.num_parameters, graph.num_trainable_parameters, tuple(sorted(Counter(n.op for n in graph.nodes).items()))


HIDDEN_ACT = {"silu": "SiLU", "swish": "SiLU", "gelu": "GELU", "relu": "ReLU", "gelu_new": "GELU (tanh approximation)",
              "gelu_pytorch_tanh": "GELU (tanh approximation)", "gelu_fast": "GELU (tanh approximation)"}


def _config_truth(model_type: str, f: dict, overrides: dict | None = None) -> dict:
    """What the config (and the model transformers builds from it) says, for the facts a description states."""
    from gnn.importers.hf import build_meta_model, candidate_classes
    from gnn.importers.hf_config import load_config, sub_configs

    config = load_config(f"hf:{model_type}", overrides)
    try:
        text = config.get_text_config()
    except (NotImplementedError, ValueError):
        text = None
    if len(f["stacks"]) > 1 and sub_configs(config):
        text = None  # several towers (CLIP-like): which one a per-tower fact is about is not said

    def get(name):
        try:
            v = getattr(text, name, None)
        except Exception:  # noqa: BLE001 - a per-layer setting with no single value
            return None
        return v if isinstance(v, (int, str)) and not isinstance(v, bool) else None

    heads, width = (v if isinstance(v := get(k), int) else None for k in ("num_attention_heads", "hidden_size"))
    truth = {"width": width, "vocab": get("vocab_size"), "heads": heads, "kv heads": get("num_key_value_heads") or heads,
             "head size": get("head_dim") or (width // heads if heads and width else None),
             "activation": HIDDEN_ACT.get(get("hidden_act") or "")}
    if len(f["stacks"]) == 1:
        truth["blocks"] = get("num_hidden_layers")
    cls = next((c for c in candidate_classes(config) if c.__name__ == f["name"]), None)
    if cls is not None:
        model = build_meta_model(cls, config)
        truth["params"] = sum(p.numel() for p in model.parameters())
        # where the attention modules of a single-config model keep their own head count, it is the
        # truth (ConvBERT gives half of the config's heads to convolutions)
        attn = next((m for m in model.modules() if type(m).__name__.endswith("SelfAttention")
                     and isinstance(getattr(m, "num_attention_heads", None), int)), None) if text is config else None
        if attn is not None and attn.num_attention_heads != heads:
            truth["heads"] = truth["kv heads"] = attn.num_attention_heads
            if isinstance(getattr(attn, "attention_head_size", None), int):
                truth["head size"] = attn.attention_head_size
        try:
            out, inp = model.get_output_embeddings(), model.get_input_embeddings()
        except NotImplementedError:  # a model without token embeddings
            out = inp = None
        if out is not None and inp is not None:
            truth["tied"] = out.weight is inp.weight
    return truth


def _stated(text: str) -> dict:
    """The facts a description states, by the phrases :func:`assistant.describe.describe` writes."""
    def num(pattern):
        m = re.search(pattern, text)
        return int(m.group(1).replace(",", "")) if m else None

    heads = num(r"(\d+) query heads") or num(r"multi-head attention with (\d+) heads")
    act = re.search(r"\bwith ([^,]+), inner width", text)
    tied = re.search(r"embeddings (not tied|tied)", text)
    # a hierarchical model states its first and last stage's widths; configs give the last (Swin's hidden_size)
    width = num(r"blocks, width [\d,]+ in the first stage to ([\d,]+) in the last") or num(r"blocks, width ([\d,]+)")
    return {"blocks": num(r"with ([\d,]+) repeated blocks"), "width": width,
            "vocab": num(r"vocabulary of ([\d,]+) tokens"), "heads": heads,
            "kv heads": num(r"share (\d+) key/value head") or heads, "head size": num(r"head size (\d+)"),
            "activation": act.group(1) if act else None, "params": num(r"Parameters: ([\d,]+)"),
            "tied": (tied.group(1) == "tied") if tied else None}


def check_description(model_type: str, f: dict, text: str, overrides: dict | None = None) -> dict:
    """The facts ``text`` states, sorted into right, wrong (with both values) and unchecked (nothing to compare to)."""
    truth = _config_truth(model_type, f, overrides)
    out = {"right": [], "wrong": [], "unchecked": []}
    for key, value in _stated(text).items():
        if value is None:
            continue
        if truth.get(key) is None:
            out["unchecked"].append(key)
        elif truth[key] == value:
            out["right"].append(key)
        else:
            out["wrong"].append({"model_type": model_type, "fact": key, "stated": value, "config": truth[key]})
    return out


def description_facts(split: str = "test", log=print) -> dict:
    """Each fact the corpus descriptions of ``split``'s types state, against the config: right, wrong, unchecked."""
    from assistant.training.corpora import CORPUS

    rows = [r for r in map(json.loads, CORPUS.read_text().splitlines()) if r["split"] == split and "description" in r]
    right, wrong, unchecked = 0, [], 0
    for r in rows:
        try:
            c = check_description(r["model_type"], r["facts"], r["description"])
        except Exception as e:  # noqa: BLE001 - a config that cannot be built again leaves its facts unchecked
            log(f"{r['model_type']}: unchecked ({type(e).__name__})")
            unchecked += sum(v is not None for v in _stated(r["description"]).values())
            continue
        right, wrong, unchecked = right + len(c["right"]), wrong + c["wrong"], unchecked + len(c["unchecked"])
    return {"types": len(rows), "checked": right + len(wrong), "right": right, "unchecked": unchecked,
            "accuracy": round(right / max(right + len(wrong), 1), 4), "wrong": wrong}


def test_cases(types: int, per_type: int, seed: int = 0, dev: bool = False,
               phrasings: dict[str, list[str]] | None = None) -> list[dict]:
    """Held-out phrasings (or ``phrasings``, by intent) on graphs of held-out (test split) families; with ``dev``,
    the development phrasings on graphs of the validation split's families (for choosing decoding settings,
    never for the report)."""
    from assistant.facts import facts
    from assistant.training.instructions import examples, examples_for
    from gnn.edits import apply_program
    from gnn.errors import MadError
    from gnn.importers.hf import HFOptions, import_hf
    from gnn.training.build import load_splits

    splits = load_splits()["types"]
    rng = random.Random(seed)
    split = "val" if dev else "test"
    candidates = sorted(t for t, v in splits.items() if v["split"] == split and v["kind"] == "decoder")
    rng.shuffle(candidates)
    cases = []
    for model_type in candidates:
        if len({c["model_type"] for c in cases}) >= types:
            break
        try:
            graph = import_hf(f"hf:{model_type}", HFOptions(overrides={"num_hidden_layers": 2}, seq_len=8))
            f = facts(graph)
        except Exception:  # noqa: BLE001 - a type that does not import narrow is skipped
            continue
        if not f.heads:
            continue
        rng_type = random.Random(f"{seed}-{model_type}")
        held = (examples_for(f, rng_type, dev=True) if dev
                else examples_for(f, rng_type, held_out=True, phrasings=phrasings) if phrasings is not None
                else examples(f, rng_type, held_out=True))
        rng.shuffle(held)
        for e in held[:per_type]:
            expected = None
            if e.answer["action"] == "edit":
                try:
                    expected = _signature(apply_program(graph, {"edits": e.answer["edits"]}).graph)
                except MadError:  # a hand-written request this graph cannot take: not a fair case
                    continue
            cases.append({"model_type": model_type, "graph": graph, "request": e.request, "intent": e.intent,
                          "source": e.source, "template": e.phrasing, "prompt": prompt_digest(f, e.request),
                          "answer": e.answer, "expected": expected})
    return cases


def tune_rerank(adapter, cases: list[dict], beams: int = 4, weights=(0.0, 0.25, 0.5, 1.0, 2.0, 4.0),
                llm: str | None = None, log=print) -> dict:
    """Choose the decoding for ``adapter`` on development cases: greedy, or ``beams``-wide beam search reranked
    with each of ``weights`` (:mod:`assistant.rerank`). The best (right answers, then the simpler setting) goes to
    the adapter's ``decoding.json``."""
    from assistant.interpret import DECODING, Assistant, Decoding

    a = Assistant(llm, adapter=adapter, beams=beams, rerank_weight=0.0)
    found: dict = {}
    search = a.candidates

    def cached(chat, graph_tokens=None, beams=1):  # one beam search per prompt, whatever the weight
        key = (json.dumps(chat), beams)
        if key not in found:
            found[key] = search(chat, graph_tokens, beams)
        return found[key]

    a.candidates = cached
    tried = []

    def trial(k: int, w: float) -> dict:
        a.beams, a.rerank_weight = k, w
        rows = score(a, cases, log=lambda *_: None)["rows"]
        tried.append({"beams": k, "rerank_weight": w, "right": sum(map(right, rows)), "cases": len(rows)})
        log(f"beams {k} weight {w}: {tried[-1]['right']}/{len(rows)} right")
        return tried[-1]

    chosen = max([trial(k, w) for k, w in [(1, 0.0)] + [(beams, w) for w in weights]],
                 key=lambda t: (t["right"], -t["beams"], -t["rerank_weight"]))
    decoding = dataclasses.asdict(Decoding(
        chosen["beams"], chosen["rerank_weight"],
        chosen_on=f"{len(cases)} development requests on {len({c['model_type'] for c in cases})} validation-split families",
        tried=tried))
    write_text(pathlib.Path(adapter) / DECODING, json.dumps(decoding, indent=1) + "\n")
    return decoding


def prompt_digest(f, request: str) -> str:
    """A digest of the text prompt ``request`` gets on a graph with facts ``f`` (system prompt, graph outline, the
    methods retrieval names, the request; graph tokens left out): a kept result holds only while this is the same."""
    from assistant.prompting import messages

    chat = json.dumps(messages(f, request), sort_keys=True)
    return hashlib.sha256(chat.encode()).hexdigest()[:16]


def score(assistant, cases: list[dict], log=print) -> dict:
    rows = []
    for c in cases:
        start = time.perf_counter()
        out = assistant.interpret(c["graph"], c["request"])
        seconds = time.perf_counter() - start
        ref = c["answer"]
        got = {"action": out.action}
        if out.program:
            got["edits"] = out.program["edits"]
        exact = got.get("action") == ref["action"] and (ref["action"] != "edit" or got.get("edits") == ref["edits"])
        executed = None
        if ref["action"] == "edit":
            executed = bool(out.done and _signature(out.result.graph) == c["expected"])
        rows.append({"model_type": c["model_type"], "intent": c["intent"], "source": c["source"], "request": c["request"],
                     "prompt": c["prompt"], "reference": ref, "answers": out.answers, "action": out.action,
                     "exact": exact, "executed": executed, "seconds": round(seconds, 2)})
        log(f"{c['model_type']:>16} {c['request'][:50]:50} exact={exact} executed={executed} {seconds:.1f}s")
    edits = [r for r in rows if r["executed"] is not None]
    other = [r for r in rows if r["reference"]["action"] != "edit"]
    times = sorted(r["seconds"] for r in rows)
    return {
        "cases": len(rows),
        "exact_match": round(sum(r["exact"] for r in rows) / len(rows), 4),
        "executed_edit_success": round(sum(r["executed"] for r in edits) / max(len(edits), 1), 4),
        "ask_or_refuse_correct": round(sum(r["action"] == r["reference"]["action"] for r in other) / max(len(other), 1), 4),
        "latency_p50_s": round(statistics.median(times), 2),
        "latency_p95_s": round(times[min(len(times) - 1, int(0.95 * len(times)))], 2),
        "rows": rows,
    }


def right(row: dict) -> bool:
    """Whether a scored request was answered right: an edit by its executed result, a question or refusal by
    answering with one (the wording is free)."""
    return row["executed"] if row["executed"] is not None else row["action"] == row["reference"]["action"]


def _per(rows: list[dict], key: str = "intent") -> dict[str, str]:
    """Right answers (:func:`right`) per intent or phrasing source."""
    by: dict[str, list] = {}
    for r in rows:
        by.setdefault(r[key], []).append(right(r))
    return {k: f"{sum(v)}/{len(v)}" for k, v in sorted(by.items())}


def _per_table(column: str, variants: dict, key: str = "intent") -> list[str]:
    """A markdown table of right answers (:func:`_per`) per ``key`` value, one column per variant."""
    names = list(variants)
    per = {n: _per(variants[n]["rows"], key) for n in names}
    lines = [f"| {column} | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for value in sorted({v for p in per.values() for v in p}):
        lines.append(f"| {value} | " + " | ".join(per[n].get(value, "") for n in names) + " |")
    return lines


def _fresh_line(scored: dict[str, dict]) -> str:
    """The shipped adapter's executed-edit success on the newest fresh phrasings ``scored`` (results by set name),
    as a sentence (empty before any)."""
    for name, fresh in reversed(scored.items()):
        f = fresh["variants"].get("LoRA + graph tokens", {}).get("executed_edit_success")
        if f is not None:
            return (f" On the newest phrasings written after training (`corpora/{name}`, "
                    f"[below](#fresh-phrasings)) it is {f:.2f}" + (f", {0.95 - f:.2f} short." if f < 0.95 else "."))
    return ""


def write_doc(results: dict) -> None:
    names = list(results["variants"])
    scored = {name: json.loads(fresh_results(name).read_text()) for name in FRESH if fresh_results(name).exists()}
    lines = ["# Language model evaluation: the grammar's phrasing sets", "",
             "Generated by `python -m assistant.training.evaluate_llm` (results in `bench/results/llm_eval.json`): held-out "
             f"phrasings and held-out hand-written requests on held-out (test split) families, {results['cases']} "
             f"requests on {results['types']} model types, each imported with 2 blocks. Variants side by side: the "
             "base model zero-shot, LoRA trained without graph tokens, LoRA with graph tokens (the shipped adapter).",
             "", "| metric | " + " | ".join(names) + " | target |", "|---|" + "---|" * (len(names) + 1)]
    for key, title, target in (("exact_match", "exact match (action and program)", ""),
                               ("executed_edit_success", "executed-edit success", "≥ 0.95"),
                               ("ask_or_refuse_correct", "ambiguous / impossible handled", ""),
                               ("latency_p50_s", "latency p50 (s)", "≤ 5"), ("latency_p95_s", "latency p95 (s)", "≤ 10")):
        lines.append(f"| {title} | " + " | ".join(str(results["variants"][n][key]) for n in names) + f" | {target} |")
    if all("decoding" in results["variants"][n] for n in names):
        lines.append("| decoding | " + " | ".join(
            "greedy" if (d := results["variants"][n]["decoding"])["beams"] <= 1 else
            f"{d['beams']} beams" + (f", reranked (weight {d['rerank_weight']})" if d["rerank_weight"] else "")
            for n in names) + " | |")
        lines += ["", "Each adapter's decoding (`decoding.json` beside it, which says on what and for which run) was "
                  "chosen on development requests "
                  "(`corpora/dev_phrasings.json` on validation-split families), never on these: greedy, or beam search "
                  "with the candidates reranked by how close their reading is to the request (`assistant/rerank.py`), "
                  "and a floor on that closeness under which an edit is asked about instead of made."]
    kept = [n for n in names if results["variants"][n].get("kept")]
    if kept:
        lines += ["", f"{', '.join(kept)}: kept from the run before (`--keep-base`): the same prompts, and that "
                  "model and its decoding did not change."]
    lines += ["", "Latency here is on the 2-block graphs; on the Llama-3-8B graph, and the model's load in a fresh "
              "process, see [benchmarks.md](benchmarks.md) (`python -m bench.llm`)."]
    shipped = results["variants"].get("LoRA + graph tokens")
    if shipped:
        gap = 0.95 - shipped["executed_edit_success"]
        lines += ["", f"The shipped adapter's executed-edit success is {shipped['executed_edit_success']:.2f}: "
                  + (f"it misses the 0.95 target by {gap:.2f}." if gap > 0 else "it meets the 0.95 target.")
                  + _fresh_line(scored) + " Why, and what comes next: [docs/assistant.md](assistant.md)."]
    lines += ["", "Per intent (edits: executed success; questions and refusals: right action):", ""]
    lines += _per_table("intent", results["variants"])
    lines += ["", "Per phrasing source (the same measure): *first templates* are the two held-out phrasings per intent "
              "written with the first templates; *independent* are four per intent written by someone who never saw "
              "the training grammar (`corpora/held_out_phrasings.json`); *hand-written* are the held-out requests of "
              "`corpora/requests.jsonl`.", ""]
    lines += _per_table("source", results["variants"], "source")
    if scored:
        lines += ["", "## Fresh phrasings", "",
                  "`python -m assistant.training.evaluate_llm --fresh NAME`: the adapters on phrasings written after a training "
                  "run, on the held-out families, by someone who saw neither the training grammar nor the other "
                  "held-out phrasings; the training grammar keeps none within the similarity filter of them. They are "
                  "fresh only for adapters nobody changed after reading their results. *Far from training* are those "
                  "whose closest training phrasing (difflib) is under the filter's threshold; the rest are near one."]
    shipped_digest = adapter_digest() if scored else None
    for name, fresh in scored.items():
        fnames = list(fresh["variants"])
        lines += ["", f"### `corpora/{name}`", "",
                  f"{fresh['cases']} requests on {fresh['types']} held-out model types, {FRESH[name]}. Scored with "
                  + ("the shipped adapter" if fresh.get("adapter") == shipped_digest else
                     "an earlier adapter than the one shipped now") + ".", "",
                  "| metric | " + " | ".join(fnames) + " |", "|---|" + "---|" * len(fnames)]
        for key, title in (("exact_match", "exact match"), ("executed_edit_success", "executed-edit success"),
                           ("ask_or_refuse_correct", "ambiguous / impossible handled")):
            lines.append(f"| {title} | " + " | ".join(str(fresh["variants"][n][key]) for n in fnames) + " |")
        for far, title in ((True, "right, far from training"), (False, "right, near a training phrasing")):
            rows = {n: [r for r in fresh["variants"][n]["rows"] if (r["closest"] < fresh["similar"]) == far]
                    for n in fnames}
            if any(rows.values()):  # none is near once the training filter drops what is close to them
                lines.append(f"| {title} | " + " | ".join(f"{sum(map(right, r))}/{len(r)}" for r in rows.values())
                             + " |")
        lines += [""] + _per_table("intent", fresh["variants"])
    d = results.get("descriptions")
    if d:
        lines += ["", "## Description facts", "",
                  f"The architecture corpus's descriptions of the {d['types']} held-out model types state "
                  f"{d['checked'] + d['unchecked']} checkable facts; {d['checked']} of them have a value in the config "
                  f"or the built model to check against: **{d['right']} right, {len(d['wrong'])} wrong "
                  f"({d['accuracy']:.2%})** (target 100%). {d['unchecked']} have nothing in the config to compare to.",
                  ""]
        if d["wrong"]:
            lines += ["| model type | fact | description says | config says |", "|---|---|---|---|"]
            lines += [f"| {w['model_type']} | {w['fact']} | {w['stated']} | {w['config']} |" for w in d["wrong"]]
    write_text(DOC, "\n".join(lines) + "\n")


def _adapters(no_graph_adapter: str | None) -> dict:
    """The trained variants there are to score, by name: the ablation if given, the shipped adapter if built."""
    from assistant.llm import ADAPTER

    out = {}
    if no_graph_adapter:
        out["LoRA, no graph tokens"] = no_graph_adapter
    if (ADAPTER / "adapter_config.json").exists():
        out["LoRA + graph tokens"] = ADAPTER
    return out


def main(argv: list[str] | None = None) -> int:
    from assistant.interpret import Assistant
    from assistant.llm import ADAPTER

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--types", type=int, default=16)
    parser.add_argument("--per-type", type=int, default=6)
    parser.add_argument("--no-graph-adapter", help="an adapter trained with --no-graph-tokens (the ablation)")
    parser.add_argument("--llm")
    parser.add_argument("--tune-rerank", action="store_true",
                        help="choose each adapter's decoding (greedy or reranked beams) on the development phrasings "
                             "and validation families, write it to the adapter's decoding.json, and stop")
    parser.add_argument("--fresh", nargs="?", const=list(FRESH)[-1], choices=list(FRESH), metavar="NAME",
                        help="score the adapters on corpora/NAME (phrasings written after training; default the "
                             f"newest, {list(FRESH)[-1]}) on the held-out families, into "
                             "bench/results/llm_eval_fresh*.json and the report")
    parser.add_argument("--descriptions-only", action="store_true",
                        help="score the corpus's descriptions again (after `python -m assistant.training.corpora`) and keep "
                             "the language model's results as they are")
    parser.add_argument("--keep-base", action="store_true",
                        help="keep the base model's results from the last run (bench/results/llm_eval.json) when it "
                             "saw the same prompts (same requests, graphs, retrieved methods): the base model and its "
                             "greedy decoding do not change with training")
    args = parser.parse_args(argv)
    if args.descriptions_only:
        results = json.loads(RESULTS.read_text())
        results["descriptions"] = description_facts()
        write_text(RESULTS, json.dumps(results, indent=1) + "\n")
        write_doc(results)
        return 0
    if args.tune_rerank:
        cases = test_cases(10, 8, dev=True)
        for adapter in [ADAPTER, args.no_graph_adapter]:
            if adapter:
                print(f"== {adapter}: {tune_rerank(adapter, cases, llm=args.llm)}")
        return 0
    if args.fresh:
        from assistant.training.instructions import SIMILAR, closest_training_phrasing

        phrasings = json.loads((ROOT / "corpora" / args.fresh).read_text())
        closest = {t: closest_training_phrasing(i, t) for i, ts in phrasings.items() for t in ts}
        cases = test_cases(args.types, args.per_type, phrasings=phrasings)
        fresh = {"cases": len(cases), "types": len({c["model_type"] for c in cases}), "similar": SIMILAR,
                 "adapter": adapter_digest(), "variants": {}}
        for name, adapter in _adapters(args.no_graph_adapter).items():
            print(f"== {name}")
            fresh["variants"][name] = score(Assistant(args.llm, adapter=adapter), cases)
            for row, c in zip(fresh["variants"][name]["rows"], cases):
                row["closest"] = round(closest[c["template"]], 3)
        write_text(fresh_results(args.fresh), json.dumps(fresh, indent=1) + "\n")
        write_doc(json.loads(RESULTS.read_text()))
        return 0
    results = {"descriptions": description_facts()}
    cases = test_cases(args.types, args.per_type)
    variants = {"base model, zero-shot": None, **_adapters(args.no_graph_adapter)}
    results.update(cases=len(cases), types=len({c["model_type"] for c in cases}), variants={})
    last = json.loads(RESULTS.read_text())["variants"] if args.keep_base and RESULTS.exists() else {}
    base = "base model, zero-shot"
    for name, adapter in variants.items():
        if name == base and base in last and [(r["model_type"], r.get("prompt")) for r in last[base]["rows"]] \
                == [(c["model_type"], c["prompt"]) for c in cases]:
            print(f"== {name}: kept from the last run")
            results["variants"][name] = {**last[base], "kept": True}
            continue
        print(f"== {name}")
        start = time.perf_counter()
        assistant = Assistant(args.llm, adapter=adapter or None)
        load_s = round(time.perf_counter() - start, 2)  # after the first run's conversion: the cached copy
        results["variants"][name] = {**score(assistant, cases), "load_s": load_s,
                                     "decoding": {"beams": assistant.beams, "rerank_weight": assistant.rerank_weight}}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    write_text(RESULTS, json.dumps(results, indent=1) + "\n")
    write_doc(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
