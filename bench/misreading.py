"""Can an applied edit be checked against its request, so that a misreading asks instead of acting?

    python -m bench.misreading [bench/results/requests_blind_3.json]

From one scoring of a request set (its shipped variant's rows: each applied program and whether it was a
silent wrong edit), two independent checks of each applied program against its request:

* similarity: all-MiniLM-L6-v2 cosine similarity of the program's plain-words statement
  (``assistant.reading.statement``) and the request; how well it separates wrong from right (AUROC), and
  what thresholds catch and flag;
* second reader: the shipped model's own unconstrained answer (no words held to it) on the same request;
  whether its graph equals the applied one, on every silent wrong edit and 30 right ones (seeded).

Results go to ``bench/results/misreading.json``.  About 5 minutes on 2 cores.
"""

from __future__ import annotations

import json
import pathlib
import random
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    from assistant import reading
    from assistant.facts import facts
    from assistant.graph_tokens import graph_placeholder, graph_tokens
    from assistant.interpret import Assistant
    from assistant.prompting import messages
    from assistant.retrieval import encoder
    from assistant.training.evaluate_requests import graph_key, graphs
    from gnn.edits import apply_program
    from gnn.errors import MadError
    from gnn.fileio import write_text

    argv = sys.argv[1:] if argv is None else argv
    path = pathlib.Path(argv[0] if argv else ROOT / "bench" / "results" / "requests_blind_3.json")
    rows = json.loads(path.read_text())["variants"]["LoRA + graph tokens (shipped)"]["rows"]
    applied = [r for r in rows if r["action"] == "edit" and r["program"]]
    base = graphs()

    texts = [reading.statement(r["program"], None, reading.depth_of(facts(base[r["model"]]))).text for r in applied]
    enc = encoder()
    a = enc.encode([r["request"] for r in applied], normalize_embeddings=True)
    b = enc.encode(texts, normalize_embeddings=True)
    sims = [float(x) for x in (a * b).sum(1)]
    wrong = [s for s, r in zip(sims, applied) if r["silent_wrong"]]
    right = [s for s, r in zip(sims, applied) if not r["silent_wrong"]]
    auroc = sum((w < x) + 0.5 * (w == x) for w in wrong for x in right) / max(len(wrong) * len(right), 1)
    similarity = {"auroc": round(auroc, 3), "thresholds": {
        str(t): {"wrong_caught": sum(w < t for w in wrong), "right_flagged": sum(x < t for x in right)}
        for t in (0.5, 0.6, 0.7)}}

    assistant = Assistant(None, log=lambda *_: None)
    sample = [r for r in applied if r["silent_wrong"]] + random.Random(0).sample(
        [r for r in applied if not r["silent_wrong"]], min(30, len(right)))
    second = []
    for r in sample:
        graph = base[r["model"]]
        tokens = graph_tokens(graph) if assistant.projector is not None else None
        placeholder = graph_placeholder(len(tokens)) if tokens is not None else ""
        raw = assistant.generate(messages(facts(graph), r["request"], graph_placeholder=placeholder), tokens,
                                 request=r["request"])
        try:
            answer = json.loads(raw)
            agrees = answer.get("action") == "edit" and graph_key(
                apply_program(graph, {"edits": answer["edits"]}).graph) == graph_key(
                apply_program(graph, r["program"]).graph)
        except (json.JSONDecodeError, MadError, KeyError, TypeError):
            agrees = False
        second.append({"id": r["id"], "silent_wrong": r["silent_wrong"], "model_agrees": agrees})
    w = [s for s in second if s["silent_wrong"]]
    c = [s for s in second if not s["silent_wrong"]]
    out = {"set": str(path.relative_to(ROOT)), "applied": len(applied), "silent_wrong": len(wrong),
           "similarity": similarity,
           "second_reader": {"wrong_where_it_disagrees": f"{sum(not s['model_agrees'] for s in w)}/{len(w)}",
                             "right_where_it_agrees": f"{sum(s['model_agrees'] for s in c)}/{len(c)}",
                             "rows": second}}
    write_text(ROOT / "bench" / "results" / "misreading.json", json.dumps(out, indent=1) + "\n")
    print(json.dumps({k: v for k, v in out.items() if k != "second_reader"} | {
        "second_reader": {k: v for k, v in out["second_reader"].items() if k != "rows"}}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
