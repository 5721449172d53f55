"""The page in a real headless Chromium: microphone (a WAV file) -> server -> events on screen.

Chromium's fake capture device plays a WAV of two speech-like bursts: the scripted engine
answers after the first, and the second starts while it talks, so the page must show
``answering``, then ``interrupted``, then ``answering`` again. Needs Debian's ``chromium`` and
``chromium-driver`` (``make test`` installs them).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import soundfile as sf
from scripted_engine import ScriptedEngine, bursts
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from speechlm.realtime.server import ServerConfig, serve_in_thread

CHROMIUM, DRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"

pytestmark = pytest.mark.skipif(
    not (Path(CHROMIUM).exists() and Path(DRIVER).exists()),
    reason="chromium and chromium-driver are not installed (apt-get install chromium "
           "chromium-driver; `make test` does it)")


def microphone_wav(path: Path) -> Path:
    """Silence, a 0.6-s burst, silence (the answer starts), a burst that cuts in, silence."""
    sr = 48000  # the capture device's own rate: Chromium does not resample the file
    pcm = bursts([(0.6, 1.2), (1.9, 2.5)], 5.0, sample_rate=sr)
    sf.write(path, pcm, sr, subtype="PCM_16")
    return path


def test_page_talks_to_the_server(tmp_path):
    wav = microphone_wav(tmp_path / "mic.wav")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                 f"--use-file-for-fake-audio-capture={wav}%noloop",
                 "--autoplay-policy=no-user-gesture-required"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})

    engine = ScriptedEngine()
    with serve_in_thread(engine, config=ServerConfig(stats_interval_s=0.5)) as server:
        driver = webdriver.Chrome(service=Service(DRIVER), options=options)
        try:
            driver.set_page_load_timeout(10)
            # ?raw=1: no echo cancellation or noise suppression reshaping the test bursts
            driver.get(f"http://127.0.0.1:{server.port}/?raw=1")
            driver.find_element(By.ID, "start").click()

            def kinds(d) -> list[str]:
                return [li.get_attribute("data-kind")
                        for li in d.find_elements(By.CSS_SELECTOR, "#events li")]

            def rx_frames(d) -> int:
                return int(d.find_element(By.ID, "rx-frames").text)

            WebDriverWait(driver, 15).until(lambda d: len(kinds(d)) >= 3)
            first = rx_frames(driver)
            time.sleep(0.3)
            assert rx_frames(driver) > first > 0
            assert kinds(driver)[:3] == ["answering", "interrupted", "answering"]
            assert driver.find_element(By.ID, "transcript").text.startswith("hello")
            assert driver.find_element(By.ID, "status").get_attribute("data-state") == "ready"
            assert engine.samples_pushed > 16000 * 2.5  # the burst timings went through
            WebDriverWait(driver, 5).until(
                lambda d: d.find_element(By.ID, "stats").text.startswith("step p50"))
            driver.find_element(By.ID, "start").click()  # stop: the session is freed
            deadline = time.monotonic() + 5
            while engine.open and time.monotonic() < deadline:
                time.sleep(0.05)
            assert engine.open == 0 and server.active == 0
            errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
            assert not errors, errors
        finally:
            driver.quit()
