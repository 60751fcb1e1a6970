"""A picture of a report: ``boucle report --screenshot`` opens the HTML in headless Chromium
(Debian's, through playwright), waits until every figure is drawn and saves a PNG."""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

from boucle.flows.cli.report_data import ReportError

__all__ = ["chromium", "screenshot"]


def chromium() -> str:
    """The Chromium to drive: ``$BOUCLE_CHROMIUM``, else ``chromium`` on the PATH (Debian's package)."""
    found = os.environ.get("BOUCLE_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        raise ReportError("no Chromium found: apt-get install chromium, or set BOUCLE_CHROMIUM to its path")
    return found


def screenshot(page: Path, png: Path, *, width: int = 1300, height: int | None = 1400) -> dict:
    """Open ``page`` in headless Chromium, wait until its plots are drawn, save a PNG of its top
    ``height`` pixels (None: the whole page). Returns what the browser saw: ``plots`` drawn,
    ``expected`` plots, ``errors`` (console errors and uncaught exceptions), ``headline``."""
    if importlib.util.find_spec("playwright") is None:
        raise ReportError("--screenshot drives Chromium with playwright, which is not installed: pip install playwright")
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium())
        try:
            tab = browser.new_page(viewport={"width": width, "height": height or 1400})
            tab.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            tab.on("pageerror", lambda e: errors.append(str(e)))
            tab.goto(Path(page).resolve().as_uri(), wait_until="load")
            expected = tab.locator("div[id^=fig-]").count()
            # Drawn when every figure div has plotly's layout and SVG: a state to wait on, not a delay.
            tab.wait_for_function("n => { const divs = [...document.querySelectorAll('div[id^=fig-]')];"
                                  " return divs.length >= n && divs.every(d => d._fullLayout && d.querySelector('.main-svg')); }",
                                  arg=expected)
            seen = {"plots": tab.locator(".js-plotly-plot").count(), "expected": expected,
                    "headline": tab.locator("#headline h2").inner_text(), "errors": errors}
            Path(png).parent.mkdir(parents=True, exist_ok=True)
            tab.screenshot(path=str(png), full_page=height is None)
        finally:
            browser.close()
    return seen
