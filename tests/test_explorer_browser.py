"""The explorer in a real browser: headless Chromium (Debian's /usr/bin/chromium) driven by
Playwright against `cnnzoo serve` on a free port of 127.0.0.1. It draws a digit, uploads an image,
switches runs (a damaged one included), compares two runs and watches a run that is still training;
screenshots go to each test's tmp_path. Without Chromium or Playwright these tests are skipped, and
the reason is printed (`make test` runs pytest -rs)."""

from __future__ import annotations

import base64
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from cnnzoo import rundir

CHROMIUM = Path(os.environ.get("CNNZOO_CHROMIUM", "/usr/bin/chromium"))
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
VIEWPORT = {"width": 1366, "height": 768}  # a laptop screen
SERVED = {}  # the application the module's server runs, for tests that look inside it

if not CHROMIUM.is_file():
    pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium, or set CNNZOO_CHROMIUM)",
                allow_module_level=True)
playwright_api = pytest.importorskip("playwright.sync_api",
                                     reason="playwright is not installed (pip install playwright)")
pytest.importorskip("uvicorn", reason="the serve extra is not installed (pip install "
                                      "'cnnzoo[serve]')")


@pytest.fixture(scope="module")
def browser_runs(explorer_runs, imported_runs, tmp_path_factory) -> Iterator[Path]:
    """Copies of the test runs and of the imported ones (dated a day back, so that the trained runs
    stay first), plus "live": a run with one epoch done whose summary is not written yet."""
    import time

    root = tmp_path_factory.mktemp("browser") / "runs"
    for name in ("lenet5-imported", "lenet5-script", "own-code"):
        shutil.copytree(imported_runs / name, root / name)
        for path in (root / name).rglob("*"):
            os.utime(path, (time.time() - 86_400,) * 2)
    for name in ("lenet5-a", "lenet5bn-b", "damaged"):
        shutil.copytree(explorer_runs / name, root / name)
    shutil.copytree(explorer_runs / "lenet5-a", root / "live")
    (root / "live" / "summary.json").unlink()
    metrics = root / "live" / "metrics.csv"
    metrics.write_text("\n".join(metrics.read_text().splitlines()[:2]) + "\n")
    with rundir.writer_lock(root / "live"):  # as its trainer holds it
        yield root


@pytest.fixture(scope="module")
def server(browser_runs):
    """`cnnzoo serve` (uvicorn) in a thread on a free port; stopped when the module's tests end."""
    import uvicorn

    from cnnzoo.serve.app import bind, create_app, url_of

    sock = bind("127.0.0.1", 0)
    SERVED["app"] = create_app(browser_runs)
    instance = uvicorn.Server(uvicorn.Config(SERVED["app"], log_level="warning"))
    thread = threading.Thread(target=instance.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not instance.started:
        thread.join(0.05)
        assert thread.is_alive(), "the server did not start"
    yield url_of(sock)
    instance.should_exit = True
    thread.join(10)
    sock.close()
    assert not thread.is_alive(), "the server did not stop"


@pytest.fixture(scope="module")
def playwright():
    with playwright_api.sync_playwright() as instance:
        yield instance


@pytest.fixture(scope="module")
def page(server, playwright):
    # the tests' own page.evaluate and wait_for_function run as page scripts, which the explorer's
    # Content-Security-Policy forbids: bypassed here, and tested in
    # test_the_page_works_under_its_own_policy
    context = playwright.chromium.launch_persistent_context(
        tempfile.mkdtemp(prefix="cnnzoo-chromium-"),
        headless=True,
        executable_path=str(CHROMIUM),
        args=ARGS,
        viewport=VIEWPORT,
        bypass_csp=True,
    )
    errors = []
    tab = context.new_page()
    tab.on("pageerror", lambda error: errors.append(str(error)))
    tab.goto(server)
    tab.wait_for_selector("#runs li")
    yield tab
    context.close()
    assert errors == [], errors


def _select(page, run: str) -> None:
    page.click(f"#runs li[data-run='{run}']")
    page.wait_for_function("name => "
                           "document.querySelector('#run-title').textContent.startsWith(name)",
                           arg=run)


def _draw_a_seven(page) -> None:
    box = page.locator("#canvas").bounding_box()
    x, y, w = box["x"], box["y"], box["width"]
    page.mouse.move(x + 0.25 * w, y + 0.2 * w)
    page.mouse.down()
    page.mouse.move(x + 0.75 * w, y + 0.2 * w, steps=10)
    page.mouse.move(x + 0.4 * w, y + 0.85 * w, steps=10)
    page.mouse.up()


UNPAINTED = """sel => [...document.querySelectorAll(sel)].filter(c => {
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  for (let i = 3; i < d.length; i += 4) if (d[i] !== 0) return false;
  return true; }).map(c => c.title || c.id)"""
FLAT_STAGES = """() => [...document.querySelectorAll('#stages .stage[data-stage]')].filter(stage =>
  ![...stage.querySelectorAll('canvas.map')].some(c => {
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    for (let i = 4; i < d.length; i += 4)
      if (d[i] !== d[0] || d[i + 1] !== d[1] || d[i + 2] !== d[2]) return true;
    return false; })).map(stage => stage.dataset.stage)"""


def _api(server: str, path: str, image: bytes | None = None) -> dict:
    import httpx

    if image is None:
        return httpx.get(server.rstrip("/") + path, timeout=30).json()
    return httpx.post(server.rstrip("/") + path, files={"image": ("x.png", image, "image/png")},
                      timeout=30).json()


def test_drawing_shows_top_k_every_stage_grad_cam_and_neighbours(page, server, tmp_path):
    _select(page, "lenet5-a")
    _draw_a_seven(page)
    page.wait_for_selector("#topk li")
    page.wait_for_selector("#neighbours figure")
    probabilities = [float(t.rstrip("%")) for t in page.locator("#topk .prob").all_inner_texts()]
    assert (
        len(probabilities) == 5
        and probabilities == sorted(probabilities, reverse=True)
        and sum(probabilities) <= 100.1
    )
    stages = _api(server, "/api/runs/lenet5-a/model")["stages"]
    assert (
        page.locator("#stages .stage[data-stage]").evaluate_all(
            "els => els.map(e => e.dataset.stage)"
        )
        == stages
    )
    for stage, shown in (("C1", 6), ("S2", 6), ("C3", 16), ("S4", 16), ("C5", 1), ("F6", 1)):
        assert page.locator(f"#stages .stage[data-stage='{stage}'] canvas.map").count() == shown
    page.wait_for_function("document.querySelector('#cam-caption').textContent.includes('Grad-CAM "
                           "for')")
    # every map and the input drawn
    assert page.evaluate(UNPAINTED, "#stages canvas.map, #seen, #cam") == []
    # in every stage some map varies (a dead ReLU map may be flat)
    assert page.evaluate(FLAT_STAGES) == []
    assert page.locator("#neighbours figure").count() == 8
    page.screenshot(path=str(tmp_path / "explore.png"))
    page.locator("#stages .stage[data-stage='C1'] canvas.map").first.click()
    assert page.locator("#zoom").is_visible()
    assert "(28 − 5 + 2·2) / 1 + 1 = 28" in page.inner_text("#zoom-layer")
    assert page.locator("#zoom-layer .kernels canvas").count() == 1  # C1 has one input channel
    page.screenshot(path=str(tmp_path / "zoom.png"))
    page.click("#zoom-close")


def test_uploading_or_dropping_an_image_predicts_what_the_api_predicts(
    page, server, tiny_mnist_dir, tmp_path
):
    from PIL import Image

    from cnnzoo.data.loading import load_dataset

    _select(page, "lenet5-a")
    test = load_dataset("mnist", tiny_mnist_dir, in_channels=1).test
    path = tmp_path / "upload.png"
    Image.fromarray(test.images[7, 0].numpy()).resize((140, 140)).save(path)
    expected = _api(server, "/api/runs/lenet5-a/predict", path.read_bytes())["top_k"][0]["class"]
    page.evaluate("document.querySelector('#topk').replaceChildren()")
    page.set_input_files("#file", str(path))
    # selecting the run re-predicts the drawing still on the canvas; wait for the upload's own
    # answer
    page.wait_for_function("document.querySelector('#truth').textContent.includes('upload.png')")
    assert page.inner_text("#topk li.top .label") == expected
    dropped = page.evaluate_handle(
        """b64 => { const dt = new DataTransfer();
        const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
        dt.items.add(new File([bytes], 'dropped.png', {type: 'image/png'}));
        return dt; }""",
        base64.b64encode(path.read_bytes()).decode(),
    )
    page.dispatch_event("#canvas", "drop", {"dataTransfer": dropped})
    page.wait_for_function("document.querySelector('#truth').textContent.includes('dropped.png')")
    assert page.inner_text("#topk li.top .label") == expected
    page.click("#random")
    page.wait_for_function("document.querySelector('#truth').textContent.includes('test image #')")


def test_the_prepare_box_sends_the_pixels_as_they_are_when_unticked(page, server, tmp_path):
    """The page's --no-prepare: untick the box and the same upload is sent with ?prepare=false."""
    from PIL import Image, ImageDraw

    _select(page, "lenet5-a")
    path = tmp_path / "photo.png"
    photo = Image.new("RGB", (200, 150), (235, 235, 230))  # a dark stroke on white paper
    ImageDraw.Draw(photo).line([(60, 30), (140, 30), (90, 120)], fill=(30, 30, 30), width=12)
    photo.save(path)
    page.set_input_files("#file", str(path))
    shown = "document.querySelector('#prepared').textContent"
    page.wait_for_function(f"{shown}.includes('inverted')")
    page.uncheck("#prepare")
    page.wait_for_function(f"{shown}.includes('shorter side')")
    raw = _api(server, "/api/runs/lenet5-a/predict?prepare=false", path.read_bytes())
    assert page.inner_text("#prepared").startswith(f"prepared: {raw['prepared'][0]}")
    assert page.inner_text("#topk li.top .label") == raw["top_k"][0]["class"]
    assert "not inverted" in raw["warning"] and "not inverted" in page.inner_text("#prepared")
    page.check("#prepare")
    page.wait_for_function(f"{shown}.includes('inverted,')")


def test_switching_runs_and_a_damaged_run(page, server, tmp_path):
    _select(page, "lenet5-a")
    _draw_a_seven(page)
    page.wait_for_selector("#topk li")
    _select(page, "damaged")
    page.wait_for_function("document.querySelector('#run-error').textContent.includes('damaged')")
    assert page.locator("#run-error").is_visible()
    page.screenshot(path=str(tmp_path / "damaged.png"))
    _select(page, "lenet5bn-b")
    page.wait_for_selector("#run-error", state="hidden")
    page.wait_for_selector("#topk li")  # the drawing is predicted again, by this run's model
    assert page.locator("#stages .stage[data-stage]").count() == 6


def test_training_tab_and_comparing_two_runs(page, server, tmp_path):
    _select(page, "lenet5-a")
    page.click("#tabs button[data-tab='training']")
    page.wait_for_function("document.querySelector('#confusion img')?.naturalWidth > 0")
    # the tab may still show the run selected before (lenet5_bn's 16 layers) for a moment
    page.wait_for_function("document.querySelector('#layers-total').textContent"
                           ".startsWith('lenet5: 61,706 parameters, ')")
    layers = _api(server, "/api/runs/lenet5-a/model")["layers"]
    assert page.locator("#layers tbody tr").count() == len(layers)
    assert page.evaluate(UNPAINTED, "#training canvas.chart") == []
    page.screenshot(path=str(tmp_path / "training.png"), full_page=True)
    page.click("#tabs button[data-tab='compare']")
    page.select_option("#compare-a", "lenet5-a")
    page.select_option("#compare-b", "lenet5bn-b")
    page.wait_for_function("document.querySelector('#compare-table').textContent.includes('B: "
                           "lenet5bn-b')")
    table = page.inner_text("#compare-table")
    assert "A: lenet5-a" in table and "lenet5_bn" in table
    assert page.evaluate(UNPAINTED, "#compare canvas.chart") == []
    page.screenshot(path=str(_shots(tmp_path) / "explorer-compare.png"), full_page=True)
    page.click("#tabs button[data-tab='explore']")


def test_the_compare_tab_shows_cnnzoo_compares_report(page, server, tmp_path):
    """The tab shows GET /api/compare's report (itself `cnnzoo compare --json`, test_serve_compare):
    its numbers, the tallies and one picture per disagreement; one click explores an image."""
    page.click("#tabs button[data-tab='compare']")
    page.select_option("#compare-a", "lenet5-a")
    page.select_option("#compare-b", "lenet5-imported")  # no data set: a bare model
    page.wait_for_selector("#comparison [data-role=compare-error]", timeout=60_000)
    assert "lenet5 is a bare model, not a trained run" in page.inner_text("#comparison")
    page.select_option("#compare-b", "lenet5bn-b")
    page.wait_for_selector("#compare-disagreements .strip figure", timeout=60_000)
    report = _api(server, "/api/compare?a=lenet5-a&b=lenet5bn-b")
    a, b = report["runs"]
    table = page.inner_text("#compare-table")
    for value in (f"{a['test_top1']:.1%}", f"{b['test_top1']:.1%}", f"{a['params']:,}",
                  f"{b['macs']:,}", "B: lenet5bn-b", "lenet5_bn"):
        assert value in table
    assert [page.locator(".compare-layers").nth(i).locator("tbody tr").count()
            for i in range(2)] == [len(a["layers"]), len(b["layers"])]
    tallies = page.locator("#compare-disagreements .tally").all_inner_texts()
    assert [int(t.split()[0].replace(",", "")) for t in tallies] == [
        report["both_right"], report["a_right"], report["b_right"],
        report["both_wrong"] + report["both_wrong_alike"]]
    shown = page.locator("#compare-disagreements .strip figure")
    assert shown.count() == report["disagree"] == len(report["disagreements"]) > 0
    first = report["disagreements"][0]
    caption = shown.first.inner_text()
    marked = {answer: f"{'✓' if answer == first['true'] else '✗'} {answer}"
              for answer in (first["a"], first["b"])}
    assert caption.split("\n") == [f"#{first['index']}", f"true {first['true']}",
                                    f"A {marked[first['a']]}", f"B {marked[first['b']]}"]
    unloaded = "[...document.querySelectorAll('#comparison img')].filter(i => !i.naturalWidth)"
    page.wait_for_function(f"{unloaded}.length === 0")
    assert page.locator("#comparison img.kernels").count() == 2
    wide = page.evaluate("[...document.querySelectorAll('#compare *')].filter(e => "
                         "e.scrollWidth > e.clientWidth + 1 && getComputedStyle(e).overflowX "
                         "=== 'visible').map(e => e.id || e.className || e.tagName)")
    assert wide == []  # nothing spills out of its box
    page.screenshot(path=str(_shots(tmp_path) / "explorer-compare.png"), full_page=True)
    shown.first.click()
    page.wait_for_function("n => document.querySelector('#truth').textContent"
                           ".startsWith(`test image #${n} `)", arg=first["index"])
    assert page.locator("#explore").is_visible() and f"truly {first['true']}" in page.inner_text(
        "#truth")


def test_a_run_still_training_updates_live(page, browser_runs):
    card = page.locator("#runs li[data-run='live']")
    assert "training" in card.inner_text() and "1/2 epochs" in card.inner_text()
    metrics = browser_runs / "live" / "metrics.csv"
    full = (browser_runs / "lenet5-a" / "metrics.csv").read_text()
    metrics.write_text(full)
    page.wait_for_function("document.querySelector(\"#runs "
                           "li[data-run='live']\").textContent.includes('2/2 epochs')",
                           timeout=10_000)


def test_the_page_works_under_its_own_policy(server, playwright):
    """The explorer sends a Content-Security-Policy (scripts and connections from itself only, no
    framing): its page loads, draws, predicts and fetches a test image with the policy in force, and
    breaks none of it."""
    context = playwright.chromium.launch_persistent_context(
        tempfile.mkdtemp(prefix="cnnzoo-chromium-"),
        headless=True,
        executable_path=str(CHROMIUM),
        args=ARGS,
        viewport=VIEWPORT,
    )
    messages, errors = [], []
    tab = context.new_page()
    tab.on("console", lambda message: messages.append(message.text))
    tab.on("pageerror", lambda error: errors.append(str(error)))
    response = tab.goto(server)
    assert "script-src 'self'" in response.headers["content-security-policy"]
    tab.click("#runs li[data-run='lenet5-a']")
    tab.wait_for_selector("#run-title:has-text('lenet5-a')")
    _draw_a_seven(tab)
    tab.wait_for_selector("#topk li.top")
    tab.click("#random")
    tab.wait_for_selector("#truth:has-text('test image #')")
    context.close()
    assert errors == [] and not [m for m in messages if "Content Security Policy" in m], messages


def _shots(tmp_path: Path) -> Path:
    """Where screenshots go: CNNZOO_SCREENSHOTS (docs/figures when refreshing the docs), else
    tmp_path."""
    folder = Path(os.environ.get("CNNZOO_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def digit_file(tiny_mnist_dir, tmp_path_factory) -> Path:
    from PIL import Image

    from cnnzoo.data.loading import load_dataset

    test = load_dataset("mnist", tiny_mnist_dir, in_channels=1).test
    path = tmp_path_factory.mktemp("digit") / "digit.png"
    Image.fromarray(test.images[7, 0].numpy()).save(path)
    return path


def _upload(page, path: Path) -> None:
    _select(page, "lenet5-a")
    page.set_input_files("#file", str(path))
    page.wait_for_function("name => document.querySelector('#truth').textContent.includes(name)",
                           arg=path.name)


def _model_view(browser_runs: Path, path: Path):
    from cnnzoo.engine.run import open_run
    from cnnzoo.visualize.source import load_input

    subject = open_run(browser_runs / "lenet5-a")
    return subject, load_input(subject, path)[1]


def _click_cell(page, selector: str, row: int, column: int, rows: int, columns: int) -> None:
    box = page.locator(selector).bounding_box()
    page.mouse.click(box["x"] + (column + 0.5) / columns * box["width"],
                     box["y"] + (row + 0.5) / rows * box["height"])


def _number(page, selector: str) -> float:
    return float(page.locator(selector).first.inner_text())


def test_a_clicked_position_shows_the_arithmetic_the_model_computes(page, browser_runs, digit_file,
                                                                      tmp_path):
    """Map 2 of C1 at row 1, column 14: its 5×5 window (its top row in the padding) times the
    kernel, plus the bias, through ReLU, read from the page and checked against the model's own
    convolution and activation; then the keyboard moves one position down and explains that one
    too."""
    import torch.nn.functional as F

    from cnnzoo.visualize.activations import activations

    _upload(page, digit_file)
    subject, x = _model_view(browser_runs, digit_file)
    conv = subject.model.features[0]
    before = F.conv2d(x, conv.weight, conv.bias, padding=2)[0, 2].detach()
    after = activations(subject.model, x)["C1"][0, 2]
    page.locator("#stages .stage[data-stage='C1'] canvas.map").nth(2).click()
    _click_cell(page, "#zoom-map", 1, 14, 28, 28)
    page.wait_for_selector("#position [data-role=value]")
    summed, shown = float(before[1, 14]), float(after[1, 14])
    assert _number(page, "#position [data-role=computed]") == pytest.approx(summed, abs=2e-6)
    terms = page.locator("#position [data-role=channel-term]").all_inner_texts()
    total = _number(page, "#position [data-role=channel-sum]") + \
        _number(page, "#position [data-role=bias]")
    assert total == pytest.approx(summed, abs=2e-6) and len(terms) == 1  # one input channel
    assert _number(page, "#position [data-role=value]") == pytest.approx(shown, abs=2e-6)
    assert f"max(0, {summed:.6f})" in page.inner_text("#position")  # ReLU gets the sum
    assert page.locator("#position table.window td").count() == 25
    top_row = page.locator("#position table.window tr").first
    assert top_row.locator("td.pad").count() == 5  # the window's top row lies in the padding
    assert "(28 − 5 + 2·2) / 1 + 1 = 28" in page.inner_text("#position")
    assert "5×5 receptive field" in page.inner_text("#zoom-input-caption")
    page.screenshot(path=str(_shots(tmp_path) / "explorer-position.png"))
    page.focus("#zoom-map")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")
    page.wait_for_function("document.querySelector('#position h4')?.textContent.includes('row 2, "
                           "column 14')")
    assert _number(page, "#position [data-role=value]") == pytest.approx(float(after[2, 14]),
                                                                         abs=2e-6)
    page.click("#zoom-close")


def test_stepping_the_convolution_animation(page, digit_file, tmp_path):
    _upload(page, digit_file)
    page.locator("#stages .stage[data-stage='C3'] canvas.map").first.click()
    _click_cell(page, "#zoom-map", 4, 4, 10, 10)
    page.wait_for_selector("#convolution:not([hidden])")
    assert page.locator("#conv-status").get_attribute("data-step") == "0"
    for _ in range(3):
        page.click("#conv-step")
    assert page.locator("#conv-status").get_attribute("data-step") == "3"
    assert "output (0, 3)" in page.inner_text("#conv-status")
    assert "K = 5, S = 1, P = 0" in page.inner_text("#conv-caption")
    page.fill("#conv-speed", "30")
    page.click("#conv-play")
    page.wait_for_function("Number(document.querySelector('#conv-status').dataset.step) > 8")
    page.click("#conv-play")  # pause: the step no longer moves
    paused = page.locator("#conv-status").get_attribute("data-step")
    page.wait_for_timeout(300)
    assert page.locator("#conv-status").get_attribute("data-step") == paused
    page.screenshot(path=str(_shots(tmp_path) / "explorer-convolution.png"))
    page.click("#zoom-close")


def test_choosing_a_grad_cam_class_and_layer(page, server, browser_runs, digit_file, tmp_path):
    from cnnzoo.visualize.cam import grad_cam

    _upload(page, digit_file)
    subject, x = _model_view(browser_runs, digit_file)
    predicted = int(subject.model(x)[0].argmax())
    chosen = (predicted + 1) % 10
    expected = grad_cam(subject.model, x, chosen, "C1")
    page.select_option("#cam-layer", "C1")
    page.select_option("#cam-class", str(chosen))
    page.wait_for_function("c => "
                           "document.querySelector('#cam-caption').textContent.includes(`“${c}” "
                           "at C1`)",
                           arg=subject.classes[chosen])
    caption = page.inner_text("#cam-caption")
    if float(expected["cam"].max()) == 0:
        assert "zero everywhere" in caption
    else:
        assert "scaled to its maximum" in caption
        assert page.locator("#cam").get_attribute("data-all-zero") == "false"
    page.screenshot(path=str(_shots(tmp_path) / "explorer-grad-cam.png"))


def test_the_softmax_panel_adds_up(page, browser_runs, digit_file, tmp_path):
    _upload(page, digit_file)
    subject, x = _model_view(browser_runs, digit_file)
    expected = subject.model(x)[0].softmax(-1).tolist()
    page.wait_for_selector("#softmax tbody tr")
    shown = [float(t) for t in page.locator("#softmax [data-role=probability]").all_inner_texts()]
    assert sum(shown) == pytest.approx(1, abs=1e-5) and len(shown) == 10
    assert sorted(shown, reverse=True) == pytest.approx(sorted(expected, reverse=True), abs=2e-6)
    assert _number(page, "#softmax [data-role=probability-sum]") == pytest.approx(1, abs=1e-5)
    page.locator("#softmax-panel").screenshot(path=str(_shots(tmp_path) / "explorer-softmax.png"))


OVERFLOW = "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"


@pytest.mark.parametrize("size", [(1366, 768), (1920, 1080)])
def test_nothing_overflows_on_a_laptop_and_the_confusion_numbers_are_readable(page, digit_file,
                                                                              size):
    page.set_viewport_size({"width": size[0], "height": size[1]})
    try:
        _upload(page, digit_file)
        page.wait_for_selector("#neighbours figure")
        assert page.evaluate(OVERFLOW) <= 0
        page.locator("#stages .stage[data-stage='C1'] canvas.map").first.click()
        _click_cell(page, "#zoom-map", 5, 5, 28, 28)
        page.wait_for_selector("#convolution:not([hidden])")
        assert page.evaluate(OVERFLOW) <= 0
        assert page.evaluate("() => { const d = document.querySelector('#zoom'); return "
                             "d.scrollWidth - d.clientWidth; }") <= 0
        page.click("#zoom-close")
        for tab in ("training", "compare"):
            page.click(f"#tabs button[data-tab='{tab}']")
            page.wait_for_timeout(200)
            assert page.evaluate(OVERFLOW) <= 0, tab
        page.click("#tabs button[data-tab='training']")
        page.wait_for_function("document.querySelector('#confusion img')?.style.width")
        px = page.evaluate("""() => { const img = document.querySelector('#confusion img');
            return img.getBoundingClientRect().width / img.naturalWidth * 7 * 110 / 72; }""")
        assert px >= 11
    finally:
        page.click("#tabs button[data-tab='explore']")
        page.set_viewport_size(VIEWPORT)


def test_the_page_answers_while_the_index_builds(page, digit_file, monkeypatch, tmp_path):
    """The index of lenet5-a is built again, held half-way by the test: the page shows its progress,
    and predict and a position's explanation answer meanwhile; released, the neighbours appear."""
    from cnnzoo.visualize import retrieval

    release, real = threading.Event(), retrieval.penultimate

    def held(model, x):
        if threading.current_thread().name == "cnnzoo-index":
            assert release.wait(60)
        return real(model, x)

    monkeypatch.setattr(retrieval, "penultimate", held)
    cache = SERVED["app"].app.state.explorer.cache
    entry = cache.get("lenet5-a")
    entry.index = None  # as if never searched: the next search builds it
    try:
        _upload(page, digit_file)
        page.wait_for_selector("#index-progress:not([hidden])")
        page.wait_for_function("document.querySelector('#index-progress').textContent"
                               ".includes('indexing')")
        page.screenshot(path=str(_shots(tmp_path) / "explorer-index-building.png"))
        _draw_a_seven(page)  # a new prediction answers while the index is still held
        page.wait_for_function("document.querySelector('#truth').textContent.includes('your "
                               "drawing')")
        page.locator("#stages .stage[data-stage='S2'] canvas.map").first.click()
        _click_cell(page, "#zoom-map", 3, 3, 14, 14)
        page.wait_for_selector("#position [data-role=value]")
        page.click("#zoom-close")
        assert entry.index.state in ("loading", "building")
    finally:
        release.set()
    page.wait_for_selector("#neighbours figure", timeout=60_000)
    page.wait_for_selector("#index-progress", state="hidden")


def test_an_imported_run_shows_its_maps_and_the_verdict_beside_its_grad_cam(page, digit_file,
                                                                           tmp_path):
    """A zoo lenet5 imported from a state_dict: listed as imported, its maps drawn, and the trust
    button puts the verdict (with its figures) beside the Grad-CAM drawn at the layer it judged;
    a TorchScript import says in one line why it has no maps; an import of the user's code,
    served without --run-code, is listed with the reason and not opened."""
    assert "imported (weights)" in page.inner_text("#runs li[data-run='lenet5-imported']")
    assert "--run-code" in page.inner_text("#runs li[data-run='own-code'] .closed")
    _select(page, "lenet5-imported")
    digit = tmp_path / "imported-digit.png"  # a new name: the file input changes, and is awaited
    shutil.copy(digit_file, digit)
    page.set_input_files("#file", str(digit))
    page.wait_for_function("name => document.querySelector('#truth').textContent.includes(name)",
                           arg=digit.name)
    assert page.locator("#stages .stage[data-stage]").evaluate_all(
        "els => els.map(e => e.dataset.stage)") == ["C1", "S2", "C3", "S4", "C5", "F6"]
    page.wait_for_function("document.querySelector('#cam-caption').textContent"
                           ".includes('Grad-CAM for')")
    assert page.evaluate(UNPAINTED, "#stages canvas.map, #seen, #cam") == []
    page.click("#trust-check")
    page.wait_for_function("document.querySelector('#trust').dataset.verdict", timeout=60_000)
    verdict = page.locator("#trust").get_attribute("data-verdict")
    assert verdict in ("trust", "do not trust")
    line = page.inner_text("#trust [data-role=trust-line]")
    assert line.startswith(f"{verdict}: ") and "randomised ρ" in line and "occlusion ρ" in line
    judged = page.inner_text("#trust > div")
    layer = page.locator("#cam-layer").input_value()
    assert f"Grad-CAM at {layer} " in judged  # the map beside is the one judged
    page.wait_for_function("layer => document.querySelector('#cam-caption').textContent"
                           ".includes(` at ${layer} `)", arg=layer)
    page.screenshot(path=str(_shots(tmp_path) / "explorer-trust.png"))
    _select(page, "lenet5-script")
    page.wait_for_selector("#stages [data-role=stages-note]")
    assert "hooks cannot see into" in page.inner_text("#stages [data-role=stages-note]")
    page.wait_for_function("document.querySelector('#cam-caption').textContent"
                           ".includes('hooks cannot see into')")
    assert page.locator("#trust").inner_text() == ""  # the verdict went with its image's run
    _select(page, "own-code")
    assert "--run-code" in page.inner_text("#run-error")


def test_the_units_tab_synthesises_a_layer_finds_its_patches_and_sends_a_class_to_explore(
        page, server, tmp_path):
    """The Units tab offers the commands' layers (classes first), shows the synthesised classes with
    what POST /features computed, and a class's image clicked is classified in the Explore tab as
    POST /predict classifies the same pixels as they are; a spatial stage gets its top patches, a
    fully connected one cannot."""
    _select(page, "lenet5-a")
    page.click("#tabs button[data-tab='units']")
    page.wait_for_selector("#units-layer option", state="attached")
    offered = _api(server, "/api/runs/lenet5-a/units")
    options = page.locator("#units-layer option").evaluate_all("os => os.map(o => o.value)")
    assert options == offered["features"] and page.input_value("#units-layer") == "classes"
    page.click("#units-synthesise")
    page.wait_for_selector("#units-features-status .units-spinner")  # it says it is working
    page.wait_for_selector("#units-features figure", timeout=120_000)
    figures = page.locator("#units-features figure")
    classes = _api(server, "/api/runs/lenet5-a/model")["classes"]
    assert figures.evaluate_all("fs => fs.map(f => f.querySelector('strong').textContent)") == \
        classes
    page.wait_for_function("[...document.querySelectorAll('#units-features img')]"
                           ".every(i => i.complete && i.naturalWidth === 28)")  # at input size
    assert page.evaluate(OVERFLOW) <= 0
    page.set_viewport_size({"width": 1366, "height": 1100})
    page.screenshot(path=str(_shots(tmp_path) / "explorer-units-features.png"))
    assert "10 classes (logits), 128 steps, seed 0" in page.inner_text(
        "#units-features-status")
    chosen = figures.nth(3)
    png = base64.b64decode(chosen.locator("img").get_attribute("src").split(",", 1)[1])
    expected = _api(server, "/api/runs/lenet5-a/predict?prepare=false", png)
    chosen.click()
    page.wait_for_function("document.querySelector('#truth').textContent.includes('synthesised "
                           f"for {classes[3]}')")
    assert page.locator("#explore").is_visible() and not page.is_checked("#prepare")
    shown = page.locator("#topk .prob").all_inner_texts()
    assert page.inner_text("#topk li.top .label") == expected["top_k"][0]["class"]
    assert shown == [f"{p['probability'] * 100:.1f}%" for p in expected["top_k"]]
    page.check("#prepare")  # as the other tests expect it
    page.click("#tabs button[data-tab='units']")
    page.select_option("#units-layer", "F6")
    assert page.is_disabled("#units-find-patches")
    assert "C1, S2, C3, S4" in page.inner_text("#units-patches-status")
    page.select_option("#units-layer", "C3")
    page.click("#units-find-patches")
    page.wait_for_selector("#units-patches .patch-unit", timeout=120_000)
    assert page.locator("#units-patches .patch-unit").count() == 16  # C3's 16 channels
    values = page.locator("#units-patches .patch-unit").first.locator("figure").evaluate_all(
        "fs => fs.map(f => Number(f.dataset.value))")
    assert len(values) == 9 and values == sorted(values, reverse=True)
    assert "14×14 receptive field" in page.inner_text("#units-patches-status")
    page.click("#units-synthesise")  # C3's hidden units: each beside the test set's mean and max
    page.wait_for_function("document.querySelectorAll('#units-features figure').length === 16",
                           timeout=120_000)
    first = page.inner_text("#units-features figure >> nth=0")
    assert first.startswith("unit 0\nactivation ") and "test mean " in first and "max " in first
    assert page.evaluate(OVERFLOW) <= 0
    page.screenshot(path=str(_shots(tmp_path) / "explorer-units-patches.png"), full_page=True)
    page.set_viewport_size(VIEWPORT)
    page.click("#tabs button[data-tab='explore']")
