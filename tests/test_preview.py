"""The live preview: pure parts on plain values, then ``edge-run --preview`` opened in a real
headless chromium driven by selenium (the picture moves, the page's label matches the events)."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from edge.errors import PreviewError
from edge.preview import parse_bind
from edge.preview.metrics import prometheus_text
from edge.preview.server import render_page
from tests.conftest import ROOT, need_tool
from tests.process_lines import stderr_lines, wait_line

ENV = {**os.environ, "PYTHONPATH": str(ROOT), "NOTIFY_SOCKET": ""}


def test_bind_addresses() -> None:
    assert parse_bind("8080") == ("127.0.0.1", 8080)
    assert parse_bind("0.0.0.0:9000") == ("0.0.0.0", 9000)
    assert parse_bind("[::1]:0") == ("::1", 0)
    for bad in ("http", ":80", "1.2.3.4:70000", "-1"):
        with pytest.raises(PreviewError, match=r"use \[HOST:\]PORT"):
            parse_bind(bad)


def test_metrics_text_format() -> None:
    text = prometheus_text({"frames": 12, "recent_fps": 30.5, "latency_p50_ms": 4.0,
                            "latency_p95_ms": None, "accuracy": None,
                            "sinks": {"mqtt": {"queued": 3, "delivered": 9}}},
                           {"clients": 1, "encoded": 7, "fps": 29.9})
    lines = text.splitlines()
    assert "edge_frames_total 12" in lines and "edge_fps 30.5" in lines
    assert 'edge_latency_ms{quantile="0.5"} 4.0' in lines
    assert not any("0.95" in line or "accuracy" in line for line in lines)  # unknown: absent
    assert 'edge_sink_delivered{sink="mqtt"} 9' in lines
    assert "# TYPE edge_preview_clients gauge" in lines
    for line in lines:
        assert line.startswith("#") or re.fullmatch(r"[a-z_]+(\{[a-z]+=\"[^\"]*\"\})? \S+", line)


def test_page_escapes_title_and_token() -> None:
    page = render_page('<cam "1">', 'a&b"<')
    assert b"&lt;cam &quot;1&quot;&gt;" in page
    assert b'src="stream.mjpg?token=a%26b%22%3C"' in page and b"<cam" not in page


def _preview_url(lines: queue.Queue[str]) -> str:
    seen: list[str] = []
    return wait_line(lines, r"preview at (http://\S+)", seen).group(1)


def _get(url: str, token: str | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


@contextmanager
def running_preview(out: Path, *extra: str) -> Iterator[str]:
    """edge-run on the demo scene with a preview on a free port; yields the preview's URL."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge", "run", "--camera", "demo", "--max-frames", "10000000",
         "--preview", "0", "--output", str(out), "--status-interval", "0.5", *extra],
        cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        yield _preview_url(stderr_lines(proc))
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=120) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


def test_token_guards_every_route_and_status_and_metrics_answer(tmp_path: Path) -> None:
    with running_preview(tmp_path / "labels.jsonl", "--preview-token", "s3cret") as url:
        assert _get(url + "status")[0] == 401
        assert _get(url + "metrics?token=wrong")[0] == 401
        assert _get(url)[0] == 401
        code, body = _get(url + "status?token=s3cret")
        assert code == 200 and "last" in json.loads(body)
        code, body = _get(url + "metrics", token="s3cret")
        assert code == 200 and b"# TYPE edge_preview_clients gauge" in body


@pytest.fixture
def browser() -> Iterator[object]:
    webdriver = pytest.importorskip("selenium.webdriver", reason="pip install selenium (dev)")
    chromium = need_tool("chromium", "apt install chromium")
    driver_exe = need_tool("chromedriver", "apt install chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    profile = tempfile.mkdtemp(prefix="edge-chromium-")
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", "--window-size=800,900",
                f"--user-data-dir={profile}"):
        options.add_argument(arg)
    from selenium.webdriver.chrome.service import Service

    driver = webdriver.Chrome(service=Service(executable_path=driver_exe), options=options)
    driver.set_page_load_timeout(120)
    try:
        yield driver
    finally:
        driver.quit()
        import shutil

        shutil.rmtree(profile, ignore_errors=True)


@pytest.mark.slow
def test_preview_in_a_real_browser(browser: object, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver: object = browser
    out = tmp_path / "labels.jsonl"
    shown: list[tuple[int, str]] = []
    with running_preview(out) as url:
        driver.get(url)  # type: ignore[attr-defined]
        wait = WebDriverWait(driver, 120, poll_frequency=0.2)
        image = driver.find_element(By.ID, "stream")  # type: ignore[attr-defined]
        wait.until(lambda d: d.execute_script(
            "const i = document.getElementById('stream'); return i.complete && "
            "i.naturalWidth > 0"))
        first = image.screenshot_as_png
        wait.until(lambda d: image.screenshot_as_png != first)  # the picture moves
        assert first.startswith(b"\x89PNG")
        for _ in range(3):  # the label on the page, at three moments
            before = shown[-1][0] if shown else -1
            seq, text = wait.until(lambda d, before=before: _label(d, before))
            shown.append((seq, text))
        code, body = _get(url + "status")
        assert code == 200 and json.loads(body)["preview"]["clients"] >= 1
    events = {e["seq"]: e for e in map(json.loads, out.read_text().splitlines())}
    assert shown and all(events[seq]["label"] == text for seq, text in shown), shown


def _label(driver: object, after: int) -> tuple[int, str] | None:
    seq, text = driver.execute_script(  # type: ignore[attr-defined]
        "const l = document.getElementById('label'); return [l.dataset.seq, l.textContent];")
    return (int(seq), text) if seq and int(seq) > after else None
