"""Graph model benchmarks: role inference on the 8B graph and on a 50k-node graph, training throughput.

    python -m bench.gnn

Each measurement runs in a fresh process (peak memory is its VmHWM). Inference is
tokenization plus the model's node-role prediction, with the shipped checkpoint
(``gnn/checkpoint``; a randomly initialised model of the same configuration when
none is built: speed does not depend on the weights).  Results go to
``bench/results/gnn.json`` and the "Graph model" section of ``docs/benchmarks.md``.
"""

from __future__ import annotations

import json
import pathlib
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "gnn.json"


def _model():
    from gnn.nn.checkpoint import load
    from gnn.nn.model import GraphModel, GraphModelConfig
    from gnn.nn.tokens import OpVocab

    ck = ROOT / "gnn" / "checkpoint"
    if (ck / "model.safetensors").exists():
        model, meta = load(ck)
        return model, OpVocab(meta["ops"]), "shipped checkpoint"
    return GraphModel(GraphModelConfig(vocab_size=len(OpVocab()))).eval(), OpVocab(), "untrained (no checkpoint)"


def worker_infer(layers: int) -> dict:
    import torch

    from bench.run import LLAMA3_8B, _peak_gb
    from gnn.importers.hf import HFOptions, import_hf
    from gnn.nn.tokens import tokenize

    overrides = {**LLAMA3_8B, "num_hidden_layers": layers}
    graph = import_hf("hf:llama", HFOptions(overrides=overrides, max_ops=100_000))  # 470 layers: past the default
    model, vocab, which = _model()
    before = _peak_gb()
    with torch.no_grad():
        t = time.perf_counter()
        tokens = tokenize(graph, vocab)
        tokenize_s = time.perf_counter() - t
        x = model.encode(tokens.to_data())
        roles = model.role_head(x).argmax(-1)
        composite = model.composite_tokens(x, tokens.composite)
        total = time.perf_counter() - t
    return {"layers": layers, "nodes": len(graph.nodes), "composite_tokens": int(composite.shape[0]),
            "tokenize_s": round(tokenize_s, 3), "infer_s": round(total, 3), "peak_gb": round(_peak_gb(), 3),
            "peak_gb_before_inference": round(before, 3), "labelled": int(roles.numel()), "model": which,
            "threads": torch.get_num_threads()}


def worker_train(arch: str, graphs: int) -> dict:
    import torch

    from gnn.nn.model import GraphModelConfig
    from gnn.training.train import TrainConfig, datasets, train

    torch.manual_seed(0)
    data = datasets(TrainConfig())
    cfg = TrainConfig(GraphModelConfig(arch=arch), epochs=1, train_graphs=graphs, out=None)
    _, history = train(cfg, {"train": data["train"], "val": []}, progress=False)
    return {"arch": arch, "graphs": graphs, "graphs_per_s": history[-1]["graphs_per_s"], "threads": torch.get_num_threads()}


def _spawn(*args: str) -> dict:
    from bench.run import spawn

    return spawn("bench.gnn", *args, timeout=3600)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] == "--worker":
        kind, *rest = args[1:]
        sys.path.insert(0, str(ROOT))
        if kind == "infer":
            print(json.dumps(worker_infer(int(rest[0]))))
        else:
            print(json.dumps(worker_train(rest[0], int(rest[1]))))
        return 0
    res = {"inference": {"8B": _spawn("infer", "32"), "50k": _spawn("infer", "470")}}
    print(res, flush=True)
    res["training"] = [_spawn("train", arch, "300") for arch in ("gps", "gin", "gcn", "mlp")]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(res, indent=1) + "\n")
    from bench.run import RESULTS as MAIN
    from bench.run import gnn_lines, write_doc

    write_doc(json.loads(MAIN.read_text()))
    print("\n".join(gnn_lines(res)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
