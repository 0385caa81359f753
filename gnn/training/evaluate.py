"""Evaluate the graph transformer against baselines on held-out families: writes docs/gnn-eval.md.

    python -m gnn.training.evaluate [--seeds 0 1 2] [--epochs 6] [--train-graphs 1500] [--archs gps gin gcn mlp]

Every model (the graph transformer and the GIN, GCN and MLP baselines) is trained
with the same features, tasks, split and budget, once per seed, and scored on the
test split, whose families never appear in training.  The majority baseline
predicts the most frequent training class (and a constant score where the metric
is an AUROC).  The shipped checkpoint (``gnn/checkpoint``, trained longer by
``python -m gnn.training.train``) is scored on the same test set.
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib
import statistics
import sys
import time
from collections import Counter

import torch

ROOT = pathlib.Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "gnn-eval.md"
RESULTS = ROOT / "bench" / "results" / "gnn_eval.json"

TARGETS = {"role_macro_f1_stripped": 0.95, "masked_op_top1": 0.90, "incomplete_auroc": 0.95}
TASKS = {
    "role_macro_f1_stripped": "node roles, stripped ONNX graphs (macro-F1)",
    "role_macro_f1": "node roles, all test graphs (macro-F1)",
    "masked_op_top1": "masked op type (top-1)",
    "link_auroc": "masked edge recovery (AUROC)",
    "incomplete_auroc": "incomplete-graph detection (AUROC)",
    "completion_op_top1": "completion: op of a removed node (top-1)",
    "completion_link_auroc": "completion: wiring of a removed node (AUROC)",
    "kind_macro_f1": "architecture kind (macro-F1)",
}


def majority(train, test, seed: int = 1234) -> dict[str, float]:
    """The most frequent training class everywhere; a constant score for AUROC tasks."""
    from gnn.training.train import macro_f1, task_batches

    roles = Counter(int(r) for d in train for r in d.role)
    ops = Counter(int(o) for d in train for o in d.op)
    kinds = Counter(int(d.kind) for d in train)
    role_c, op_c, kind_c = roles.most_common(1)[0][0], ops.most_common(1)[0][0], kinds.most_common(1)[0][0]
    role_true = torch.cat([d.role for d in test])
    stripped = torch.cat([d.source_stripped.repeat(d.num_nodes) for d in test])
    kind_true = torch.cat([d.kind for d in test])
    # masked-op and completion targets: the same draws the models are scored on
    gen = torch.Generator().manual_seed(seed)
    op_true, comp_true = [], []
    for i in range(0, len(test), 16):
        b = task_batches(test[i:i + 16], gen)
        op_true.append(b["masked"].op_target[b["masked"].masked])
        comp_true.append(b["complete"].completion_op)
    op_true, comp_true = torch.cat(op_true), torch.cat(comp_true)
    return {
        "role_macro_f1": macro_f1(torch.full_like(role_true, role_c), role_true),
        "role_macro_f1_stripped": macro_f1(torch.full_like(role_true[stripped], role_c), role_true[stripped]),
        "masked_op_top1": float((op_true == op_c).float().mean()),
        "link_auroc": 0.5, "incomplete_auroc": 0.5, "completion_link_auroc": 0.5,
        "completion_op_top1": float((comp_true == op_c).float().mean()),
        "kind_macro_f1": macro_f1(torch.full_like(kind_true, kind_c), kind_true),
    }


def run(seeds, epochs: int, train_graphs: int | None, archs, hidden: int, layers: int, log=print) -> dict:
    from gnn.nn.checkpoint import load
    from gnn.nn.model import GraphModelConfig
    from gnn.training.build import cache_dir, load_splits
    from gnn.training.train import TrainConfig, datasets, evaluate, train

    data = datasets(TrainConfig())
    results: dict = {"methods": {}, "sizes": {k: len(v) for k, v in data.items()},
                     "types_built": [len(list(cache_dir().glob("*.pt"))), len(load_splits()["types"])],
                     "budget": {"epochs": epochs, "train_graphs_per_epoch": train_graphs, "hidden": hidden,
                                "layers": layers}}
    results["methods"]["majority"] = [majority(data["train"], data["test"])]
    for arch in archs:
        runs = []
        for seed in seeds:
            start = time.perf_counter()
            cfg = TrainConfig(GraphModelConfig(arch=arch, hidden=hidden, layers=layers), seed=seed, epochs=epochs,
                              train_graphs=train_graphs, out=None)
            model, history = train(cfg, {"train": data["train"], "val": []}, progress=False)
            metrics = evaluate(model, data["test"])
            metrics["train_seconds"] = round(time.perf_counter() - start, 1)
            metrics["graphs_per_s"] = history[-1]["graphs_per_s"]
            runs.append(metrics)
            log(f"{arch} seed {seed}: {json.dumps(metrics)}")
        results["methods"][arch] = runs
    checkpoint = ROOT / "gnn" / "checkpoint"
    if (checkpoint / "model.safetensors").exists():
        model, meta = load(checkpoint)
        results["shipped"] = {**evaluate(model, data["test"]), "train": meta.get("train", {})}
    return results


def _mean_std(values: list[float]) -> tuple[float, float]:
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return float("nan"), 0.0
    return statistics.fmean(values), statistics.pstdev(values) if len(values) > 1 else 0.0


def write_doc(results: dict) -> None:
    methods = results["methods"]
    names = list(methods)
    b = results["budget"]
    lines = [
        "# Graph model evaluation", "",
        "Generated by `python -m gnn.training.evaluate`. Test split: families never seen in training "
        f"({results['sizes']['test']} graphs; train {results['sizes']['train']}, val {results['sizes']['val']}; "
        "the split is `gnn/training/splits.json`)" + (
            f", from the {results['types_built'][0]} of {results['types_built'][1]} model types built so far"
            if results.get("types_built") and results["types_built"][0] < results["types_built"][1] else "") + ".",
        f"Every method: the same features, tasks and budget ({b['epochs']} epochs of "
        f"{b['train_graphs_per_epoch'] or 'all'} training graphs, hidden {b['hidden']}, {b['layers']} layers), "
        "mean ± std over seeds " + ", ".join(str(i) for i in range(len(methods[names[-1]]))) + ".", "",
        "| task | " + " | ".join(names) + " | GPS beats best baseline | target |",
        "|---|" + "---|" * (len(names) + 2),
    ]
    for key, title in TASKS.items():
        cells, means = [], {}
        for name in names:
            m, s = _mean_std([r[key] for r in methods[name]])
            means[name] = m
            cells.append(f"{m:.3f} ± {s:.3f}" if name != "majority" else f"{m:.3f}")
        gps = means.get("gps", float("nan"))
        best = max((v for k, v in means.items() if k != "gps" and not math.isnan(v)), default=float("nan"))
        beats = "yes" if gps > best else f"no ({gps - best:+.3f})"
        target = TARGETS.get(key)
        verdict = "" if target is None else (f"≥ {target}: " + ("met" if gps >= target else f"missed by {target - gps:.3f}"))
        lines.append(f"| {title} | " + " | ".join(cells) + f" | {beats} | {verdict} |")
    if "shipped" in results:
        s = results["shipped"]
        lines += ["", "## The shipped checkpoint (`gnn/checkpoint`)", "",
                  f"Trained by `python -m gnn.training.train` ({s['train'].get('epochs')} epochs). On the same test set:", "",
                  "| task | score |", "|---|---|"]
        lines += [f"| {TASKS[k]} | {s[k]:.3f} |" for k in TASKS]
        lines += ["", "Its training curves (losses, and metrics on the validation families per epoch):", "",
                  "![training curves](../gnn/checkpoint/curves.png)"]
    speed = [(n, _mean_std([r["graphs_per_s"] for r in methods[n]])[0]) for n in names if n != "majority"]
    lines += ["", "Training throughput in these runs (graphs per second, all task inputs of each graph, one CPU "
              "thread per run): " +
              ", ".join(f"{n} {v:.1f}" for n, v in speed) + "."]
    DOC.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--train-graphs", type=int, default=1500)
    parser.add_argument("--hidden", type=int, default=96)
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--archs", nargs="+", default=["gps", "gin", "gcn", "mlp"])
    parser.add_argument("--shipped-only", action="store_true",
                        help="re-score only the shipped checkpoint and rewrite the report from the stored results")
    args = parser.parse_args(argv)
    if args.shipped_only:
        from gnn.nn.checkpoint import load
        from gnn.training.train import TrainConfig, datasets, evaluate

        results = json.loads(RESULTS.read_text())
        model, meta = load(ROOT / "gnn" / "checkpoint")
        results["shipped"] = {**evaluate(model, datasets(TrainConfig())["test"]), "train": meta.get("train", {})}
    else:
        results = run(args.seeds, args.epochs, args.train_graphs, args.archs, args.hidden, args.layers)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    write_doc(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
