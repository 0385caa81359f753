"""Can an applied edit be checked against its request, so that a misreading asks instead of acting?

    python -m bench.misreading [bench/results/requests_blind_3.json]

From one scoring of a request set (its shipped variant's rows: each applied program and whether it was a
silent wrong edit), two independent checks of each applied program against its request:

* similarity: all-MiniLM-L6-v2 cosine similarity of the program's plain-words statement
  (``assistant.reading.statement``) and the request; how well it separates wrong from right (AUROC), and
  what thresholds catch and flag;
* second reader: the shipped model's own unconstrained answer (no words held to it) on the same request;
  whether its graph equals the applied one, on every silent wrong edit and 30 right ones (seeded);
* unread words: the request's words that no mention (``assistant.mentions``), no word of the reading's
  patterns and tables, and no filler word (articles, pronouns, politeness, the verbs of asking) accounts
  for; asking wherever there is one is "every explicit word accounted for" taken word by word.

Results go to ``bench/results/misreading.json``.  About 5 minutes on 2 cores.
"""

from __future__ import annotations

import json
import pathlib
import random
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]

# words that change no edit: articles, pronouns, auxiliaries, politeness, the verbs and nouns of asking for an edit
FILLER = frozenset("""
a an the this that these those it its itself them they their there here what which who whose
i me my we our us you your u ur is are was were be been being am do does did done have has had get got
can could would should will shall may might must need want like let please pls plz kindly thanks thank thx
hi hey hello ok okay so well now just also too yes sure and or of in on at to into onto for from with w by as via
make made set put use using apply add adding give go turn try change model network net weights parameters
params architecture transformer config one layer layers block blocks part parts thing things way bit really very
""".split())


def known_words() -> frozenset[str]:
    """Every word a rule of the reading names: the words of the patterns (``re`` calls) and of the tables (set,
    list, tuple and dict literals) in ``assistant.reading``, ``assistant.mentions`` and ``gnn.vocab``."""
    import ast
    import re

    words: set[str] = set()
    for name in ("assistant/reading.py", "assistant/mentions.py", "gnn/vocab.py"):
        for node in ast.walk(ast.parse((ROOT / name).read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in (
                    "compile", "search", "match", "fullmatch", "finditer", "findall", "sub"):
                texts = [c.value for c in ast.walk(node) if isinstance(c, ast.Constant) and isinstance(c.value, str)]
            elif isinstance(node, (ast.Set, ast.List, ast.Tuple, ast.Dict)):
                texts = [c.value for c in (node.keys + node.values if isinstance(node, ast.Dict) else node.elts)
                         if isinstance(c, ast.Constant) and isinstance(c.value, str)]
            else:
                continue
            for text in texts:  # r"\bafter": the word, not the escape
                words |= set(re.findall(r"[a-z][a-z0-9_]*", re.sub(r"\\[a-zA-Z]", " ", text).lower()))
    return frozenset(words)


def unread(request: str, depth: int, known: frozenset[str]) -> list[str]:
    """The words of ``request`` that no mention covers and that are neither known to a rule nor filler."""
    import re

    from assistant.mentions import _TOKEN, mentions

    spans = [(m.start, m.end) for m in mentions(request, depth)]
    out = []
    for t in _TOKEN.finditer(request):
        word = t.group().lower()
        if not re.match(r"[a-z]", word) or word in FILLER or any(a <= t.start() and t.end() <= b for a, b in spans):
            continue
        if not all(part in known for part in re.findall(r"[a-z][a-z0-9_]*", word)) and word not in out:
            out.append(word)
    return out


def main(argv: list[str] | None = None) -> int:
    from assistant import reading
    from assistant.facts import facts
    from assistant.graph_tokens import graph_placeholder, graph_tokens
    from assistant.interpret import Assistant
    from assistant.prompting import messages
    from assistant.retrieval import encoder
    from assistant.training.evaluate_requests import graphs
    from gnn.edits import apply_program
    from gnn.errors import MadError
    from gnn.fileio import write_text
    from gnn.ir.graph import graph_key

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

    known = known_words()
    flagged = [bool(unread(r["request"], reading.depth_of(facts(base[r["model"]])), known)) for r in applied]
    words = {"wrong_caught": f"{sum(f for f, r in zip(flagged, applied) if r['silent_wrong'])}/{len(wrong)}",
             "right_flagged": f"{sum(f for f, r in zip(flagged, applied) if not r['silent_wrong'])}/{len(right)}"}

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
           "similarity": similarity, "unread_words": words,
           "second_reader": {"wrong_where_it_disagrees": f"{sum(not s['model_agrees'] for s in w)}/{len(w)}",
                             "right_where_it_agrees": f"{sum(s['model_agrees'] for s in c)}/{len(c)}",
                             "rows": second}}
    write_text(ROOT / "bench" / "results" / "misreading.json", json.dumps(out, indent=1) + "\n")
    print(json.dumps({k: v for k, v in out.items() if k != "second_reader"} | {
        "second_reader": {k: v for k, v in out["second_reader"].items() if k != "rows"}}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
