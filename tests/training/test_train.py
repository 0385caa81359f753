"""Tasks, a few training steps of each model, the checkpoint round trip and the metrics."""

import json

import pytest
import torch

from gnn.training import tasks
from gnn.training.build import build_type, load_splits, record
from gnn.nn.checkpoint import load, save
from gnn.nn.model import GraphModel, GraphModelConfig
from gnn.nn.tokens import MASK, OpVocab
from gnn.training.train import TrainConfig, auroc, evaluate, macro_f1, size_batches, train


@pytest.fixture(scope="module")
def datas(graphs):
    out = []
    for family, kind in (("llama", "decoder"), ("gpt2", "decoder"), ("bert", "encoder"), ("t5", "encoder-decoder")):
        d = tasks.to_data(record(graphs[family], "base", family, kind, "hf"))
        d.source_stripped = torch.tensor([False])
        out.append(d)
    return out


def test_tasks_keep_graphs_consistent(datas):
    gen = torch.Generator().manual_seed(0)
    d = datas[0]
    m = tasks.mask_ops(d, gen)
    assert (m.op[m.masked] == MASK).all() and torch.equal(m.op_target, d.op) and m.masked.any()
    h = tasks.hide_edges(d, gen)
    assert h.edge_index.shape[1] + h.pos_edge_index.shape[1] == d.edge_index.shape[1]
    edges = set(map(tuple, d.edge_index.t().tolist()))
    assert not any(tuple(p) in edges for p in h.neg_edge_index.t().tolist())
    seen = set()
    for _ in range(20):
        c = tasks.corrupt(d, gen)
        seen.add(int(c.incomplete))
        assert (c.num_nodes < d.num_nodes) == bool(c.incomplete)
        assert c.edge_index.max() < c.num_nodes
    assert seen == {0, 1}
    p = tasks.complete(d, gen)
    node = int(p.completion_index)
    assert p.op[node] == MASK and p.completion_op == d.op[node] and (p.feats[node] == 0).all()
    assert not ((p.edge_index == node).any()) and p.comp_pos_edge_index.shape[1] > 0


def test_metrics():
    assert auroc(torch.tensor([0.9, 0.8, 0.1, 0.2]), torch.tensor([1, 1, 0, 0])) == 1.0
    assert auroc(torch.tensor([0.5, 0.5]), torch.tensor([1, 0])) == 0.5
    assert macro_f1(torch.tensor([0, 0, 1]), torch.tensor([0, 1, 1])) == pytest.approx((2 / 3 + 2 / 3) / 2)


def test_size_batches_cover_every_graph_once():
    gen = torch.Generator().manual_seed(0)
    batches = size_batches(list(range(10)), [5, 500, 7, 3000, 9, 11, 6000, 2, 4, 8], 4, gen, max_nodes=5000)
    flat = sorted(i for b in batches for i in b)
    assert flat == list(range(10)) and all(len(b) <= 4 for b in batches)


@pytest.mark.parametrize("arch", ["gps", "gin", "gcn", "mlp"])
def test_a_few_training_steps(datas, tmp_path, arch):
    cfg = TrainConfig(GraphModelConfig(arch=arch, hidden=16, layers=2, heads=2), epochs=2, batch_size=2,
                      out=str(tmp_path / arch))
    model, history = train(cfg, {"train": datas, "val": datas[:2]}, progress=False)
    assert len(history) == 2 and history[0]["graphs_per_s"] > 0
    assert all(torch.isfinite(torch.tensor(v)) for k, v in history[-1].items() if k.startswith("train_"))
    assert {"val_role_macro_f1", "val_masked_op_top1", "val_incomplete_auroc", "val_link_auroc"} <= set(history[-1])
    again, meta = load(tmp_path / arch)
    assert meta["config"]["arch"] == arch and len(meta["ops"]) == len(OpVocab()) - 2
    assert meta["history"] == json.loads(json.dumps(history))
    assert (tmp_path / arch / "curves.png").stat().st_size > 1000
    assert json.dumps(evaluate(again, datas[:2])) == json.dumps(evaluate(model.eval(), datas[:2]))


def test_checkpoint_is_written_atomically(tmp_path):
    model = GraphModel(GraphModelConfig(vocab_size=len(OpVocab()), hidden=8, layers=1, heads=1))
    save(model, tmp_path / "ck", OpVocab().ops)
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == ["config.json", "model.safetensors"]


def test_build_one_model_type():
    info = load_splits()["types"]["gpt2"]
    records, skipped = build_type("gpt2", info, onnx=True)
    variants = {r["variant"] for r in records}
    assert {"base", "depth3", "base+mqa", "base+lora", "base+adapter", "base+norm", "base+onnx"} <= variants
    stripped = next(r for r in records if r["source"] == "onnx-stripped")
    assert len(stripped["role"]) == len(stripped["op"]) and stripped["family"] == "gpt"
    assert not skipped or all(":" in s for s in skipped)


def test_the_command_line_is_the_config():
    import argparse

    from gnn.training.options import add_options, from_options
    from gnn.training.train import DERIVED

    parser = argparse.ArgumentParser()
    add_options(parser, TrainConfig, skip=DERIVED)
    cfg = from_options(parser.parse_args(["--arch", "gin", "--hidden", "16", "--epochs", "3", "--train-graphs", "5"]),
                       TrainConfig, skip=DERIVED)
    assert cfg == TrainConfig(GraphModelConfig(arch="gin", hidden=16), epochs=3, train_graphs=5)
    assert from_options(parser.parse_args([]), TrainConfig, skip=DERIVED) == TrainConfig()
    assert "--vocab-size" not in parser.format_help()
    assert "backbone: gps (GraphGPS)" in parser.format_help()  # each option's help is its field's
