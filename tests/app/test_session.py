"""A chat session without the browser (issue 6): loading, routing of messages, undo/redo/reset, downloads,
and every bad upload or request answered with one line while the graph stays as it was."""

from __future__ import annotations

import json

import pytest

from assistant.ui.chat import Session
from tests.app.conftest import TINY_LLAMA

LORA_LAST = json.dumps({"edits": [{"op": "add_lora", "target": {"layers": [-1]}}]})


@pytest.fixture
def session():
    s = Session()
    s.load("hf:llama", TINY_LLAMA)
    yield s
    s.close()


def test_edit_undo_redo_reset_and_what_changed(session):
    before = session.graph.num_parameters
    reply = session.send(LORA_LAST)
    assert reply["text"].startswith("**Done.**") and reply["program"]["edits"][0]["op"] == "add_lora"
    assert "trainable: 90,432 → 1,792" in reply["text"]
    assert '"add_lora"' in session.send("what changed?")["text"]
    session.send(json.dumps({"edits": [{"op": "remove_layers", "target": {"layers": [0]}}]}))
    assert session.undo().startswith("Undone") and session.graph.num_trainable_parameters == 1_792
    assert session.redo().startswith("Redone") and session.edits == 2
    assert session.send("reset")["text"] == "Back to hf:llama as loaded." and session.graph.num_parameters == before
    assert session.undo() == "Nothing to undo." and session.redo() == "Nothing to redo."


def test_a_new_edit_after_undo_drops_the_redo_branch(session):
    session.send(LORA_LAST)
    session.undo()
    session.send(json.dumps({"edits": [{"op": "freeze"}]}))
    assert session.redo() == "Nothing to redo." and session.graph.num_trainable_parameters == 0


def test_yes_makes_the_edit_a_question_offered(session, monkeypatch):
    """An edit the assistant was unsure of comes back as "Did you mean ...?"; "yes" next makes it, anything
    else drops the offer. (The model's answer is fixed here; the model itself is tested in test_interpret.)"""
    from assistant.ui import chat
    from assistant.interpret import Outcome

    program = {"edits": [{"op": "insert_layers", "target": {"layers": [-1]}, "count": 1}]}

    class Unsure:
        def interpret(self, graph, text):
            return Outcome("ask", "Did you mean: add 1 more layer after the last layer? If not: ...", program=program)

    monkeypatch.setattr(chat, "assistant", lambda llm=None, log=None: Unsure())
    before = session.graph
    reply = session.send("make it more robust")
    assert reply["text"].startswith("**Question:** Did you mean") and "Say yes" in reply["text"]
    assert session.graph is before
    reply = session.send("yes")
    assert reply["text"].startswith("**Done.**") and reply["program"]["edits"][0]["op"] == "insert_layers"
    assert len(session.graph.nodes) > len(before.nodes) and session.step.request == "make it more robust"
    session.undo()
    session.send("make it more robust")
    session.send("how many kv heads?")  # not a yes: the offer is gone
    assert session.send("yes")["text"].startswith("**Question:**") and session.graph is before


def test_an_edit_in_words_is_said_back_linked_to_them(session, monkeypatch):
    """The reply states the program in plain words before the diff; the reading's HTML marks each part and the
    request's words it came from with the same mark. (The model's answer is cut off here, so the program is the
    words' own; the model itself is tested in test_interpret.)"""
    from assistant.interpret import Assistant
    from assistant.ui import chat

    words_only = Assistant.__new__(Assistant)
    words_only.projector, words_only.graph_id, words_only.beams, words_only.rerank_weight = None, None, 1, 0.0
    words_only.generate = lambda chat, tokens=None, request=None, schema=None: "{"
    monkeypatch.setattr(chat, "assistant", lambda llm=None, log=None: words_only)
    reply = session.send("LoRA r=4 on q and v of the last layer")
    assert reply["text"].startswith("**Done.** I read that as: LoRA r=4 on query projection and value projection "
                                    "of layer 1.\n- parameters:")
    html = reply["reading"]
    assert '<mark class="mad-link mad-link-0" title="0">r=4</mark>' in html and html.count("mad-link-0") == 2
    assert '<mark class="mad-link mad-link-3" title="3">last layer</mark>' in html
    edit = session.conversation[-1]["program"]["edits"][0]  # as the engine ran it, defaults filled in
    assert (edit["op"], edit["r"], edit["target"]) == ("add_lora", 4, {"layers": [1], "roles": ["attn.q", "attn.v"]})


def test_questions_and_descriptions_come_from_the_graph(session):
    assert session.send("how many kv heads?")["text"].startswith("Grouped-query attention: 4 query heads, 2 key/value")
    assert "decoder-only transformer with 2 repeated blocks, width 64" in session.send("describe this model")["text"]


def test_the_view_draws_the_graph_and_marks_the_last_edit(session):
    import re

    from assistant.ui.chat import toggle

    view = session.view()
    assert "valid: " in view and "<svg" in view and f'data-token="{session.token}"' in view
    assert re.search(r'<g id="f:model.layers" class="node madbox ?"', view)  # the stack folded, unmarked
    session.send(LORA_LAST)
    view = session.view()
    assert re.search(r'<g id="f:model.layers" class="node madbox added"', view)  # the fold holds the new LoRA
    view = toggle([session.token, "f:model.layers"])  # a click on the fold, as the browser sends it
    assert re.search(r'<g id="c:model.layers.1" class="node madbox added"', view)
    assert re.search(r'<g id="c:model.layers.0" class="node madbox ?"', view)  # the block the edit left alone
    view = toggle([session.token, "o:model.layers"])  # a click on the open frame folds the stack again
    assert '<g id="f:model.layers"' in view
    assert "session has ended" in toggle(["not-a-session", "f:model.layers"])


def test_compare_with_another_model_and_with_the_graph_as_loaded(session):
    with pytest.raises(Exception, match="nothing to compare: no edits yet"):
        session.compare("")
    text = session.compare("hf:mistral")  # the loaded model's overrides apply to it too
    assert text.startswith("**Comparison**") and "- sliding window (config): none vs 4096" in text
    assert "hf:llama vs hf:mistral" in text and "MistralDecoderLayer" in session.view()
    session.send(json.dumps({"edits": [{"op": "remove_layers", "target": {"layers": [-1]}}]}))
    assert "MistralDecoderLayer" not in session.view()  # an edit shows the session's own graph again
    text = session.compare("")
    assert "- layers: 2 vs 1" in text and "hf:llama as loaded vs now" in text
    assert "model.layers.1" in session.view()  # the removed block listed in the drawing


def test_config_download_of_a_depth_edit(session):
    with pytest.raises(Exception, match="no edits yet"):
        session.download("code")
    session.send(json.dumps({"edits": [{"op": "remove_layers", "target": {"layers": [-1]}}]}))
    session.send(json.dumps({"edits": [{"op": "set_kv_heads", "kv_heads": 1}]}))
    config = json.loads(session.download("config").read_text())  # both edits, in one config
    assert (config["num_hidden_layers"], config["num_key_value_heads"], config["model_type"]) == (1, 1, "llama")


def test_downloads(session, tmp_path):
    import onnx

    with pytest.raises(Exception, match="no LoRA in this graph"):
        session.download("lora")
    session.send(LORA_LAST)
    config = json.loads(session.download("lora").read_text())
    assert config["r"] == 8 and config["layers_to_transform"] == [1]
    onnx.checker.check_model(onnx.load(str(session.download("onnx"))), full_check=True)
    graph = json.loads(session.download("graph").read_text())
    assert graph["name"] == "LlamaForCausalLM"
    with pytest.raises(Exception, match="no config.json for these edits: edit 0 .`add_lora`. is not a config setting"):
        session.download("config")
    snippet = session.download("code").read_text()  # proved on the rebuilt model before it is written
    assert "get_peft_model(model, lora)" in snippet and snippet.startswith("import copy")
    assert json.loads(session.download("explorer").read_text())["label"] == "LlamaForCausalLM"
    talk = json.loads(session.download("conversation").read_text())
    assert [m["role"] for m in talk["messages"]] == ["user", "assistant"] and talk["messages"][1]["program"]


@pytest.mark.parametrize("name, content, message", [
    ("model.pt", b"\x80\x04K\x01.", "upload an .onnx file, a MAD graph .json or a config.json"),
    ("notes.txt", b"hello", "upload an .onnx file, a MAD graph .json or a config.json"),
    ("graph.json", b"{not json", "is not valid JSON"),
    ("model.onnx", b"garbage bytes", "onnx"),
    ("config.json", json.dumps({"model_type": "no_such_type"}).encode(), "no_such_type"),
])
def test_bad_uploads_are_one_line_and_change_nothing(session, tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    graph = session.graph
    from gnn.errors import MadError

    with pytest.raises(MadError) as e:
        session.load(upload=str(path))
    assert message.lower() in str(e.value).lower() and "\n" not in str(e.value)
    assert session.graph is graph and session.source == "hf:llama"


def test_uploads_of_a_config_and_a_graph(session, tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"model_type": "gpt2", "n_layer": 1, "n_embd": 32, "n_head": 2, "vocab_size": 50}))
    assert "GPT2" in session.load(upload=str(path)) and session.graph.name.startswith("GPT2")
    saved = session.download("graph")
    other = Session()
    assert "Loaded" in other.load(upload=str(saved)) and other.graph.num_parameters == session.graph.num_parameters


def test_bad_requests_are_one_line_and_change_nothing(session):
    graph = session.graph
    reply = session.send(json.dumps({"edits": [{"op": "remove_layers", "target": {"layers": [0, 1]}}]}))
    assert reply["text"].startswith("**Error:**") and "\n" not in reply["text"] and session.graph is graph
    reply = session.send('{"edits": [')
    assert reply["text"].startswith("**Error:**") and session.graph is graph
    assert Session().send("add LoRA")["text"].startswith("Load a model first")
    with pytest.raises(Exception, match="no model given"):
        Session().load("")


def test_upload_size_limit(session, tmp_path, monkeypatch):
    import assistant.ui.chat as chat

    monkeypatch.setattr(chat, "MAX_UPLOAD_MB", 0.001)
    path = tmp_path / "graph.json"
    path.write_text(" " * 5000)
    with pytest.raises(Exception, match="over the 0.001 MB upload limit"):
        session.load(upload=str(path))


def test_the_app_binds_localhost_unless_told_and_warns():
    from app import host_warning

    assert host_warning("127.0.0.1") is None
    assert "anyone who can reach this address" in host_warning("0.0.0.0")


@pytest.mark.parametrize("index", range(6))
def test_every_example_loads_and_validates(index):
    from app import EXAMPLES
    from gnn.validate import validate

    source, overrides = EXAMPLES[index]
    s = Session()
    assert s.load(source, overrides).startswith(f"Loaded **{source}**")
    assert validate(s.graph).ok and 'class="status ok"' in s.view()
    s.close()


def test_an_invalid_upload_shows_its_shape_error_at_the_node(session):
    graph = json.loads(session.download("graph").read_text())
    mm = next(n for n in graph["nodes"] if n["op"] == "aten.mm.default")
    graph["values"][mm["outputs"][0]]["shape"] = [16, 99]  # the projection's recorded output shape is wrong
    path = session.folder / "broken.json"
    path.write_text(json.dumps(graph))
    s = Session()
    reply = s.load(upload=str(path))
    assert "**It fails validation**" in reply and "[shape]" in reply
    view = s.view()
    assert 'class="status bad"' in view
    box = view[view.index(f'<g id="n:{mm["id"]}" class="node madbox error"'):]  # drawn red, the frames around it open
    assert "[shape] output 0" in box[:box.index("</g>\n</g>")]
    s.close()


def test_app_handlers_turn_errors_into_chat_messages(tmp_path):
    import app

    bad = tmp_path / "weights.json"
    bad.write_text("{oops")
    state, chat, view, status, _ = app.load(None, "", "", str(bad), [])
    assert chat[-1].content.startswith("**Error:**") and "not valid JSON" in chat[-1].content
    assert status == "No model loaded."
    state, _, chat, reading, _, _ = app.send(state, "add LoRA", chat)
    assert reading == ""  # no edit, no reading
    assert chat[-1].content.startswith("Load a model first")
