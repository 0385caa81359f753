"""Graph tokens: the graph model's composite embeddings in the language model's prompt, as in InstructGLM.

A prompt carries one ``<graph>`` placeholder per composite of the graph (a block, an embedding, a
head; at most :data:`MAX_GRAPH_TOKENS`, longer runs pooled); the graph model
(:mod:`gnn.nn.checkpoint`) embeds each composite and a trained two-layer MLP (:class:`Projector`)
maps the embeddings into the language model's embedding space, where they take the placeholders'
places.  Training (:mod:`assistant.training.train_llm`) and interpretation share these pieces.
"""

from __future__ import annotations

import torch
from torch import nn

GRAPH_TOKEN = "<graph>"
MAX_GRAPH_TOKENS = 48


def graph_tokens(graph):
    """The graph model's composite embeddings (C, d_graph) for ``graph``, one per composite (None without a checkpoint)."""
    from gnn.nn.checkpoint import checkpoint_path, encode

    if not (checkpoint_path() / "model.safetensors").exists():
        return None
    model, x, tokens = encode(graph)
    with torch.no_grad():
        return model.composite_tokens(x, tokens.composite).half()


class Projector(nn.Module):
    """Graph-model composite embeddings -> the language model's embedding space."""

    def __init__(self, d_graph: int, d_model: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d_graph, d_model), nn.GELU(), nn.Linear(d_model, d_model))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def graph_placeholder(n: int) -> str:
    return GRAPH_TOKEN * min(n, MAX_GRAPH_TOKENS)


def pool_tokens(tokens: torch.Tensor) -> torch.Tensor:
    """At most :data:`MAX_GRAPH_TOKENS` graph tokens: longer runs are averaged in even groups."""
    if len(tokens) <= MAX_GRAPH_TOKENS:
        return tokens
    groups = torch.arange(len(tokens)) * MAX_GRAPH_TOKENS // len(tokens)
    out = torch.zeros(MAX_GRAPH_TOKENS, tokens.shape[1], dtype=tokens.dtype)
    out.index_add_(0, groups, tokens)
    return out / torch.bincount(groups, minlength=MAX_GRAPH_TOKENS).unsqueeze(1).to(tokens.dtype)


def add_graph_token(tokenizer) -> int:
    if GRAPH_TOKEN not in tokenizer.get_vocab():
        tokenizer.add_special_tokens({"additional_special_tokens": [GRAPH_TOKEN]})
    return tokenizer.convert_tokens_to_ids(GRAPH_TOKEN)


def embed_with_graph(model, ids: torch.Tensor, graph_id: int, graph: list[torch.Tensor | None],
                     projector: Projector | None) -> torch.Tensor:
    """Input embeddings for ``ids`` (B, T) with each row's placeholders replaced by its projected graph tokens."""
    embed = model.get_input_embeddings()
    mask = ids == graph_id
    x = embed(ids.masked_fill(mask, 0))
    if projector is None or not mask.any():
        return x
    rows = []
    for b, tokens in enumerate(graph):
        n = int(mask[b].sum())
        if n:
            rows.append(projector(pool_tokens(tokens.float())[:n].to(x.device)).to(x.dtype))
    return x.masked_scatter(mask.unsqueeze(-1), torch.cat(rows))
