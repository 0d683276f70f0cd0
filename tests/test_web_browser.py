"""End to end in a real headless Chromium against ``vestige serve``: log in, open a case, upload,
analyse, read the findings, download the report. Screenshots of each page go to
``$VESTIGE_SCREENSHOTS`` (default: the test's temporary folder) so people can look at them.
"""

from __future__ import annotations

import base64
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import encode, photo

from vestige.access.accounts import add_user

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
PASSWORD = "a long lab password"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER), reason="needs Debian's chromium and chromium-driver (.ci/run installs them)"),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def server(workspace, env, tmp_path):
    """``vestige serve`` on a free loopback port, on this test's workspace, with only the metadata detector
    (and the perturbations, for robustness copies)."""
    with workspace.db.session() as session:
        add_user(session, username="examiner", role="examiner", password=PASSWORD)
    port = free_port()
    log = (tmp_path / "serve.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-c", "from vestige.cli import main; main()", "serve", "--host", "127.0.0.1", "--port", str(port)],
        env={**os.environ, **env, "VESTIGE_PLUGINS": "metadata,perturb", "VESTIGE_CONFIG": str(Path(__file__).parents[1] / "config.toml")},
        stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"{url}/login", timeout=1)
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise AssertionError("vestige serve did not start:\n" + (tmp_path / "serve.log").read_text())
            time.sleep(0.2)
    yield url
    process.terminate()
    process.wait(timeout=10)
    log.close()


@pytest.fixture
def chrome(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    downloads = tmp_path / "downloads"
    downloads.mkdir()
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-dev-shm-usage",
                 f"--user-data-dir={tmp_path / 'chrome-profile'}", "--window-size=1280,900"):
        options.add_argument(flag)
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                              "download.prompt_for_download": False})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.downloads = downloads
    driver.implicitly_wait(5)
    yield driver
    driver.quit()


def log_in_and_open_case(chrome, wait, reference: str, title: str) -> None:
    """From the login page: log in as the examiner and open a case."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready

    chrome.find_element(By.NAME, "username").send_keys("examiner")
    chrome.find_element(By.NAME, "password").send_keys(PASSWORD)
    chrome.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    wait.until(ready.title_contains("Cases"))
    chrome.find_element(By.NAME, "reference").send_keys(reference)
    chrome.find_element(By.NAME, "title").send_keys(title)
    chrome.find_element(By.XPATH, "//button[text()='Open case']").click()
    wait.until(ready.title_contains(reference))


def make_report(chrome, wait, fmt: str) -> list[Path]:
    """From the case page: make a report in ``fmt``, download it, and return the downloaded files of that format."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import Select

    Select(chrome.find_element(By.NAME, "format")).select_by_value(fmt)
    chrome.find_element(By.XPATH, "//button[text()='Make report']").click()
    wait.until(ready.element_to_be_clickable((By.LINK_TEXT, "Download"))).click()
    deadline = time.monotonic() + 20
    while not list(chrome.downloads.glob(f"*.{fmt}")) and time.monotonic() < deadline:
        time.sleep(0.2)
    return list(chrome.downloads.glob(f"*.{fmt}"))


def test_work_a_case_end_to_end_in_chromium(server, chrome, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import WebDriverWait

    shots = Path(os.environ.get("VESTIGE_SCREENSHOTS", tmp_path / "screenshots"))
    shots.mkdir(parents=True, exist_ok=True)
    wait = WebDriverWait(chrome, 30)

    def shot(name: str) -> None:
        height = chrome.execute_script("return document.documentElement.scrollHeight")
        chrome.set_window_size(1280, max(900, min(height, 4000)))
        chrome.execute_script("window.scrollTo(0, 0)")
        chrome.save_screenshot(str(shots / f"{name}.png"))
        chrome.set_window_size(1280, 900)

    files = []
    for i, (fmt, ext) in enumerate([("JPEG", "jpg"), ("PNG", "png"), ("JPEG", "jpg")]):
        path = tmp_path / f"evidence-{i}.{ext}"
        path.write_bytes(encode(photo(40 + i, size=256), fmt))
        files.append(path)
    (tmp_path / "notes.jpg").write_text("not a picture at all")
    files.append(tmp_path / "notes.jpg")

    chrome.get(f"{server}/cases")
    assert "/login" in chrome.current_url
    shot("01-login")
    log_in_and_open_case(chrome, wait, "E2E-2026-0001", "Images from a forum thread")
    shot("02-new-case")

    chrome.find_element(By.LINK_TEXT, "Add evidence").click()
    chrome.find_element(By.CSS_SELECTOR, "input[type=file]").send_keys("\n".join(str(p) for p in files))
    chrome.find_element(By.NAME, "source").send_keys("forum thread 118")
    chrome.find_element(By.XPATH, "//button[text()='Upload']").click()
    wait.until(ready.text_to_be_present_in_element((By.ID, "result"), "added,"))  # the new page, not the old one
    result = chrome.find_element(By.ID, "result").text
    assert "3 added, 0 already in the case, 1 refused." in result
    assert "notes.jpg is not a supported image type" in result
    shot("03-upload-result")

    # Drag and drop: a file dropped on the drop zone becomes the form's file list.
    dropped = base64.b64encode(encode(photo(50, size=128), "PNG")).decode()
    chrome.execute_script("""
        const bytes = Uint8Array.from(atob(arguments[0]), (c) => c.charCodeAt(0));
        const transfer = new DataTransfer();
        transfer.items.add(new File([bytes], "dropped.png", {type: "image/png"}));
        document.querySelector("[data-drop]").dispatchEvent(new DragEvent("drop", {dataTransfer: transfer, bubbles: true}));
    """, dropped)
    assert "dropped.png" in chrome.find_element(By.CSS_SELECTOR, "[data-chosen]").text
    chrome.find_element(By.XPATH, "//button[text()='Upload']").click()
    wait.until(ready.text_to_be_present_in_element((By.ID, "result"), "1 added, 0 already in the case, 0 refused."))
    assert "dropped.png" in chrome.find_element(By.ID, "result").text

    chrome.find_element(By.LINK_TEXT, "Back to the case").click()
    assert len(chrome.find_elements(By.CSS_SELECTOR, "ul.gallery li")) == 4
    chrome.find_element(By.XPATH, "//button[text()='Run analysis']").click()
    # The page polls the analysis and reloads once it is done: then every thumbnail carries its verdict.
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "[data-analysis] .status.done")
               and not d.find_elements(By.CSS_SELECTOR, "ul.gallery .badge.none"))
    shot("04-case-analysed")

    chrome.find_element(By.CSS_SELECTOR, "ul.gallery li a").click()
    wait.until(ready.presence_of_element_located((By.CSS_SELECTOR, "article.finding")))
    assert "metadata" in chrome.find_element(By.CSS_SELECTOR, "article.finding").text
    shot("05-image-findings")

    chrome.back()
    downloaded = make_report(chrome, wait, "json")
    assert downloaded and downloaded[0].name.startswith("E2E-2026-0001-report-")
    shot("06-case-with-report")

    chrome.find_element(By.PARTIAL_LINK_TEXT, "Custody log").click()
    assert "The hash chain is intact" in chrome.find_element(By.CSS_SELECTOR, ".chain").text
    shot("07-custody")

    chrome.find_element(By.LINK_TEXT, "Cases").click()
    assert "E2E-2026-0001" in chrome.find_element(By.CSS_SELECTOR, "table.list").text
    shot("08-cases")
    chrome.find_element(By.LINK_TEXT, "Plugins & models").click()
    assert "metadata" in chrome.find_element(By.CSS_SELECTOR, "table.list").text
    shot("09-plugins")


def test_form_defaults_copies_and_a_web_report_that_fits_in_chromium(server, chrome, tmp_path):
    """Issue 24: the form's defaults run, copies stay under their originals, the HTML report fits its column."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import WebDriverWait

    shots = Path(os.environ.get("VESTIGE_SCREENSHOTS", tmp_path / "screenshots"))
    shots.mkdir(parents=True, exist_ok=True)
    wait = WebDriverWait(chrome, 60)
    files = []
    for i in range(2):
        path = tmp_path / f"evidence-{i}.jpg"
        path.write_bytes(encode(photo(60 + i, size=200), "JPEG"))
        files.append(path)

    chrome.get(f"{server}/login")
    log_in_and_open_case(chrome, wait, "E2E-2026-0002", "Copies and reports")
    chrome.find_element(By.LINK_TEXT, "Add evidence").click()
    chrome.find_element(By.CSS_SELECTOR, "input[type=file]").send_keys("\n".join(str(p) for p in files))
    chrome.find_element(By.XPATH, "//button[text()='Upload']").click()
    wait.until(ready.text_to_be_present_in_element((By.ID, "result"), "2 added"))
    chrome.find_element(By.LINK_TEXT, "Back to the case").click()

    # The defaults as the form offers them, plus robustness copies.
    checked = [box.get_attribute("value") for box in chrome.find_elements(By.CSS_SELECTOR, "input[name=detectors]:checked")]
    assert checked == ["metadata"]
    chrome.find_element(By.NAME, "robustness").click()
    chrome.find_element(By.XPATH, "//button[text()='Run analysis']").click()
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "[data-analysis] .status.done")
               and not d.find_elements(By.CSS_SELECTOR, "ul.gallery .badge.none"))
    assert chrome.find_element(By.CSS_SELECTOR, "section h2 .count").text == "2"
    assert len(chrome.find_elements(By.CSS_SELECTOR, "ul.gallery > li")) == 2
    assert len(chrome.find_elements(By.CSS_SELECTOR, "ul.gallery .verdict")) == 2
    chrome.find_element(By.CSS_SELECTOR, "details.copies summary").click()
    assert "7 lab-made copies" in chrome.find_element(By.CSS_SELECTOR, "details.copies").text
    shot_height = chrome.execute_script("return document.documentElement.scrollHeight")
    chrome.set_window_size(1280, max(900, min(shot_height, 4000)))
    chrome.save_screenshot(str(shots / "10-case-with-copies.png"))
    chrome.set_window_size(1280, 900)

    (report,) = make_report(chrome, wait, "html")
    chrome.get(report.as_uri())
    overflow = chrome.execute_script("""
        const body = document.body.getBoundingClientRect();
        return Array.from(document.querySelectorAll('table, svg, pre, figure'))
            .map((e) => [e.tagName, Math.round(e.getBoundingClientRect().right - body.right)])
            .filter(([, over]) => over > 1);""")
    assert overflow == [], f"wider than the report's column: {overflow}"
    assert "Appendix: plugin data" in chrome.find_element(By.TAG_NAME, "body").text
    chrome.save_screenshot(str(shots / "11-html-report.png"))
