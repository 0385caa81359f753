"""A behaviour snapshot, to show a restructuring changed nothing: run it on the tree before and after, then compare.

    python -m bench.snapshot OUT [--parts summary gnn prompts grammar llm coverage]   # ~15 minutes for all
    python -m bench.snapshot --compare BEFORE AFTER

What it writes into OUT, each part a file:

* ``summary8b.txt``, ``summary8b_json.txt``: ``mad summary`` of the Llama-3-8B shape;
* ``gnn.pt``, ``learned_*.json``: the shipped graph model's node embeddings and role probabilities on seven
  2-block graphs and a stripped ONNX export, the learned labeler's roles, and every task's predictions
  (``predict_all``) on six graph records;
* ``messages.json``: the prompts of three requests (with graph placeholders, and as a retry) and the answer schema;
* ``grammar.json``: every training phrasing and the training, held-out and development examples of two graphs;
* ``llm.json``: the shipped adapter's answers (every beam) on 12 held-out cases;
* ``coverage.md``: the coverage table of 50 sampled model types.

``--compare`` checks each file byte for byte, and tensors with ``torch.equal``.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import random
import subprocess
import sys
import tempfile

from bench.run import LLAMA3_8B

PARTS = ("summary", "gnn", "prompts", "grammar", "llm", "coverage")
GNN_TYPES = ("llama", "gpt2", "bert", "t5", "vit", "qwen2_moe", "whisper")


def _two_blocks(model_type: str, **overrides):
    from gnn.importers.hf import HFOptions, import_hf

    return import_hf(f"hf:{model_type}", HFOptions(overrides={"num_hidden_layers": 2, **overrides}, seq_len=8))


def summary(out: pathlib.Path) -> None:
    sets = [a for k, v in LLAMA3_8B.items() for a in ("--set", f"{k}={v}")]
    for name, extra in (("summary8b.txt", []), ("summary8b_json.txt", ["--json"])):
        r = subprocess.run([sys.executable, "-m", "assistant", "summary", "hf:llama", *sets, *extra],
                           capture_output=True, text=True)
        (out / name).write_text(r.stdout + r.stderr)


def gnn(out: pathlib.Path) -> None:
    import onnx
    import torch

    from gnn.exporters.onnx import save_onnx
    from gnn.importers.onnx import import_onnx
    from gnn.nn.checkpoint import CHECKPOINT, encode, load, predict_node_probs
    from gnn.roles import label
    from gnn.training import tasks
    from gnn.training.build import record
    from gnn.training.train import predict_all

    def roles_file(name, graph):
        roles = label(graph, "learned")
        (out / f"learned_{name}.json").write_text(json.dumps([roles.composites, roles.nodes, roles.confidence],
                                                             sort_keys=True))

    res = {}
    for t in GNN_TYPES:
        g = _two_blocks(t)
        _, x, _ = encode(g)
        res[t] = {"probs": predict_node_probs(g), "x": x}
        roles_file(t, g)
    g = _two_blocks("llama", hidden_size=64, intermediate_size=128, num_attention_heads=4, num_key_value_heads=2,
                    vocab_size=256)
    with tempfile.TemporaryDirectory() as d:
        path = pathlib.Path(d) / "m.onnx"
        save_onnx(g, path)
        m = onnx.load(path)
        for i, n in enumerate(m.graph.node):  # no names, no scopes: what another exporter might write
            n.name = f"n{i}"
            del n.metadata_props[:]
        onnx.save(m, path)
        stripped = import_onnx(path)
    res["stripped"] = {"probs": predict_node_probs(stripped)}
    roles_file("stripped", stripped)
    datas = []
    for t, kind in (("llama", "decoder"), ("gpt2", "decoder"), ("bert", "encoder"), ("t5", "encoder-decoder"),
                    ("qwen2", "decoder"), ("vit", "vision")):
        d = tasks.to_data(record(_two_blocks(t), "base", t, kind, "hf"))
        d.source_stripped = torch.tensor([False])
        datas.append(d)
    res["predict_all"] = predict_all(load(CHECKPOINT)[0], datas, batch_size=4)
    torch.save(res, out / "gnn.pt")


def prompts(out: pathlib.Path) -> None:
    from assistant.facts import facts
    from assistant.prompting import messages
    from assistant.schema import answer_schema

    f = facts(_two_blocks("llama"))
    chats = []
    for r in ("add LoRA to q and v of the last layer", "use {braces} and {{jinja}} here", "swap LayerNorm for RMSNorm"):
        chats.append(messages(f, r, graph_placeholder="<graph><graph>"))
        chats.append(messages(f, r, error="`kv_heads` must divide {x}", previous='{"action": "edit"}'))
    (out / "messages.json").write_text(json.dumps({"chats": chats, "schema": answer_schema()}, sort_keys=True))


def grammar(out: pathlib.Path) -> None:
    from assistant.facts import facts
    from assistant.training.instructions import GRAMMAR, INTENTS, VAGUE, examples, examples_for, train_phrasings

    dump = {"grammar": GRAMMAR, "vague": VAGUE, "train": {i: train_phrasings(i) for i in INTENTS}}
    for t in ("llama", "gpt2"):
        f = facts(_two_blocks(t))
        for held in (False, True):
            dump[f"{t}{held}"] = [e.__dict__ for e in examples(f, random.Random(1), held_out=held)]
        dump[f"{t}dev"] = [e.__dict__ for e in examples_for(f, random.Random(2), dev=True)]
    (out / "grammar.json").write_text(json.dumps(dump, sort_keys=True, default=str))


def llm(out: pathlib.Path) -> None:
    from assistant.interpret import Assistant
    from assistant.training.evaluate_llm import test_cases

    a = Assistant(log=lambda *_: None)
    rows = []
    for c in test_cases(types=3, per_type=4):
        o = a.interpret(c["graph"], c["request"])
        rows.append({"request": c["request"], "action": o.action, "answers": o.answers, "program": o.program})
    (out / "llm.json").write_text(json.dumps(rows, indent=1, sort_keys=True, default=str))


def coverage(out: pathlib.Path) -> None:
    import bench.coverage as cov
    from gnn.importers.hf import model_types
    from gnn.training.workers import spawn_map

    types = sorted(model_types())
    random.Random(0).shuffle(types)
    rows = list(spawn_map(cov.check_type, sorted(types[:50]), 2, per_child=25, ordered=True))
    cov.DOC = out / "coverage.md"
    cov.write_doc(rows)


def compare(a: pathlib.Path, b: pathlib.Path) -> list[str]:
    """One line per file of ``a``: same, or how it differs from ``b``'s."""
    import torch

    lines = []
    for path in sorted(a.iterdir()):
        other = b / path.name
        if not other.exists():
            lines.append(f"{path.name}: missing in {b}")
        elif path.suffix == ".pt":
            x, y = torch.load(path), torch.load(other)
            diff = [f"{k}.{kk}" for k in x for kk in x[k]
                    if not (k in y and kk in y[k] and all(torch.equal(p, q) for p, q in zip(_flat(x[k][kk]), _flat(y[k][kk]))))]
            lines.append(f"{path.name}: " + (f"differs in {', '.join(diff)}" if diff else "same tensors"))
        else:
            lines.append(f"{path.name}: " + ("same" if path.read_bytes() == other.read_bytes() else "DIFFERS"))
    return lines


def _flat(v):
    return list(v) if isinstance(v, tuple) else [v]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?")
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    parser.add_argument("--compare", nargs=2, metavar=("BEFORE", "AFTER"))
    args = parser.parse_args(argv)
    if args.compare:
        lines = compare(*map(pathlib.Path, args.compare))
        print("\n".join(lines))
        return 0 if all(line.endswith(("same", "same tensors")) for line in lines) else 1
    if not args.out:
        parser.error("give OUT, or --compare BEFORE AFTER")
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for part in args.parts:
        globals()[part](out)
        print(f"{part}: written", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
