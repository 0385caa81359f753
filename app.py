"""MAD's chat app: design an architecture in conversation, with its validated graph beside the chat.

    python app.py [--host 127.0.0.1] [--port 7860] [--llm PATH_OR_ID]

Pick a model (``hf:<type>`` with config overrides, a local config folder, or an uploaded
``.onnx``, graph ``.json`` or ``config.json``), then talk: "add LoRA to the last layer",
"describe this model", "how many KV heads?", "what changed?".  Each browser session has
its own graph, history and downloads (:class:`assistant.ui.chat.Session`); the language
model is loaded once and shared.  The app binds 127.0.0.1 unless ``--host`` says
otherwise.
"""

from __future__ import annotations

import argparse
import sys

import gradio as gr

from assistant.ui.chat import MAX_UPLOAD_MB, READING_CSS, Session, toggle
from assistant.ui.cli import _quiet
from assistant.ui.graph_view import CSS, DRAWING_CSS, DRAWING_JS

EXAMPLES = [  # small configs, so each imports in a second or two
    ["hf:llama", "num_hidden_layers=2 hidden_size=256 intermediate_size=512 num_attention_heads=8 "
                 "num_key_value_heads=4 vocab_size=1000"],
    ["hf:mistral", "num_hidden_layers=2 hidden_size=256 intermediate_size=512 num_attention_heads=8 "
                   "num_key_value_heads=2 vocab_size=1000"],
    ["hf:gpt2", "n_layer=2 n_embd=256 n_head=8 vocab_size=1000"],
    ["hf:bert", "num_hidden_layers=2 hidden_size=256 intermediate_size=512 num_attention_heads=8 vocab_size=1000"],
    ["hf:t5", "num_layers=2 num_decoder_layers=2 d_model=256 d_ff=512 num_heads=8 vocab_size=1000"],
    ["hf:vit", "num_hidden_layers=2 hidden_size=256 intermediate_size=512 num_attention_heads=8"],
]
LLM: str | None = None  # --llm, read by new sessions


def _session(state: Session | None) -> Session:
    return state if state is not None else Session(LLM)


def _error(e: Exception) -> str:
    """One line for the chat; a bug is named as one rather than shown as a traceback."""
    from gnn.errors import MadError

    if isinstance(e, MadError):
        return f"**Error:** {str(e).splitlines()[0]}"
    print(f"app: unexpected {type(e).__name__}: {e}", file=sys.stderr)
    return f"**Error:** something went wrong on our side ({type(e).__name__}: {str(e).splitlines()[0][:200]})"


def _status(s: Session) -> str:
    if s.graph is None:
        return "No model loaded."
    g = s.graph
    edits = s.edits
    return (f"**{s.source}** · {g.name} · {g.num_parameters:,} parameters ({g.num_trainable_parameters:,} trainable)"
            f" · {len(g.nodes):,} ops · {edits} edit(s) applied")


def load(state, source, overrides, upload, chat, progress=gr.Progress()):
    s = _session(state)
    progress(0.2, desc="importing the model")
    try:
        text = s.load(source, overrides, upload)
    except Exception as e:  # noqa: BLE001 - every error becomes a chat message
        text = _error(e)
    chat = (chat or []) + [gr.ChatMessage(role="assistant", content=text)]
    s.conversation.append({"role": "assistant", "content": text})
    return s, chat, s.view(), _status(s), gr.update(open=s.graph is None)  # examples fold once a model is in


def send(state, message, chat, progress=gr.Progress()):
    s = _session(state)
    chat = (chat or []) + [gr.ChatMessage(role="user", content=message)]
    try:
        reply = s.send(message, progress)
    except Exception as e:  # noqa: BLE001
        reply = {"text": _error(e), "program": None}
    chat.append(gr.ChatMessage(role="assistant", content=reply["text"]))
    reading = reply.get("reading", "")  # the last edit's reading, linked to the request's words
    if reply.get("program"):
        import json

        chat.append(gr.ChatMessage(role="assistant", content=f"```json\n{json.dumps(reply['program'], indent=1)}\n```",
                                   metadata={"title": "Edit program", "status": "done"}))
    return s, "", chat, reading, s.view(), _status(s)


def step(what: str):
    def run(state, chat):
        s = _session(state)
        text = getattr(s, what)() if s.graph is not None else "Load a model first."
        s.conversation.append({"role": "assistant", "content": text})
        chat = (chat or []) + [gr.ChatMessage(role="assistant", content=text)]
        return s, chat, s.view(), _status(s)
    return run


def download(what: str):
    def run(state, chat):
        s = _session(state)
        try:
            return s, gr.update(value=str(s.download(what)), visible=True), chat
        except Exception as e:  # noqa: BLE001
            text = _error(e)
            s.conversation.append({"role": "assistant", "content": text})
            return s, gr.update(value=None, visible=False), (chat or []) + [gr.ChatMessage(role="assistant",
                                                                                             content=text)]
    return run


def compare(state, other, chat, progress=gr.Progress()):
    s = _session(state)
    progress(0.2, desc="importing and comparing")
    try:
        text = s.compare(other)
    except Exception as e:  # noqa: BLE001
        text = _error(e)
    s.conversation.append({"role": "assistant", "content": text})
    return s, (chat or []) + [gr.ChatMessage(role="assistant", content=text)], s.view()


def open_explorer(state, chat, progress=gr.Progress()):
    s = _session(state)
    progress(0.3, desc="starting Model Explorer")
    try:
        link = s.explorer()
    except Exception as e:  # noqa: BLE001
        text = _error(e)
        return s, "", (chat or []) + [gr.ChatMessage(role="assistant", content=text)]
    html = (f'<a id="explorer-open" href="{link}" target="_blank" rel="noopener">Open {s.graph.name} in Model '
            "Explorer (a new tab, served on this machine)</a>")
    return s, html, chat


def build() -> gr.Blocks:
    from gnn.importers.hf import model_types

    with gr.Blocks(title="MAD: model architecture design") as demo:
        state = gr.State(None, delete_callback=lambda s: s.close() if s is not None else None)  # its temp folder
        with gr.Row(equal_height=True, elem_id="bar"):  # the model picker: one compact bar
            gr.Markdown("**MAD** · model architecture design", elem_id="brand")
            source = gr.Dropdown([f"hf:{t}" for t in model_types()], value=None, allow_custom_value=True,
                                 filterable=True, show_label=False, container=False, scale=3, elem_id="source",
                                 info=None, label="Model")
            overrides = gr.Textbox(show_label=False, container=False, scale=4, elem_id="overrides", label="Overrides",
                                   placeholder="config overrides: num_hidden_layers=2 hidden_size=256")
            upload = gr.UploadButton(f"Upload (≤ {MAX_UPLOAD_MB} MB)", file_types=[".onnx", ".json"],
                                     type="filepath", size="sm", scale=1, elem_id="upload")
            load_btn = gr.Button("Load", variant="primary", size="sm", scale=1, elem_id="load")
        with gr.Accordion("Examples", open=True, elem_id="examples") as examples:
            gr.Examples(EXAMPLES, inputs=[source, overrides], label=None)
        with gr.Row(elem_id="main"):
            with gr.Column(scale=2, min_width=400):
                chat = gr.Chatbot(label="Conversation", height="62vh", elem_id="chat")
                reading = gr.HTML("", elem_id="reading")
                message = gr.Textbox(show_label=False, placeholder='"add LoRA to the last layer", "describe this '
                                     'model", "how many KV heads?"', elem_id="message", submit_btn=True, lines=1)
                with gr.Row():
                    undo = gr.Button("Undo", elem_id="undo", size="sm")
                    redo = gr.Button("Redo", elem_id="redo", size="sm")
                    reset = gr.Button("Reset", elem_id="reset", size="sm")
                with gr.Row(equal_height=True):
                    other = gr.Textbox(show_label=False, container=False, scale=3, elem_id="compare-with",
                                       placeholder="compare with: hf:mistral, or blank for the graph as loaded")
                    compare_btn = gr.Button("Compare", size="sm", scale=1, elem_id="compare")
                with gr.Accordion("Downloads", open=False, elem_id="downloads"):
                    with gr.Row():
                        buttons = {what: gr.Button(label, size="sm", elem_id=f"dl-{what}") for what, label in
                                   (("graph", "Graph JSON"), ("onnx", "ONNX"), ("lora", "LoraConfig"),
                                    ("code", "Snippet (edit.py)"), ("config", "config.json"),
                                    ("explorer", "Model Explorer JSON"), ("conversation", "Conversation"))}
                    file = gr.File(label="File", visible=False, interactive=False, elem_id="file")
                explorer_btn = gr.Button("Open in Model Explorer", size="sm", elem_id="explorer")
                explorer_link = gr.HTML("", elem_id="explorer-link")
            with gr.Column(scale=3, min_width=480):
                status = gr.Markdown("No model loaded.", elem_id="status")
                view = gr.HTML('<div class="madg">No model loaded.</div>', elem_id="graph", js_on_load=DRAWING_JS,
                               server_functions=[toggle])
        load_btn.click(load, [state, source, overrides, gr.State(None), chat],
                       [state, chat, view, status, examples], api_name="load")
        upload.upload(load, [state, gr.State(""), overrides, upload, chat], [state, chat, view, status, examples])
        message.submit(send, [state, message, chat], [state, message, chat, reading, view, status], api_name="send")
        for what, button in (("undo", undo), ("redo", redo), ("reset", reset)):
            button.click(step(what), [state, chat], [state, chat, view, status], api_name=what)
        for what, button in buttons.items():
            button.click(download(what), [state, chat], [state, file, chat], api_name=f"download_{what}")
        compare_btn.click(compare, [state, other, chat], [state, chat, view], api_name="compare")
        explorer_btn.click(open_explorer, [state, chat], [state, explorer_link, chat], api_name="explorer")
    return demo


def host_warning(host: str) -> str | None:
    if host in ("127.0.0.1", "localhost", "::1"):
        return None
    return (f"warning: serving on {host}: anyone who can reach this address can use the app and read config "
            "folders on this machine by path")


def main(argv: list[str] | None = None) -> int:
    global LLM
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--llm", help="the language model (default: SmolLM2-135M-Instruct with the shipped adapter)")
    args = parser.parse_args(argv)
    _quiet()
    LLM = args.llm
    warning = host_warning(args.host)
    if warning:
        print(warning, file=sys.stderr)
    build().queue(default_concurrency_limit=4).launch(
        server_name=args.host, server_port=args.port, max_file_size=f"{MAX_UPLOAD_MB}mb", css=CSS.replace(
            "<style>", "").replace("</style>", "") + READING_CSS + DRAWING_CSS, show_error=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
