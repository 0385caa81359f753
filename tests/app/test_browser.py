"""The chat app in a real browser (issue 6): Debian's Chromium driven by Playwright picks a small Llama,
asks for LoRA on the last layer, sees the reading linked to the request's words (issue 20), the validated
graph and the diff, downloads the ONNX file (which passes onnx.checker) and undoes the edit."""

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


def test_lora_on_the_last_layer_then_onnx_then_undo(page, tmp_path):
    import onnx

    page.locator("#source textarea, #source input").first.fill("hf:llama")
    page.locator("#overrides textarea, #overrides input").first.fill(TINY_LLAMA)
    page.locator("#load").click()
    page.wait_for_selector("#graph .status.ok")  # the loaded graph, validated
    assert "Loaded **hf:llama**" not in _chat_text(page)  # markdown is rendered, not shown raw
    page.wait_for_function("document.querySelector('#chat').innerText.includes('Loaded hf:llama')")
    assert page.locator("#graph details").count() > 10  # the composite hierarchy
    assert page.locator("#graph details[open]").count() == 1  # collapsed below the root

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
    assert page.locator("#graph .status.ok").count() == 1
    added = page.locator("#graph details.added")
    assert added.count() > 0 and all("layers.1" in p for p in added.evaluate_all("e => e.map(x => x.dataset.path)"))

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

    page.locator("#undo").click()
    page.wait_for_function("document.querySelector('#chat').innerText.includes('Undone')")
    page.wait_for_function("document.querySelectorAll('#graph details.added').length === 0")
    assert "0 edit(s) applied" in page.locator("#status").inner_text()
