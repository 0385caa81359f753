"""The shipped graph model: where its checkpoint is, saving and loading it, encoding a graph and its node roles.

The checkpoint is ``gnn/checkpoint`` (``MAD_GNN_CHECKPOINT`` names another), rebuilt by
``python -m gnn.training.train``; it is a safetensors file and a ``config.json`` holding the
model's config and its op vocabulary.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import pathlib

import torch

from gnn.errors import MadError
from gnn.ir.graph import Graph
from gnn.nn.model import GraphModel, GraphModelConfig
from gnn.vocab import NODE_ROLES

CHECKPOINT = pathlib.Path(__file__).resolve().parents[1] / "checkpoint"


def checkpoint_path() -> pathlib.Path:
    """The checkpoint the library uses: ``MAD_GNN_CHECKPOINT``, or the shipped one."""
    return pathlib.Path(os.environ.get("MAD_GNN_CHECKPOINT") or CHECKPOINT)


def save(model: GraphModel, directory: str | pathlib.Path, vocab_ops: list[str], extra: dict | None = None) -> None:
    from safetensors.torch import save_file

    from gnn.fileio import staged

    directory = pathlib.Path(directory)
    meta = {"config": dataclasses.asdict(model.config), "ops": vocab_ops, **(extra or {})}
    with staged([directory / "model.safetensors", directory / "config.json"]) as (weights, config):
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(weights))
        config.write_text(json.dumps(meta, indent=1) + "\n")


def load(directory: str | pathlib.Path) -> tuple[GraphModel, dict]:
    from safetensors.torch import load_file

    directory = pathlib.Path(directory)
    meta = json.loads((directory / "config.json").read_text())
    model = GraphModel(GraphModelConfig(**meta["config"]))
    model.load_state_dict(load_file(str(directory / "model.safetensors")))
    return model.eval(), meta


@functools.cache
def _cached(path: str) -> tuple[GraphModel, dict]:
    if not (pathlib.Path(path) / "model.safetensors").exists():
        raise MadError(f"no trained graph model at `{path}`; build it with `python -m gnn.training.build` "
                       "and `python -m gnn.training.train`")
    return load(path)


@torch.no_grad()
def encode(graph: Graph):
    """``(model, node embeddings, tokens)`` of ``graph`` under the checkpoint (loaded once per path)."""
    from gnn.nn.tokens import OpVocab, tokenize

    model, meta = _cached(str(checkpoint_path()))
    tokens = tokenize(graph, OpVocab(meta["ops"]), walk_steps=model.config.walk_steps)
    return model, model.encode(tokens.to_data()), tokens


@torch.no_grad()
def predict_node_probs(graph: Graph) -> torch.Tensor:
    """Role probabilities (N, len(NODE_ROLES)) for every node, in node order."""
    model, x, _ = encode(graph)
    return model.role_head(x).softmax(-1)


def predict_node_roles(graph: Graph) -> tuple[list[str], list[float]]:
    """A role and its probability for every node, in node order."""
    conf, idx = predict_node_probs(graph).max(-1)
    return [NODE_ROLES[i] for i in idx.tolist()], [round(float(c), 4) for c in conf]
