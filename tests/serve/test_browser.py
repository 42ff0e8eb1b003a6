"""The drawing page in a real, headless Chromium against a real `digitlab serve` process:
draw a stroke with the mouse, see a prediction, the bars and the 28x28 preview; Clear resets.
Write a number of three digits on the wide number pad: the page shows what POST /read answers
for it, a frame round each digit; its own Clear, Read and Esc work on it alone.
And the Bengali-digit run (configs/bangla.toml, served with --lang bn): a ৭ drawn with the
mouse is read as ৭, and ৭০৭ written on the number pad as ৭০৭, on a page in Bengali.

Needs Playwright (pip) and Chromium at /usr/bin/chromium (apt-get install chromium);
skipped without them; the Bengali tests also need the shared CMATERdb files.
DIGITLAB_README_SCREENSHOT=1 also saves docs/images/serve.png and docs/images/serve-bn.png.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from helpers import free_port, stop_process

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-quic"]
IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"
README_SCREENSHOT = IMAGES / "serve.png"
BENGALI_SCREENSHOT = IMAGES / "serve-bn.png"
BENGALI_DIGITS = list("০১২৩৪৫৬৭৮৯")


# ---------------------------------------------------------------- server and browser


@pytest.fixture(scope="module")
def sync_api():
    if not CHROMIUM.is_file():
        pytest.skip("Chromium not installed: apt-get install chromium")
    try:
        from playwright import sync_api
    except ImportError:
        pytest.skip("Playwright not installed: pip install playwright")
    return sync_api


@contextmanager
def serving(run: Path, log: Path, cache: Path, lang: str | None = None):
    """`python -m digitlab [--lang LANG] serve RUN --port P` on loopback; its base URL once
    up."""
    port = free_port()
    env = dict(os.environ, DIGITLAB_CACHE=str(cache))
    env.pop("DIGITLAB_DATA", None)
    env.pop("DIGITLAB_LANG", None)
    language = ["--lang", lang] if lang else []
    proc = subprocess.Popen([sys.executable, "-m", "digitlab", *language, "serve", str(run),
                             "--port", str(port), "--device", "cpu"],
                            stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"the server exited with {proc.returncode}:\n{log.read_text()}")
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the server did not answer within 60 s:\n{log.read_text()}")
            time.sleep(0.25)
        yield base
    finally:
        stop_process(proc)


@pytest.fixture(scope="module")
def server(sync_api, digits_run, tmp_path_factory, session_cache):
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    with serving(digits_run, log, session_cache) as base:
        yield base


@pytest.fixture(scope="module")
def bangla_server(sync_api, request, tmp_path_factory, session_cache):
    """The session's bangla run, served in Bengali (--lang bn)."""
    # Asked for here, not as an argument: pytest sets up session fixtures first, and the run
    # (half a minute of training) is not wanted when there is no Chromium to show it.
    run = request.getfixturevalue("bangla_run")
    log = tmp_path_factory.mktemp("serve-bn") / "serve.log"
    with serving(run, log, session_cache, lang="bn") as base:
        yield base


@pytest.fixture(scope="module")
def browser(sync_api):
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                    args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def opened(browser, base: str):
    """A fresh page at `base`/; fails the test on a page error, a console error or a request
    that leaves the server."""
    context = browser.new_context(viewport={"width": 900, "height": 640},
                                  device_scale_factor=1)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error"
            and "status of 400" not in msg.text else None)  # a 400 is how "no digit" arrives
    outside: list[str] = []
    page.on("request", lambda req: outside.append(req.url)
            if not req.url.startswith((base, "data:", "blob:")) else None)
    page.goto(f"{base}/")
    yield page
    context.close()
    assert not outside, f"the page reached outside the server: {outside}"
    assert not errors, f"errors in the page: {errors}"


@pytest.fixture
def page(browser, server):
    with opened(browser, server) as page:
        yield page


@pytest.fixture
def bangla_page(browser, bangla_server):
    with opened(browser, bangla_server) as page:
        yield page


# ---------------------------------------------------------------- the tests


def draw(page, points: list[tuple[float, float]], pad: str = "#pad") -> None:
    """A mouse stroke through points given as fractions of the pad's size."""
    page.locator(pad).scroll_into_view_if_needed()
    box = page.locator(pad).bounding_box()
    xy = [(box["x"] + fx * box["width"], box["y"] + fy * box["height"]) for fx, fy in points]
    page.mouse.move(*xy[0])
    page.mouse.down()
    for x, y in xy[1:]:
        page.mouse.move(x, y, steps=6)
    page.mouse.up()


def bar_widths(page) -> list[float]:
    return page.eval_on_selector_all(
        "#bars > .bar", "bars => bars.map(b => parseFloat(b.style.width) || 0)")


def test_draw_predict_and_clear(page, tmp_path):
    assert page.title() == "digitlab: draw a digit"
    assert page.locator("#bars > .bar").count() == 10
    assert page.locator("#label").inner_text().strip() not in list("0123456789")
    assert page.evaluate("() => getComputedStyle(document.getElementById('pad')).touchAction") \
        == "none"

    draw(page, [(0.5, 0.12), (0.5, 0.35), (0.49, 0.6), (0.48, 0.88)])  # a vertical stroke

    page.wait_for_function(
        "() => /^[0-9]$/.test(document.getElementById('label').textContent.trim())",
        timeout=15_000)
    page.wait_for_function(
        "() => [...document.querySelectorAll('#bars > .bar')]"
        ".some(b => parseFloat(b.style.width) > 0)",
        timeout=15_000)
    bars = page.locator("#bars > .bar")
    assert bars.count() == 10
    assert [bars.nth(i).get_attribute("data-digit") for i in range(10)] == list("0123456789")
    widths = bar_widths(page)
    assert sum(widths) == pytest.approx(100, abs=1.5)
    label = page.locator("#label").inner_text().strip()
    top = max(range(10), key=widths.__getitem__)
    assert page.locator("#bars > .bar.top").count() == 1
    assert page.locator("#bars > .bar.top").get_attribute("data-digit") == str(top) == label
    assert "%" in page.locator("#confidence").inner_text()
    sure = "not sure" not in page.locator("#confidence").inner_text()  # default 0.6
    assert sure == (page.locator("#label.unsure").count() == 0)
    # the 28x28 preview holds the digit the model saw: white ink on black
    ink = page.evaluate("""() => {
        const c = document.getElementById('preview');
        const d = c.getContext('2d').getImageData(0, 0, 28, 28).data;
        let lit = 0; for (let i = 0; i < d.length; i += 4) if (d[i] > 128) lit++;
        return [c.width, c.height, lit, d[0]];
    }""")
    assert ink[:2] == [28, 28] and ink[2] > 15 and ink[3] == 0
    assert page.evaluate(
        "() => getComputedStyle(document.getElementById('preview')).imageRendering") \
        in ("pixelated", "crisp-edges")

    shot = tmp_path / "serve.png"
    page.screenshot(path=str(shot))
    assert shot.is_file() and shot.stat().st_size > 5_000
    if os.environ.get("DIGITLAB_README_SCREENSHOT"):  # opt-in: refresh the README's picture
        README_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        page.locator("main").screenshot(path=str(README_SCREENSHOT))

    page.click("#clear")
    assert page.locator("#label").inner_text().strip() not in list("0123456789")
    assert max(bar_widths(page)) == 0
    blank = page.evaluate("""() => {
        const d = document.getElementById('pad').getContext('2d').getImageData(0, 0, 280, 280);
        return d.data.every((v, i) => i % 4 === 3 ? v === 255 : v === 0);
    }""")
    assert blank, "Clear should leave a black pad"


def test_an_answer_below_min_confidence_shows_not_sure(page):
    """The server's real answer, with "sure" turned false as a --min-confidence above its
    confidence would: the page keeps the best guess and says it is not sure."""
    def unsure(route):
        response = route.fetch()
        body = response.json()
        body["sure"], body["min_confidence"] = False, 1.0
        route.fulfill(response=response, json=body)

    page.route("**/predict", unsure)
    draw(page, [(0.5, 0.12), (0.5, 0.35), (0.49, 0.6), (0.48, 0.88)])
    page.wait_for_function(
        "() => document.getElementById('confidence').textContent.includes('not sure')",
        timeout=15_000)
    assert page.locator("#label").inner_text().strip() in list("0123456789")  # the best guess
    assert page.locator("#label.unsure").count() == 1
    assert "%" in page.locator("#confidence").inner_text()
    page.keyboard.press("Escape")
    assert page.locator("#label.unsure").count() == 0
    assert "not sure" not in page.locator("#confidence").inner_text()


def test_a_tiny_dot_gives_a_friendly_message(page):
    draw(page, [(0.3, 0.3), (0.3, 0.3)])  # a click: a single dot, too little to be a digit
    page.wait_for_function(
        "() => document.getElementById('status').textContent.toLowerCase().includes('no digit')"
        " || /^[0-9]$/.test(document.getElementById('label').textContent.trim())",
        timeout=15_000)
    status = page.locator("#status").inner_text()
    label = page.locator("#label").inner_text().strip()
    assert label in list("0123456789") or "no digit" in status.lower()


def test_predicts_while_drawing_and_escape_clears(page):
    box = page.locator("#pad").bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] * 0.15
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x, box["y"] + box["height"] * 0.85, steps=10)
    # the button is still down: the debounced request must answer without a pointerup
    page.wait_for_function(
        "() => /^[0-9]$/.test(document.getElementById('label').textContent.trim())",
        timeout=15_000)
    page.mouse.up()
    page.keyboard.press("Escape")
    assert page.locator("#label").inner_text().strip() not in list("0123456789")
    assert max(bar_widths(page)) == 0


def test_the_page_shows_the_servers_messages_and_class_names(page, server):
    """app.js takes every message and the class names from the page the server rendered (in
    its --lang): here a Bengali-digit run, with every message marked, answering ৭-style."""
    bengali = list("০১২৩৪৫৬৭৮৯")
    block = re.compile(r'(<script id="page-data" type="application/json">)(.*?)(</script>)',
                       re.S)

    def bengali_page(route):
        response = route.fetch()
        data = json.loads(block.search(response.text())[2])
        data["classes"] = bengali
        data["messages"] = {key: value if key == "no_digit_detail" else f"«{value}»"
                            for key, value in data["messages"].items()}
        body = block.sub(lambda m: m[1] + json.dumps(data) + m[3], response.text())
        route.fulfill(response=response, body=body)

    def bengali_answer(route):
        response = route.fetch()
        body = response.json()
        if response.ok:
            body["text"] = body["class_name"] = bengali[body["index"]]
        route.fulfill(response=response, json=body)

    page.route(f"{server}/", bengali_page)
    page.route("**/predict", bengali_answer)
    page.reload()
    assert page.locator("#status").inner_text() == "«Draw a digit in the black square.»"
    bars = page.locator("#bars > .bar")
    assert [bars.nth(i).get_attribute("data-digit") for i in range(10)] == bengali

    draw(page, [(0.5, 0.12), (0.5, 0.35), (0.49, 0.6), (0.48, 0.88)])
    page.wait_for_function(
        "() => /^[০-৯]$/.test(document.getElementById('label').textContent.trim())",
        timeout=15_000)
    label = page.locator("#label").inner_text().strip()
    assert page.locator("#bars > .bar.top").get_attribute("data-digit") == label
    confidence = page.locator("#confidence").inner_text()
    assert confidence.startswith("«") and confidence.endswith("»") and "%" in confidence
    page.wait_for_function(
        "() => document.getElementById('status').textContent.startsWith('«Keep drawing')",
        timeout=15_000)
    page.keyboard.press("Escape")
    assert page.locator("#status").inner_text() == "«Draw a digit in the black square.»"


# ---------------------------------------------------------------- Bengali digits, in Bengali

# A Bengali ৭ as CMATERdb's writers make it, one stroke: from inside the loop out to the left,
# round the loop's left side and over its top to the right, then the stem straight down the
# right side, its foot turning a little to the right (fractions of the pad, x right, y down).
SEVEN = [(0.56, 0.42), (0.44, 0.47), (0.31, 0.44), (0.23, 0.34), (0.26, 0.22), (0.38, 0.14),
         (0.54, 0.13), (0.68, 0.18), (0.74, 0.30), (0.73, 0.48), (0.71, 0.66), (0.72, 0.80),
         (0.77, 0.89)]


def bengali() -> dict[str, str]:
    """The page's texts as the Bengali catalog has them (the autouse fixture in conftest.py
    switches back to English after the test)."""
    from digitlab.i18n import _, set_language
    from digitlab.serve.page import HTML_MESSAGES, JS_MESSAGES, hint

    set_language("bn")
    texts = {key: _(message) for key, message in {**HTML_MESSAGES, **JS_MESSAGES}.items()}
    texts["hint"] = hint(tuple(BENGALI_DIGITS))
    return texts


def test_the_bangla_run_served_with_lang_bn_speaks_bengali(bangla_page):
    page = bangla_page
    bn = bengali()
    assert bn["draw"] != "Draw a digit in the black square."  # the catalog translates it
    assert page.evaluate("() => document.documentElement.lang") == "bn"
    assert page.title() == bn["title"]
    assert page.locator("h1").inner_text() == bn["title"]
    assert page.locator(".hint").inner_text() == bn["hint"]
    assert "০" in bn["hint"] and "৯" in bn["hint"]
    assert page.locator("#status").inner_text() == bn["draw"]
    assert page.locator("#clear").inner_text() == bn["clear"]
    bars = page.locator("#bars > .bar")
    assert [bars.nth(i).get_attribute("data-digit") for i in range(10)] == BENGALI_DIGITS


def test_a_bengali_seven_drawn_with_the_mouse_is_read_as_seven(bangla_page, bangla_server):
    page = bangla_page
    bn = bengali()
    draw(page, SEVEN)

    # The server's answer to the finished drawing: the pad as the page sends it.
    png = page.evaluate("""async () => {
        const blob = await new Promise(r => document.getElementById('pad').toBlob(r, 'image/png'));
        return Array.from(new Uint8Array(await blob.arrayBuffer()));
    }""")
    answer = httpx.post(f"{bangla_server}/predict", timeout=30,
                        files={"file": ("drawing.png", bytes(png), "image/png")}).json()
    print(f"\nthe drawn ৭: read as {answer['text']} at {answer['confidence']:.5f}")
    assert answer["text"] == answer["class_name"] == "৭"
    assert answer["index"] == 7
    assert answer["confidence"] > 0.5
    assert answer["confidence"] == max(answer["probabilities"])

    # ... and the page shows that answer, in Bengali.
    percent = f"{100 * answer['confidence']:.1f}%"
    expected = bn["sure" if answer["sure"] else "not_sure"].format(percent=percent)
    page.wait_for_function(
        "([label, confidence]) => document.getElementById('label').textContent.trim() === label"
        " && document.getElementById('confidence').textContent === confidence",
        arg=["৭", expected], timeout=15_000)
    page.wait_for_function(
        "(text) => document.getElementById('status').textContent === text",
        arg=bn["keep_drawing"], timeout=15_000)
    assert page.locator("#label.unsure").count() == (0 if answer["sure"] else 1)
    assert page.locator("#bars > .bar.top").get_attribute("data-digit") == "৭"
    assert max(bar_widths(page)) == pytest.approx(100 * answer["confidence"], abs=0.06)

    if os.environ.get("DIGITLAB_README_SCREENSHOT"):  # opt-in: refresh the docs' picture
        BENGALI_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        page.locator("main").screenshot(path=str(BENGALI_SCREENSHOT))


# ---------------------------------------------------------------- the number pad

# Digits as strokes through points, in fractions of one quarter of the number pad (a square:
# the pad is four digit pads wide), x right, y down.
ONE = [[(0.5, 0.15), (0.47, 0.85)]]
SEVEN_LATIN = [[(0.25, 0.2), (0.75, 0.2), (0.45, 0.85)]]
ZERO = [[(0.5, 0.15), (0.3, 0.3), (0.28, 0.6), (0.45, 0.85), (0.65, 0.75), (0.72, 0.45),
         (0.62, 0.2), (0.5, 0.15)]]


def write(page, digits: list) -> None:
    """Each digit's mouse strokes in its own quarter of #number, left to right."""
    for i, strokes in enumerate(digits):
        for stroke in strokes:
            draw(page, [((i + fx) / 4, fy) for fx, fy in stroke], pad="#number")


def pad_png(page, pad: str) -> bytes:
    """The pad as the page sends it."""
    return bytes(page.evaluate("""async (selector) => {
        const canvas = document.querySelector(selector);
        const blob = await new Promise(r => canvas.toBlob(r, 'image/png'));
        return Array.from(new Uint8Array(await blob.arrayBuffer()));
    }""", pad))


def shown_reading(page) -> dict:
    return page.evaluate("""() => ({
        text: document.getElementById('number-text').textContent,
        confidence: document.getElementById('number-confidence').textContent,
        method: document.getElementById('number-method').textContent,
        labels: [...document.querySelectorAll('#number-digits > .digit')]
            .map(d => d.dataset.label),
        chips: [...document.querySelectorAll('#number-digits > .digit')]
            .map(d => d.textContent),
    })""")


def framed(page, box: list[int]) -> int:
    """Pixels of the frames' overlay lit along the edges of `box` (x0, y0, x1, y1)."""
    return page.evaluate("""([x0, y0, x1, y1]) => {
        const d = document.getElementById('number-boxes').getContext('2d')
            .getImageData(0, 0, 1120, 280).data;
        let lit = 0;
        for (let x = x0; x < x1; x++) for (const y of [y0, y1 - 1]) {
            if (y >= 0 && y < 280 && d[4 * (y * 1120 + x) + 3] > 0) lit++;
        }
        return lit;
    }""", box)


def read_and_compare(page, base: str, messages: dict) -> dict:
    """What POST /read answers for the pad as it is now, once the page shows just that."""
    answer = httpx.post(f"{base}/read", timeout=30,
                        files={"file": ("drawing.png", pad_png(page, "#number"), "image/png")})
    assert answer.status_code == 200, answer.text
    answer = answer.json()
    percent = f"{100 * answer['confidence']:.1f}%"
    expected = {
        "text": answer["text"],
        "confidence": messages["sure" if answer["sure"] else "not_sure"].format(percent=percent),
        "method": messages["method"].format(method=answer["method"]),
        "labels": [d["label"] for d in answer["digits"]],
        "chips": [f"{d['label']} {100 * d['probability']:.1f}%" for d in answer["digits"]],
    }
    page.wait_for_function("""(expected) => {
        const chips = [...document.querySelectorAll('#number-digits > .digit')];
        return document.getElementById('number-text').textContent === expected.text
            && chips.map(d => d.textContent).join('|') === expected.chips.join('|');
    }""", arg=expected, timeout=15_000)
    assert shown_reading(page) == expected
    return answer


def number_pad_is_black(page) -> bool:
    return page.evaluate("""() => {
        const d = document.getElementById('number').getContext('2d')
            .getImageData(0, 0, 1120, 280).data;
        return d.every((v, i) => i % 4 === 3 ? v === 255 : v === 0);
    }""")


ENGLISH_MESSAGES = {"sure": "{percent} sure", "not_sure": "not sure: best guess at {percent}",
                    "method": "read by {method}"}


def test_write_a_number_and_see_its_reading(page, server):
    assert page.locator("#number-text").inner_text() == "?"
    assert page.locator("#number-status").inner_text() == "Write a number in the wide black box."
    assert page.evaluate(
        "() => getComputedStyle(document.getElementById('number')).touchAction") == "none"
    pad, square = page.locator("#number").bounding_box(), page.locator("#pad").bounding_box()
    assert pad["width"] == pytest.approx(4 * pad["height"], rel=0.02)  # 4 digit pads wide
    assert pad["width"] > 2 * square["width"]

    write(page, [ONE, SEVEN_LATIN, ZERO])  # read when the pen has been up a moment
    page.wait_for_function(
        "() => document.querySelectorAll('#number-digits > .digit').length === 3",
        timeout=15_000)
    answer = read_and_compare(page, server, ENGLISH_MESSAGES)
    print(f"\nthe written number: read as {answer['text']} at {answer['confidence']:.3f}")
    assert answer["method"] == "segment" and len(answer["digits"]) == 3
    boxes = [d["box"] for d in answer["digits"]]
    for i, (x0, y0, x1, y1) in enumerate(boxes):  # each box round its own quarter's digit
        assert i * 280 <= x0 < x1 <= (i + 1) * 280 and y1 - y0 > 140
        assert framed(page, [x0, y0, x1, y1]) > (x1 - x0)  # its frame is drawn over the pad
    assert page.locator("#number-status").inner_text() == \
        "Keep writing, or Clear to start again."
    assert page.locator("#label").inner_text() == "?"  # the digit pad was not touched

    page.click("#number-clear")
    assert shown_reading(page)["text"] == "?" and shown_reading(page)["labels"] == []
    assert number_pad_is_black(page)
    assert all(framed(page, box) == 0 for box in boxes)
    assert page.locator("#number-status").inner_text() == "Write a number in the wide black box."


def test_the_read_button_and_esc_on_the_number_pad(page, server):
    """Read asks at once; Esc clears the pad drawn on last, and only that one."""
    reads = []
    page.on("request", lambda req: reads.append(req.url) if req.url.endswith("/read") else None)
    write(page, [ZERO, ONE])
    page.click("#number-read")
    page.wait_for_function(
        "() => document.querySelectorAll('#number-digits > .digit').length === 2",
        timeout=15_000)
    assert reads
    read_and_compare(page, server, ENGLISH_MESSAGES)

    draw(page, [(0.5, 0.12), (0.5, 0.35), (0.49, 0.6), (0.48, 0.88)])  # on the digit pad
    page.wait_for_function(
        "() => /^[0-9]$/.test(document.getElementById('label').textContent.trim())",
        timeout=15_000)
    page.keyboard.press("Escape")  # the digit pad was drawn on last
    assert page.locator("#label").inner_text().strip() == "?"
    assert len(shown_reading(page)["labels"]) == 2 and not number_pad_is_black(page)

    write(page, [ONE])
    page.keyboard.press("Escape")  # now the number pad was
    assert shown_reading(page)["text"] == "?" and number_pad_is_black(page)
    page.wait_for_timeout(600)  # past the read that the last stroke scheduled: none comes
    assert shown_reading(page)["text"] == "?"


def test_a_blank_number_says_so(page):
    """A dot is too little to be a digit: the number pad says so in its own status line."""
    draw(page, [(0.3, 0.5), (0.3, 0.5)], pad="#number")
    page.click("#number-read")
    page.wait_for_function(
        "() => document.getElementById('number-status').classList.contains('warn')"
        " || document.querySelectorAll('#number-digits > .digit').length > 0",
        timeout=15_000)
    if page.locator("#number-status.warn").count():
        assert page.locator("#number-status").inner_text() == "No digits yet: write them bigger."
        assert page.locator("#number-text").inner_text() == "?"
    assert page.locator("#status").inner_text() == "Draw a digit in the black square."


# A Bengali ০ as CMATERdb's writers make it: a small round loop (fractions of a square).
BENGALI_ZERO = [[(0.5, 0.3), (0.35, 0.38), (0.32, 0.55), (0.42, 0.7), (0.58, 0.7),
                 (0.68, 0.55), (0.65, 0.38), (0.5, 0.3)]]


def test_a_bengali_number_written_with_the_mouse_is_read(bangla_page, bangla_server):
    page = bangla_page
    bn = bengali()
    assert page.locator("#number-status").inner_text() == bn["write"]
    write(page, [[SEVEN], BENGALI_ZERO, [SEVEN]])
    page.wait_for_function(
        "() => document.querySelectorAll('#number-digits > .digit').length === 3",
        timeout=15_000)
    answer = read_and_compare(page, bangla_server, bn)
    print(f"\nthe written ৭০৭: read as {answer['text']} at {answer['confidence']:.5f}")
    assert answer["text"] == "৭০৭"
    assert page.locator("#number-status").inner_text() == bn["keep_writing"]
