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

from assistant.ui.chat import MAX_UPLOAD_MB, READING_CSS, Session
from assistant.ui.cli import _quiet
from assistant.ui.graph_view import CSS

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
    return s, chat, s.view(), _status(s), None


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


def build() -> gr.Blocks:
    with gr.Blocks(title="MAD: model architecture design") as demo:
        state = gr.State(None, delete_callback=lambda s: s.close() if s is not None else None)  # its temp folder
        gr.Markdown("## MAD: model architecture design\nPick a model, then ask for changes in words. Every result "
                    "is a validated graph you can download as JSON or ONNX.")
        with gr.Row():
            with gr.Column(scale=2, min_width=380):
                with gr.Group():
                    source = gr.Textbox(label="Model", placeholder="hf:llama, hf:<org>/<name>, or a config folder",
                                        elem_id="source")
                    overrides = gr.Textbox(label="Config overrides", placeholder="num_hidden_layers=2 hidden_size=256",
                                           elem_id="overrides")
                    upload = gr.File(label=f"...or upload .onnx, graph .json or config.json (≤ {MAX_UPLOAD_MB} MB)",
                                     file_types=[".onnx", ".json"], type="filepath", elem_id="upload", height=90)
                    load_btn = gr.Button("Load model", variant="primary", elem_id="load")
                gr.Examples(EXAMPLES, inputs=[source, overrides], label="Examples")
                chat = gr.Chatbot(label="Conversation", height=460, elem_id="chat")
                reading = gr.HTML("", elem_id="reading")
                message = gr.Textbox(label="Message", placeholder='"add LoRA to the last layer", "describe this model", '
                                     '"how many KV heads?"', elem_id="message", submit_btn=True)
                with gr.Row():
                    undo = gr.Button("Undo", elem_id="undo", size="sm")
                    redo = gr.Button("Redo", elem_id="redo", size="sm")
                    reset = gr.Button("Reset", elem_id="reset", size="sm")
                with gr.Accordion("Downloads", open=False, elem_id="downloads"):
                    with gr.Row():
                        buttons = {what: gr.Button(label, size="sm", elem_id=f"dl-{what}") for what, label in
                                   (("graph", "Graph JSON"), ("onnx", "ONNX"), ("lora", "LoraConfig"),
                                    ("conversation", "Conversation"))}
                    file = gr.File(label="File", visible=False, interactive=False, elem_id="file")
            with gr.Column(scale=3):
                status = gr.Markdown("No model loaded.", elem_id="status")
                view = gr.HTML('<div class="madg">No model loaded.</div>', elem_id="graph")
        load_btn.click(load, [state, source, overrides, upload, chat], [state, chat, view, status, upload],
                       api_name="load")
        message.submit(send, [state, message, chat], [state, message, chat, reading, view, status], api_name="send")
        for what, button in (("undo", undo), ("redo", redo), ("reset", reset)):
            button.click(step(what), [state, chat], [state, chat, view, status], api_name=what)
        for what, button in buttons.items():
            button.click(download(what), [state, chat], [state, file, chat], api_name=f"download_{what}")
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
            "<style>", "").replace("</style>", "") + READING_CSS, show_error=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
