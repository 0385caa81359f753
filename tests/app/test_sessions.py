"""Ten browser sessions editing at once through the running app (issue 6): each keeps its own graph,
history and conversation; nothing bleeds between them and nothing is lost."""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor

from tests.app.conftest import TINY_LLAMA

SESSIONS = 10


def _params(status: str) -> int:
    return int(re.search(r"([\d,]+) parameters", status).group(1).replace(",", ""))


def _edits(i: int) -> list[dict]:
    """A different program sequence per session: depth, LoRA rank and dropout all depend on ``i``."""
    return [{"edits": [{"op": "insert_layers", "target": {"layers": [-1]}, "count": i % 3 + 1}]},
            {"edits": [{"op": "add_lora", "r": i + 1}]},
            {"edits": [{"op": "add_dropout", "target": {"roles": ["attn"]}, "p": 0.1}]}]


def _expected(i: int) -> int:
    from assistant.ui.chat import Session

    s = Session()
    s.load("hf:llama", TINY_LLAMA)
    for program in _edits(i)[:2]:  # the third is undone below
        reply = s.send(json.dumps(program))["text"]
        assert reply.startswith("**Done.**"), reply
    return s.graph.num_parameters


def _session(url: str, i: int) -> dict:
    from gradio_client import Client

    client = Client(url, verbose=False)
    client.predict("hf:llama", TINY_LLAMA, None, [], api_name="/load")
    for program in _edits(i):
        client.predict(json.dumps(program), [], api_name="/send")
    _, _, status = client.predict([], api_name="/undo")
    file, _ = client.predict([], api_name="/download_conversation")
    path = file["value"] if isinstance(file, dict) else file  # an update: the file in the server's cache
    with open(path) as f:
        return {"status": status, "conversation": json.load(f)}


def test_ten_sessions_edit_at_once_without_bleeding(app_url):
    with ThreadPoolExecutor(SESSIONS) as pool:
        results = list(pool.map(lambda i: _session(app_url, i), range(SESSIONS)))
    expected = {i: _expected(i) for i in range(SESSIONS)}
    for i, r in enumerate(results):
        assert _params(r["status"]) == expected[i], (i, r["status"])
        assert "2 edit(s) applied" in r["status"]
        messages = r["conversation"]["messages"]
        sent = [m["content"] for m in messages if m["role"] == "user"]
        assert sent == [json.dumps(p) for p in _edits(i)]  # its own requests, all of them, in order
        programs = [m["program"] for m in messages if "program" in m]
        assert [p["edits"][0]["op"] for p in programs] == ["insert_layers", "add_lora", "add_dropout"]
        assert programs[1]["edits"][0]["r"] == i + 1
    assert len({_params(r["status"]) for r in results}) > 3  # sessions really differed
