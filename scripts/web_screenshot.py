"""The manual's picture of the page: a site written by `edgecut deploy --web`, one text typed and classified,
in headless Chromium at 900x640.

    .venv/bin/python scripts/web_screenshot.py SITE docs/img/web-page.png
"""

from __future__ import annotations

import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

from edgecut.serving import web

TEXT = "A warm, funny and beautifully acted film that never outstays its welcome."


def main(site: Path, out: Path) -> None:
    with web.serve(site) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=web.CHROMIUM, args=list(web.CHROMIUM_FLAGS))
        page = browser.new_page(viewport={"width": 900, "height": 640})
        page.goto(url)
        page.evaluate("window.edgecutReady")
        page.fill("#text", TEXT)
        page.click("#classify")
        page.wait_for_function("document.getElementById('label').textContent.length > 0")
        out.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(out))
        browser.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
