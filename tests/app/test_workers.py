"""No session can stall the others (issue 23): the app's imports and edits run in worker processes under a time
limit; a request past it is stopped with the session's graph as it was; a load test of nine ordinary sessions
beside one asking for a huge model."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from assistant.ui.chat import Session
from assistant.ui.workers import TimeLimit
from gnn.errors import SourceError
from tests.app.conftest import TINY_LLAMA

EDITS = [{"edits": [{"op": "add_lora", "r": 4}]},
         {"edits": [{"op": "insert_layers", "target": {"layers": [-1]}, "count": 1}]},
         {"edits": [{"op": "add_dropout", "target": {"roles": ["attn"]}, "p": 0.1}]}]


def test_a_request_past_the_time_limit_is_stopped_and_the_graph_kept(monkeypatch):
    s = Session()
    try:
        s.load("hf:llama", TINY_LLAMA)
        graph, history = s.graph, list(s.history.steps)
        monkeypatch.setenv("MAD_REQUEST_SECONDS", "1")
        start = time.perf_counter()
        with pytest.raises(TimeLimit, match=r"^that took longer than the 1 s limit and was stopped; nothing changed "
                                            r"\(MAD_REQUEST_SECONDS sets the limit\)$"):
            s.load("hf:llama", TINY_LLAMA.replace("num_hidden_layers=2", "num_hidden_layers=60"))
        assert time.perf_counter() - start < 15  # stopped near the limit, not after the whole trace
        assert s.graph is graph and s.history.steps == history and s.source == "hf:llama"
        reply = s.send(json.dumps({"edits": [{"op": "insert_layers", "count": 40}]}))  # an edit past it too
        assert reply["text"].startswith("**Error:** that took longer than the 1 s limit") and s.graph is graph
        monkeypatch.setenv("MAD_REQUEST_SECONDS", "soon")
        assert s.send(json.dumps(EDITS[0]))["text"] == ("**Error:** MAD_REQUEST_SECONDS='soon' is not a positive "
                                                        "number of seconds (default 120)")
        monkeypatch.delenv("MAD_REQUEST_SECONDS")
        assert s.send(json.dumps(EDITS[0]))["text"].startswith("**Done.**")  # the pool replaced the worker
        assert s.edits == 1
    finally:
        s.close()


def _ordinary(i: int) -> tuple[list[float], Session]:
    """A session: load a tiny Llama, three edits, undo one; the latency of each request."""
    s, times = Session(), []
    t = time.perf_counter()
    s.load("hf:llama", TINY_LLAMA)
    times.append(time.perf_counter() - t)
    for program in EDITS:
        t = time.perf_counter()
        assert s.send(json.dumps(program))["text"].startswith("**Done.**")
        times.append(time.perf_counter() - t)
    return times, s


def _heavy() -> list[str]:
    """A session asking, again and again, for a Llama of 5,000 layers: refused each time, nothing loaded."""
    s, said = Session(), []
    for _ in range(3):
        with pytest.raises(SourceError) as e:
            s.load("hf:llama", "num_hidden_layers=5000")
        said.append(str(e.value))
    assert s.graph is None
    return said


def _run(heavy: bool) -> tuple[float, list]:
    with ThreadPoolExecutor(10) as pool:
        refused = pool.submit(_heavy) if heavy else None
        done = list(pool.map(_ordinary, range(9)))
        said = refused.result() if refused else []
    assert all("estimated at 750,200 ops" in m for m in said)
    for times, s in done:  # nothing lost, nothing mixed: each has its own three edits, in order
        assert [step.program[0]["op"] for step in s.history.steps[1:]] == ["add_lora", "insert_layers", "add_dropout"]
        assert s.graph.meta["edits"][0]["r"] == 4 and len(s.history.steps) == 4
        s.close()
    return float(np.percentile([t for times, _ in done for t in times], 95)), done


def test_nine_ordinary_sessions_are_not_held_up_by_a_huge_request():
    _run(heavy=False)  # workers warm
    alone, _ = _run(heavy=False)
    beside, _ = _run(heavy=True)
    assert beside <= 1.5 * alone, (alone, beside)
