"""Take docs/app.png: the app after "add LoRA to the last layer" on a small Llama, one block opened.

    .venv/bin/python docs/screenshot.py        (needs /usr/bin/chromium: bash .ci/setup.sh --browser)
"""

from __future__ import annotations

import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    import tempfile

    from playwright.sync_api import sync_playwright

    from tests.app.conftest import TINY_LLAMA, serve
    from tests.app.test_browser import CHROMIUM, FLAGS

    with serve(pathlib.Path(tempfile.mkdtemp()) / "app.log") as url:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
            page = browser.new_page(viewport={"width": 1500, "height": 1450})
            page.set_default_timeout(180_000)
            page.goto(url)
            page.locator("#source textarea, #source input").first.fill("hf:llama")
            page.locator("#overrides textarea, #overrides input").first.fill(TINY_LLAMA)
            page.locator("#load").click()
            page.wait_for_selector("#graph .status.ok")
            box = page.locator("#message textarea").first
            box.fill("add LoRA to the last layer")
            box.press("Enter")
            page.wait_for_function("document.querySelector('#chat').innerText.includes('Done.')")
            page.evaluate("""() => { for (const p of ['model', 'model.layers', 'model.layers.1',
                'model.layers.1.self_attn', 'model.layers.1.self_attn.q_proj']) {
                document.querySelector(`#graph details[data-path="${p}"]`).open = true; }
                window.scrollTo(0, 0); }""")
            page.wait_for_timeout(500)
            page.screenshot(path=str(ROOT / "docs" / "app.png"), full_page=False)
            browser.close()
    print(ROOT / "docs" / "app.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
