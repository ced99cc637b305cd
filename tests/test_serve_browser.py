"""The ``ciaosr serve`` page end to end in a real headless Chromium (Debian's
``chromium`` and ``chromium-driver``; ``.ci/run`` installs them): load the page,
upload a real image, ask for x2.5, wait for the result, look at the comparison, and
download the file, whose size and pixels must be those of ``ciaosr.upscale``.

Skipped, with the reason, where Chromium, its driver or Selenium is missing, except
under ``CI=true``, where that fails. The screenshot of the finished page is saved in
the test's temporary folder (its path is printed; ``pytest -s`` shows it).
"""

from __future__ import annotations

import importlib.util
import os
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("serve_screenshot", REPO / "scripts" / "serve_screenshot.py")
harness = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(harness)


@pytest.fixture
def browser_ready():
    pytest.importorskip("starlette", reason="the web extra is not installed (pip install \"ciaosr[web]\")")
    missing = harness.browser_missing()
    if missing:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"browser test under CI: {missing}")
        pytest.skip(missing)


def wait_for_file(path: Path, timeout: float = 30.0) -> Path:
    deadline = time.monotonic() + timeout
    while not path.is_file() or any(path.parent.glob("*.crdownload")):
        assert time.monotonic() < deadline, f"no download at {path}: {sorted(p.name for p in path.parent.iterdir())}"
        time.sleep(0.1)
    return path


def test_the_page_upscales_x2_5_and_downloads_the_api_result(browser_ready, tmp_path):
    from selenium.webdriver.common.by import By

    import ciaosr
    from ciaosr.serve.app import create_app

    crop = tmp_path / "crop.png"
    Image.open(REPO / "samples" / "landscape.png").crop((20, 30, 84, 78)).save(crop)  # 64 x 48: the house
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    with harness.running_server(create_app()) as url, harness.chromium(downloads) as driver:
        harness.upload_and_run(driver, url, crop, "2.5")
        status = driver.find_element(By.ID, "status").text
        assert harness.state(driver) == "done", status
        assert driver.find_element(By.ID, "size-out").text == "→ 160 × 120 px (0.02 MP)"
        info = driver.find_element(By.ID, "result-info").text
        assert info.startswith("160 × 120 px · from 64 × 48 px · x2.5 · ") and " s · PNG 8-bit" in info
        images = driver.execute_script("""return ['before', 'after'].map(id => {
            const img = document.getElementById(id), r = img.getBoundingClientRect();
            return [img.naturalWidth, img.naturalHeight, r.width, r.height]; })""")
        (bw, bh, *before_shown), (aw, ah, *after_shown) = images
        assert (bw, bh, aw, ah) == (64, 48, 160, 120)
        assert before_shown == after_shown and after_shown[0] > 160  # one display size, fitted to the viewer
        shot = tmp_path / "serve-done.png"
        driver.save_screenshot(str(shot))
        print(f"screenshot: {shot}")
        driver.find_element(By.ID, "zoom-1").click()  # 1:1: one output pixel per screen pixel
        stage = driver.execute_script("const r = document.getElementById('stage').getBoundingClientRect();"
                                      "return [r.width, r.height]")
        assert stage == [160, 120]
        driver.find_element(By.ID, "download").click()
        got = wait_for_file(downloads / "crop_x2.5.png")
        assert driver.find_element(By.ID, "download").text == "Downloaded"
    expect = np.asarray(ciaosr.upscale(Image.open(crop), scale=2.5))
    result = Image.open(got)
    assert result.size == (160, 120) and result.mode == "RGB"
    diff = np.abs(np.asarray(result).astype(int) - expect.astype(int))
    # The same computation in the same process: equal, up to one 8-bit level where a
    # float sum lands on a rounding edge.
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3, (diff.max(), (diff > 0).mean())
