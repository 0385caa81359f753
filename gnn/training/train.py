"""Multi-task training and evaluation of the graph model.

    python -m gnn.training.train                          # the shipped model, gnn/checkpoint (defaults below)
    accelerate launch -m gnn.training.train               # the same on one or many GPUs

Every step runs the three task inputs of one batch (masked ops on graphs that may have
been cut, with roles, kind and incompleteness; hidden edges; completion) through the
model and sums the losses.
Training goes through ``accelerate`` (one CPU, one GPU or many, unchanged); the
checkpoint is written as safetensors with its config, the per-epoch metrics as
JSON and their curves as a plot.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import pathlib
import sys
import time
from dataclasses import dataclass

import torch

from gnn.nn.checkpoint import CHECKPOINT
from gnn.nn.heads import predictions
from gnn.nn.model import GraphModelConfig
from gnn.training import tasks


def _help(text: str, default=dataclasses.MISSING, **kw):
    return dataclasses.field(default=default, metadata={"help": text}, **kw)


@dataclass
class TrainConfig:
    model: GraphModelConfig = _help("the network (its vocab_size comes from the op vocabulary)",
                                    default_factory=GraphModelConfig)
    epochs: int = _help("passes over the (sampled) training graphs", 12)
    batch_size: int = _help("graphs per step, at most (size-bucketed batches hold about 8,000 nodes)", 16)
    lr: float = _help("AdamW's peak learning rate (linear warm-up, cosine decay)", 2e-3)
    weight_decay: float = _help("AdamW's weight decay", 1e-5)
    seed: int = _help("seeds the model's initialisation, the sampling and the task inputs", 0)
    max_nodes: int = _help("larger graphs are left out of training (evaluation keeps them)", 3000)
    train_graphs: int | None = _help("a random subset per epoch (None: all): keeps a rebuild under an hour", 2000)
    cache: str | None = _help("the dataset's folder (default: $MAD_CACHE/dataset or ~/.cache/mad/dataset)", None)
    out: str | None = _help("where the checkpoint goes (None: not saved)", str(CHECKPOINT))


# -- data -----------------------------------------------------------------------------------


def split_records(records: list[dict]) -> dict[str, list[dict]]:
    from gnn.training.build import load_splits

    types = load_splits()["types"]
    out = {"train": [], "val": [], "test": []}
    for r in records:
        out[types[r["model_type"]]["split"]].append(r)
    return out


def _batch(datas):
    from torch_geometric.data import Batch

    return Batch.from_data_list(datas)


def task_batches(datas, gen: torch.Generator) -> dict:
    """Three inputs per batch: corrupted-or-not graphs with masked ops (masked ops, roles, kind,
    incompleteness in one pass: masking ops leaves the wiring whole), hidden edges, completion."""
    return {
        "masked": _batch([tasks.mask_ops(tasks.corrupt(d, gen), gen) for d in datas]),
        "links": _batch([tasks.hide_edges(d, gen) for d in datas]),
        "complete": _batch([tasks.complete(d, gen) for d in datas]),
    }


# -- metrics --------------------------------------------------------------------------------


def auroc(scores: torch.Tensor, labels: torch.Tensor) -> float:
    """Area under the ROC curve (Mann-Whitney, ties counted half)."""
    pos, neg = scores[labels > 0.5], scores[labels <= 0.5]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    order = torch.cat([pos, neg]).argsort()
    ranks = torch.empty(len(order))
    ranks[order] = torch.arange(1, len(order) + 1, dtype=torch.float)
    allv = torch.cat([pos, neg])
    for v in allv.unique():  # average ranks of ties
        same = allv == v
        if same.sum() > 1:
            ranks[same] = ranks[same].mean()
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def macro_f1(pred: torch.Tensor, target: torch.Tensor) -> float:
    """Mean F1 over the classes present in ``target``."""
    scores = []
    for c in target.unique().tolist():
        tp = ((pred == c) & (target == c)).sum().item()
        fp = ((pred == c) & (target != c)).sum().item()
        fn = ((pred != c) & (target == c)).sum().item()
        scores.append(2 * tp / max(2 * tp + fp + fn, 1))
    return sum(scores) / max(len(scores), 1)


@torch.no_grad()
def predict_all(model, datas, seed: int = 1234, batch_size: int = 16) -> dict[str, tuple]:
    """Predictions and targets of every task on ``datas`` (task inputs drawn with ``seed``)."""
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    acc: dict[str, list] = {}

    def add(key, *tensors):
        acc.setdefault(key, [[] for _ in tensors])
        for slot, t in zip(acc[key], tensors):
            slot.append(t.detach().cpu())

    for i in range(0, len(datas), batch_size):
        chunk = datas[i:i + batch_size]
        clean = _batch(chunk)
        for task, (pred, target) in predictions(model, {"clean": clean, **task_batches(chunk, gen)}).items():
            add(task, pred, target, *([clean.source_stripped[clean.batch]] if task == "role" else []))
    return {k: tuple(torch.cat(s) for s in v) for k, v in acc.items()}


def metrics_of(pred: dict[str, tuple]) -> dict[str, float]:
    role_pred, role_true, stripped = pred["role"]
    out = {
        "role_macro_f1": macro_f1(role_pred, role_true),
        "role_macro_f1_stripped": macro_f1(role_pred[stripped], role_true[stripped]) if stripped.any() else float("nan"),
        "masked_op_top1": float((pred["op"][0] == pred["op"][1]).float().mean()),
        "link_auroc": auroc(*pred["link"]),
        "incomplete_auroc": auroc(*pred["incomplete"]),
        "completion_op_top1": float((pred["completion_op"][0] == pred["completion_op"][1]).float().mean()),
        "completion_link_auroc": auroc(*pred["completion_link"]),
        "kind_macro_f1": macro_f1(*pred["kind"]),
    }
    return {k: round(v, 4) for k, v in out.items()}


def evaluate(model, datas, seed: int = 1234) -> dict[str, float]:
    return metrics_of(predict_all(model, datas, seed))


# -- training -------------------------------------------------------------------------------


def datasets(cfg: TrainConfig, records: list[dict] | None = None) -> dict[str, list]:
    from gnn.training.build import load

    records = records if records is not None else load(cfg.cache)
    if not records:
        raise SystemExit("no dataset: build it first with `python -m gnn.training.build`")
    from gnn.training.build import load_splits

    kinds = {t: v["kind"] for t, v in load_splits()["types"].items()}
    out = {}
    for split, recs in split_records(records).items():
        datas = []
        for r in recs:
            d = tasks.to_data({**r, "kind": kinds[r["model_type"]]})  # the committed split's kind wins over a shard's
            d.source_stripped = torch.tensor([r["source"] == "onnx-stripped"])
            datas.append(d)
        out[split] = datas
    return out


def train(cfg: TrainConfig, data: dict[str, list] | None = None, progress: bool = True):
    from accelerate import Accelerator
    from tqdm import tqdm

    from gnn.nn.checkpoint import save
    from gnn.nn.model import GraphModel
    from gnn.nn.tokens import OpVocab

    torch.manual_seed(cfg.seed)
    accelerator = Accelerator()
    data = data or datasets(cfg)
    train_set = [d for d in data["train"] if d.num_nodes <= cfg.max_nodes]
    vocab = OpVocab()
    model = GraphModel(dataclasses.replace(cfg.model, vocab_size=len(vocab)))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    per_epoch = min(len(train_set), cfg.train_graphs or len(train_set))
    steps = cfg.epochs * math.ceil(per_epoch / cfg.batch_size / accelerator.num_processes)
    warmup = max(1, steps // 10)  # linear warm-up, cosine decay; batch counts vary a little with sizes

    def rate(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, steps - warmup))))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, rate)
    model, opt, sched = accelerator.prepare(model, opt, sched)
    gen = torch.Generator().manual_seed(cfg.seed)
    history = []
    bar = tqdm(total=steps, disable=not (progress and accelerator.is_main_process), desc=f"train {cfg.model.arch}")
    for epoch in range(cfg.epochs):
        model.train()
        order = torch.randperm(len(train_set), generator=gen)[:per_epoch].tolist()
        mine = order[accelerator.process_index::accelerator.num_processes]
        totals: dict[str, float] = {}
        start = time.perf_counter()
        for chunk_ids in size_batches(mine, [train_set[j].num_nodes for j in mine], cfg.batch_size, gen):
            chunk = [train_set[j] for j in chunk_ids]
            batch = {k: v.to(accelerator.device) for k, v in task_batches(chunk, gen).items()}
            parts = model(batch)
            loss = sum(parts.values())
            opt.zero_grad()
            accelerator.backward(loss)
            accelerator.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            for k, v in parts.items():
                totals[k] = totals.get(k, 0.0) + v.item() * len(chunk)
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}")
        row = {"epoch": epoch + 1, "seconds": round(time.perf_counter() - start, 1),
               "graphs_per_s": round(len(mine) / max(time.perf_counter() - start, 1e-9), 2),
               **{f"train_{k}": round(v / max(len(mine), 1), 4) for k, v in totals.items()}}
        if data.get("val"):
            row.update({f"val_{k}": v for k, v in evaluate(_inner(model), data["val"]).items()})
        history.append(row)
        if accelerator.is_main_process and progress:
            tqdm.write(json.dumps(row))
    bar.close()
    model = _inner(accelerator.unwrap_model(model))
    if cfg.out and accelerator.is_main_process:
        save(model, cfg.out, vocab.ops, {"train": dataclasses.asdict(cfg), "history": history})
        plot(history, pathlib.Path(cfg.out) / "curves.png")
    return model, history


def size_batches(ids: list[int], sizes: list[int], batch_size: int, gen: torch.Generator,
                 max_nodes: int = 8000) -> list[list[int]]:
    """Batches of graphs of similar size (global attention pads every graph to the batch's largest),
    at most ``batch_size`` graphs and about ``max_nodes`` nodes each, in random order."""
    ranked = [i for _, i in sorted(zip(sizes, ids))]
    size_of = dict(zip(ids, sizes))
    batches, current, total = [], [], 0
    for i in ranked:
        if current and (len(current) == batch_size or total + size_of[i] > max_nodes):
            batches.append(current)
            current, total = [], 0
        current.append(i)
        total += size_of[i]
    if current:
        batches.append(current)
    return [batches[k] for k in torch.randperm(len(batches), generator=gen).tolist()]


def _inner(model):
    return getattr(model, "module", model)


def plot(history: list[dict], path: pathlib.Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    for key in sorted(k for k in history[0] if k.startswith("train_")):
        a.plot(epochs, [h[key] for h in history], label=key[6:])
    a.set(title="training losses", xlabel="epoch", yscale="log")
    a.legend(fontsize=7)
    for key in sorted(k for k in history[0] if k.startswith("val_")):
        b.plot(epochs, [h[key] for h in history], label=key[4:])
    b.set(title="held-out (val) metrics", xlabel="epoch", ylim=(0, 1.02))
    b.legend(fontsize=7)
    fig.tight_layout()
    from gnn.fileio import staged

    with staged([path]) as (tmp,):
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)


DERIVED = ("vocab_size", "num_feats", "num_roles", "num_kinds")  # read off the data, not options


def main(argv: list[str] | None = None) -> int:
    from gnn.training.options import add_options, from_options

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_options(parser, TrainConfig, skip=DERIVED)
    cfg = from_options(parser.parse_args(argv), TrainConfig, skip=DERIVED)
    _, history = train(cfg)
    print(json.dumps(history[-1]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
