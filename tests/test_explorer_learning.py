"""The explorer's occlusion panel and timeline slider in a real browser (the server, Chromium and
page fixtures of test_explorer_browser.py, on a folder of their own): the occlusion button draws
the map, its colour scale and Grad-CAM, and states the ρ the API computes; the slider shows each
epoch's kernels as the API gives them and marks the epoch on the accuracy chart; a run without
snapshots says in one line how to get them. Screenshots: /tmp/occl.png, /tmp/timeline.png."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

browser = pytest.importorskip("test_explorer_browser")  # skips as it does without Chromium
_api, _select, _shots = browser._api, browser._select, browser._shots
# its fixtures, run here on this module's browser_runs
page, playwright, server = browser.page, browser.playwright, browser.server


@pytest.fixture(scope="module")
def browser_runs(explorer_runs, tiny_mnist_dir, tmp_path_factory) -> Path:
    """Overrides test_explorer_browser's folder: "timeline" keeps every snapshot (epochs 0–2),
    "plain" none, and the shared "lenet5-a"."""
    from cnnzoo import rundir
    from cnnzoo.engine.config import TrainConfig
    from cnnzoo.engine.train import train

    root = tmp_path_factory.mktemp("learning-browser") / "runs"
    train(TrainConfig(model="lenet5", dataset="mnist", data_dir=str(tiny_mnist_dir), epochs=2,
                      batch_size=64, lr=0.1, snapshots="all", out=str(root / "timeline")))
    shutil.copytree(root / "timeline", root / "plain")
    shutil.rmtree(root / "plain" / rundir.SNAPSHOTS)
    shutil.copytree(explorer_runs / "lenet5-a", root / "lenet5-a")
    return root


@pytest.fixture(scope="module")
def digit_file(tiny_mnist_dir, tmp_path_factory) -> Path:
    from PIL import Image

    from cnnzoo.data.loading import load_dataset

    test = load_dataset("mnist", tiny_mnist_dir, in_channels=1).test
    path = tmp_path_factory.mktemp("occlusion-digit") / "digit.png"
    Image.fromarray(test.images[3, 0].numpy()).resize((112, 112)).save(path)
    return path


def _tab(page, name: str) -> None:
    page.click(f"#tabs button[data-tab='{name}']")


KERNEL_PIXELS = """() => { const c = document.querySelector('#timeline-kernels canvas');
  return Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data); }"""
MARK = """() => { const c = document.querySelector('#acc-chart'), f = c.chartFrame;
  const epoch = +document.querySelector('#timeline').dataset.epoch;
  const x = Math.round(Math.max(f.x(epoch), f.m.left)), y = Math.round(f.m.top + f.H / 2);
  return Array.from(c.getContext('2d').getImageData(x, y, 1, 1).data); }"""


def _expected_kernel_pixels(page, kernels: np.ndarray) -> np.ndarray:
    """Kernel 0's first input channel as the page should paint it: scaled by its largest |w|,
    through the page's own signed colour map."""
    lut = np.array(page.evaluate("Array.from(LUTS.signed)"), np.uint8).reshape(256, 3)
    kernel = kernels[0, 0]
    scaled = np.round((kernel / np.abs(kernel).max() + 1) * 127.5).astype(int)
    return np.concatenate([lut[scaled], np.full((*scaled.shape, 1), 255, np.uint8)], -1)


def test_the_slider_shows_each_epochs_kernels_and_marks_it_on_the_chart(page, server, tmp_path):
    import base64

    _select(page, "timeline")
    _tab(page, "training")
    page.wait_for_selector("#timeline-epoch")
    page.wait_for_function("document.querySelector('#timeline').dataset.epoch === '2'")
    assert page.get_attribute("#timeline-epoch", "max") == "2"
    shown = {}
    for epoch in (2, 0, 1):
        if epoch != 2:
            page.focus("#timeline-epoch")
            page.keyboard.press("Home" if epoch == 0 else "ArrowRight")
            page.wait_for_function("e => document.querySelector('#timeline').dataset.epoch === e",
                                   arg=str(epoch))
        label = page.inner_text("#timeline-label")
        assert label.startswith(f"epoch {epoch}") and ("as initialised" in label) == (epoch == 0)
        packed = _api(server, f"/api/runs/timeline/snapshots/{epoch}")["kernels"]
        kernels = np.frombuffer(base64.b64decode(packed["data"]), "<f4").reshape(packed["shape"])
        pixels = np.array(page.evaluate(KERNEL_PIXELS), np.uint8).reshape(5, 5, 4)
        assert np.abs(pixels.astype(int) - _expected_kernel_pixels(page, kernels)).max() <= 1
        assert page.locator("#timeline-kernels canvas").count() == 6  # lenet5's C1
        assert page.locator("#timeline-maps canvas").count() == 6 + 16  # C1 and C3, probe 0
        red, green, blue, _ = page.evaluate(MARK)
        assert red > 150 and green < 90 and blue < 90, (epoch, red, green, blue)  # the mark
        shown[epoch] = pixels
    assert not np.array_equal(shown[0], shown[2])  # training moved the kernels
    page.locator("#timeline-probes button").nth(1).click()
    page.wait_for_selector("#timeline-probes button.chosen:nth-child(2)")
    top = page.locator("#training .row").first.bounding_box()
    panel = page.locator("#timeline-panel").bounding_box()
    page.screenshot(path=str(_shots(tmp_path) / "explorer-timeline.png"), full_page=True, clip={
        "x": top["x"], "y": top["y"], "width": top["width"],
        "height": panel["y"] + panel["height"] - top["y"]})


def test_a_run_without_snapshots_says_how_to_get_them(page):
    _select(page, "plain")
    _tab(page, "training")
    page.wait_for_selector("#timeline [data-role=timeline-hint]")
    hint = page.inner_text("#timeline [data-role=timeline-hint]")
    assert "cnnzoo train … --snapshots all" in hint and "\n" not in hint
    assert page.locator("#timeline-epoch").count() == 0


def test_occlusion_draws_the_map_and_states_the_apis_rank_correlation(page, server, digit_file,
                                                                      tmp_path):
    _select(page, "lenet5-a")
    _tab(page, "explore")
    page.set_input_files("#file", str(digit_file))
    page.wait_for_function("name => document.querySelector('#truth').textContent.includes(name)",
                           arg=digit_file.name)
    page.wait_for_function("document.querySelector('#cam-caption').textContent"
                           ".includes('Grad-CAM for')")
    page.click("#occlusion-run")
    page.wait_for_function("document.querySelector('#occlusion').dataset.rho", timeout=60_000)
    expected = _api(server, "/api/runs/lenet5-a/occlusion", digit_file.read_bytes())
    assert float(page.get_attribute("#occlusion", "data-rho")) == expected["rank_correlation"]
    sentence = page.inner_text("#occlusion [data-role=occlusion-rho]")
    assert sentence.startswith(f"ρ = {expected['rank_correlation']:.2f}: ")
    assert f"Grad-CAM at {expected['cam_layer']}" in page.inner_text("#occlusion")
    text = page.inner_text("#occlusion")
    assert f"grey {expected['patch']}×{expected['patch']} square" in text and "probability" in text
    varied = """sel => { const c = document.querySelector(sel);
      const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      return new Set(Array.from({length: d.length / 4}, (_, i) => d[4 * i])).size; }"""
    assert page.evaluate(varied, "[data-role=occlusion-map]") > 5
    assert page.evaluate(varied, "#occlusion canvas.scale") > 5
    shot = _shots(tmp_path) / "explorer-occlusion.png"
    page.locator("#prediction-panel").screenshot(path=str(shot))
    page.select_option("#cam-class", "0")  # another class: the maps no longer speak of it
    page.wait_for_function("!document.querySelector('#occlusion').dataset.rho")
