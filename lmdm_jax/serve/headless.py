"""Driving `lmdm serve`'s page in headless Chromium (selenium), for the
browser tests (tests/serve/test_serve_browser.py) and the 60 s benchmark
(benchmarks/serve_60s.py).

Needs Debian's chromium + chromium-driver and `pip install selenium`. The
flags let the page start audio with no gesture and give it a fake
microphone, so the jam model's partner input runs in a test.
"""
from __future__ import annotations

import shutil
import time

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")


def browser():
  """A headless Chrome webdriver (1280x860) that keeps the console log."""
  from selenium import webdriver
  from selenium.webdriver.chrome.service import Service
  if not (CHROMIUM and DRIVER):
    raise RuntimeError("needs Debian's chromium and chromium-driver "
                       "(apt-get install chromium chromium-driver)")
  o = webdriver.ChromeOptions()
  for a in ("--headless=new", "--no-sandbox", "--disable-gpu",
            "--disable-dev-shm-usage", "--window-size=1280,860",
            "--autoplay-policy=no-user-gesture-required",
            "--use-fake-ui-for-media-stream",
            "--use-fake-device-for-media-stream"):
    o.add_argument(a)
  o.binary_location = CHROMIUM
  o.set_capability("goog:loggingPrefs", {"browser": "ALL"})
  return webdriver.Chrome(service=Service(DRIVER), options=o)


def wait_js(d, expr: str, timeout: float, what: str):
  """Polls the page's JavaScript `expr` until truthy -> its value; after
  `timeout` s an AssertionError that names `what` and the page's stats."""
  end = time.time() + timeout
  while time.time() < end:
    v = d.execute_script(f"return {expr}")
    if v:
      return v
    time.sleep(0.2)
  raise AssertionError(
      f"timed out after {timeout} s waiting for {what}: "
      f"{d.execute_script('return JSON.stringify({s: window.lmdm.stats, w: window.lmdm.worklet, e: window.lmdm.errors})')}")
