"""The chat app in a real browser (issues 6, 20, 21): Debian's Chromium driven by Playwright picks a small Llama,
sees the drawn graph and opens a block, asks for LoRA on the last layer, sees the reading linked to the request's
words, the edit coloured in the drawing and the diff, downloads the ONNX file (which passes onnx.checker) and the
snippet, compares with hf:mistral and undoes the edit.

``MAD_SCREENSHOTS=docs/screenshots pytest tests/app/test_browser.py`` also saves the README's screenshots."""

from __future__ import annotations

import os

import pytest

from tests.app.conftest import TINY_LLAMA

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run"]


@pytest.fixture(scope="module")
def page(app_url):
    from playwright.sync_api import sync_playwright

    assert os.path.exists(CHROMIUM), ("the browser test needs Debian's Chromium: apt-get install chromium "
                                      "chromium-driver (.ci/setup.sh does it)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        page = browser.new_page(accept_downloads=True, viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(180_000)  # the first request loads the language model
        page.goto(app_url)
        yield page
        browser.close()


def _chat_text(page) -> str:
    return page.locator("#chat").inner_text()


def _shot(page, name: str) -> None:
    folder = os.environ.get("MAD_SCREENSHOTS")
    if folder:
        os.makedirs(folder, exist_ok=True)
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=os.path.join(folder, f"{name}.png"))


def test_lora_on_the_last_layer_then_onnx_then_undo(page, tmp_path):
    import onnx

    picker = page.locator("#source input").first  # the model bar's search over `mad types`
    picker.fill("hf:llama")
    picker.press("Enter")
    page.locator("#overrides textarea, #overrides input").first.fill(TINY_LLAMA)
    page.locator("#load").click()
    page.wait_for_selector("#graph .status.ok")  # the loaded graph, validated
    assert "Loaded **hf:llama**" not in _chat_text(page)  # markdown is rendered, not shown raw
    page.wait_for_function("document.querySelector('#chat').innerText.includes('Loaded hf:llama')")
    # the drawing: the stack folded into one box, the embeddings and the head beside it, shapes on the arrows
    page.wait_for_selector('#graph g.node[id="f:model.layers"]')
    assert page.locator('#graph g.node[id="c:model.embed_tokens"]').count() == 1
    assert "[1, 16, 64]" in page.locator("#graph svg").text_content()
    _shot(page, "loaded")
    page.locator('#graph g.node[id="f:model.layers"]').click()  # unfold the stack, then open its last block
    page.locator('#graph g.node[id="c:model.layers.1"]').click()
    page.wait_for_selector('#graph g.cluster[id="o:model.layers.1"]')
    assert page.locator('#graph g.node[id="c:model.layers.1.self_attn"]').count() == 1
    assert page.locator('#graph g.node[id="c:model.layers.1.mlp"]').count() == 1

    box = page.locator("#message textarea").first
    box.fill("add LoRA to the last layer")
    box.press("Enter")
    page.wait_for_function("document.querySelector('#chat').innerText.includes('Done.')")
    chat = _chat_text(page)
    page.locator("#chat").get_by_text("Edit program").last.click()  # the program it chose, folded under the reply
    page.wait_for_function("document.querySelector('#chat').innerText.includes('add_lora')")
    chat = _chat_text(page)
    assert '"layers":[1]' in chat.replace(" ", "").replace("\n", "")
    assert "I read that as: LoRA r=8 (peft's default) on peft's default target modules of layer 1." in chat
    # the reading beside the chat: the part "layer 1" and the words "last layer" it came from, marked alike
    marks = page.locator("#reading mark.mad-link-0")
    assert marks.count() == 2 and marks.all_inner_texts() == ["layer 1", "last layer"]
    assert "trainable: 90,432 →" in chat  # the diff: parameters before and after
    page.wait_for_selector("#graph g.node.added")
    assert page.locator("#graph .status.ok").count() == 1
    added = page.locator("#graph g.node.added").evaluate_all("e => e.map(x => x.id)")  # green where LoRA went
    assert added and all("model.layers.1." in box for box in added), added
    assert page.locator('#graph g.node[id="c:model.layers.0"].added').count() == 0
    _shot(page, "edited")

    page.locator("#downloads").get_by_text("Downloads").first.click()
    page.locator("#dl-onnx").click()
    link = page.locator("#file a").first
    link.wait_for()
    with page.expect_download() as info:
        link.click()
    path = tmp_path / "model.onnx"
    info.value.save_as(path)
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    assert any("lora_A" in n.name for n in model.graph.initializer)
    page.locator("#dl-code").click()  # the snippet that makes the same edit in one's own code (proved first)
    page.wait_for_selector('#file td.filename[aria-label="edit.py"]')
    with page.expect_download() as info:
        page.locator("#file a").first.click()
    snippet = tmp_path / "edit.py"
    info.value.save_as(snippet)
    assert "get_peft_model(model, lora)" in snippet.read_text()

    page.locator("#compare-with textarea, #compare-with input").first.fill("hf:mistral")
    page.locator("#compare").click()
    page.wait_for_function("document.querySelector('#chat').innerText.includes('Comparison')")
    page.wait_for_function("document.querySelector('#graph').innerText.includes('MistralDecoderLayer')")
    assert "hf:llama (edited) vs hf:mistral" in _chat_text(page)
    assert page.locator("#graph g.node.changed, #graph g.cluster").count() > 0
    _shot(page, "compared")

    page.locator("#undo").click()
    page.wait_for_function("document.querySelector('#chat').innerText.includes('Undone')")
    page.wait_for_selector('#graph g.cluster[id="o:model.layers.1"]')  # its own graph again, as it was opened
    page.wait_for_function("document.querySelectorAll('#graph g.node.added').length === 0")
    assert "0 edit(s) applied" in page.locator("#status").inner_text()
