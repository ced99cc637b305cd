"""Screenshots of the ``ciaosr serve`` page in a real headless Chromium.

    python scripts/serve_screenshot.py                 # -> docs/images/serve.png
    python scripts/serve_screenshot.py -o /tmp/shots   # every state: idle, running, done, 1:1, error

Runs the server in this process on a free loopback port, loads the page in Debian's
``chromium`` through ``chromedriver`` (``apt-get install chromium chromium-driver``;
Selenium is told where both are, so it downloads nothing), uploads
``samples/landscape.png`` and upscales it x4 with the shipped default model.

The helpers (``running_server``, ``chromium``, ``upload_and_run``) are also what
``tests/test_serve_browser.py`` drives the page with.
"""

from __future__ import annotations

import argparse
import io
import os
import socket
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def browser_missing() -> str | None:
    """Why the browser cannot run here, or None."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.access(path, os.X_OK):
            return f"{path} missing (apt-get install chromium chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ModuleNotFoundError:
        return "selenium missing (pip install selenium)"
    return None


@contextmanager
def running_server(app, timeout: float = 30.0):
    """``app`` served by uvicorn in a thread on 127.0.0.1 and a free port; its URL.
    Stopped (and its files deleted, by the app's shutdown) on leaving."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout)
        sock.close()


@contextmanager
def chromium(download_dir: Path, size: tuple[int, int] = (1280, 760)):
    """A headless Chromium (Selenium) that saves downloads to ``download_dir``."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--force-device-scale-factor=1", "--hide-scrollbars", f"--window-size={size[0]},{size[1]}",
                "--no-first-run", "--disable-extensions", "--disable-background-networking"):
        options.add_argument(arg)
    options.add_experimental_option("prefs", {"download.default_directory": str(download_dir),
                                              "download.prompt_for_download": False,
                                              "safebrowsing.enabled": False})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    # The viewport itself (the window size includes the browser's frame).
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": size[0], "height": size[1], "deviceScaleFactor": 1, "mobile": False})
    driver.set_page_load_timeout(30)
    driver.set_script_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(driver, check, timeout: float = 60.0, what: str = "the page"):
    """``check(driver)``'s first true value, polled; a clear error after ``timeout``."""
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.1).until(check)
    except Exception:
        status = driver.execute_script("return document.getElementById('status').innerText")
        raise AssertionError(f"timed out waiting for {what}; status: {status!r}") from None


def state(driver) -> str:
    return driver.execute_script("return document.getElementById('status').dataset.state")


def upload_and_run(driver, url: str | None, image: Path, scale: str, wait: bool = True) -> None:
    """Load the page (unless ``url`` is None: loaded already), pick ``image``, type the
    scale, press Upscale (and wait for the end)."""
    from selenium.webdriver.common.by import By

    if url is not None:  # else the page is loaded already
        driver.get(url)
        wait_for(driver, lambda d: d.execute_script("return document.getElementById('model').options.length > 0"),
                 30, "the model list")
    driver.find_element(By.ID, "file").send_keys(str(image))
    box = driver.find_element(By.ID, "scale-x-num")
    box.clear()
    box.send_keys(scale)
    # Upscale is enabled once the server has checked the size (at once for a file the
    # browser cannot show, whose size only the server reads).
    wait_for(driver, lambda d: not d.find_element(By.ID, "run").get_attribute("disabled"), 30, "the output size")
    driver.find_element(By.ID, "run").click()
    if wait:
        wait_for(driver, lambda d: state(d) in ("done", "failed", "cancelled"), 120, "the job")
        # The comparison is shown once both images have loaded.
        wait_for(driver, lambda d: d.execute_script(
            "const a = document.getElementById('after'); return !a.hidden && a.complete && a.naturalWidth > 0")
            or state(d) != "done", 30, "the result images")


def save_png(png: bytes, path: Path) -> Path:
    """A screenshot as an optimised RGB PNG (a palette would band the images' gradients
    into rings the model never made)."""
    from PIL import Image

    Image.open(io.BytesIO(png)).convert("RGB").save(path, optimize=True)
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-o", "--out", default=None,
                        help="folder for every state's screenshot (default: only docs/images/serve.png)")
    args = parser.parse_args(argv)
    missing = browser_missing()
    if missing:
        print(f"error: {missing}", file=sys.stderr)
        return 2
    sys.path.insert(0, str(REPO / "src"))
    import tempfile

    from selenium.webdriver.common.by import By

    from ciaosr.serve.app import create_app

    out = Path(args.out) if args.out else None
    if out:
        out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp, running_server(create_app()) as url, chromium(Path(tmp)) as driver:
        if out:
            driver.get(url)
            wait_for(driver, lambda d: d.find_element(By.ID, "limits").text, 30, "the page")
            save_png(driver.get_screenshot_as_png(), out / "1-idle.png")
        if out:  # running (small tiles make it slow enough to look at), then cancelled
            driver.get(url)
            wait_for(driver, lambda d: d.execute_script(
                "return document.getElementById('model').options.length > 0"), 30, "the model list")
            driver.find_element(By.ID, "advanced").click()
            driver.find_element(By.ID, "tile").send_keys("16")
            upload_and_run(driver, None, REPO / "samples" / "landscape.png", "4", wait=False)
            wait_for(driver, lambda d: "Upscaling: tile" in d.find_element(By.ID, "status-text").text, 120, "the tiles")
            save_png(driver.get_screenshot_as_png(), out / "2-running.png")
            driver.find_element(By.ID, "cancel").click()
            wait_for(driver, lambda d: state(d) == "cancelled", 60, "the cancellation")
            save_png(driver.get_screenshot_as_png(), out / "2-cancelled.png")
        upload_and_run(driver, url, REPO / "samples" / "landscape.png", "4")
        if state(driver) != "done":
            raise SystemExit(f"error: the job did not finish: {driver.find_element(By.ID, 'status').text}")
        driver.execute_script("setSplit(42)")
        shot = save_png(driver.get_screenshot_as_png(), REPO / "docs" / "images" / "serve.png")
        print(f"wrote {shot.relative_to(REPO)} ({shot.stat().st_size // 1024} KiB)")
        if out:
            save_png(driver.get_screenshot_as_png(), out / "3-done.png")
            driver.execute_script("setZoom('one', {x: 0.45, y: 0.5})")
            time.sleep(0.3)
            save_png(driver.get_screenshot_as_png(), out / "4-zoom.png")
            # An error the command line would give: an output over the server's limit.
            box = driver.find_element(By.ID, "scale-x-num")
            box.clear()
            box.send_keys("100")
            wait_for(driver, lambda d: "limit" in d.find_element(By.ID, "size-out").text, 30, "the size error")
            save_png(driver.get_screenshot_as_png(), out / "5-size-error.png")
            # A file that is not an image: the server's message in the page.
            fake = Path(tmp) / "holiday.png"
            fake.write_text("not an image")
            driver.get(url)
            upload_and_run(driver, url, fake, "2")
            save_png(driver.get_screenshot_as_png(), out / "6-failed.png")
            print(f"wrote the states to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
