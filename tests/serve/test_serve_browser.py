"""`lmdm serve` in real headless Chromium (Debian's chromium +
chromium-driver, driven by selenium): the shipped models play through the
page, its controls change the session at a logged block, nothing
recompiles, and a screenshot of the page is saved.

The screenshot goes to $LMDM_SERVE_SCREENSHOTS (a folder) when set, else
to the test's tmp dir.
"""
from __future__ import annotations

import json
import os
import time

import pytest

from lmdm_jax.serve.headless import CHROMIUM, DRIVER, browser, wait_js
from tests import serve_helpers as sh

pytestmark = pytest.mark.slow

needs_browser = pytest.mark.skipif(
    not (CHROMIUM and DRIVER), reason="needs Debian's chromium and "
    "chromium-driver (.ci/install_debian.sh)")
pytest.importorskip("selenium")
pytest.importorskip("aiohttp")


def shot_path(tmp_path, name):
  folder = os.environ.get("LMDM_SERVE_SCREENSHOTS") or str(tmp_path)
  os.makedirs(folder, exist_ok=True)
  return os.path.join(folder, name)


def severe(d):
  return [e for e in d.get_log("browser") if e["level"] == "SEVERE"]


@needs_browser
def test_demo_plays_in_chromium_and_its_controls_change_the_session(
    tmp_path):
  engine, server = sh.start(None)
  d = browser()
  try:
    d.get(server.url())
    wait_js(d, "window.lmdm && window.lmdm.info", 30, "the info message")
    assert severe(d) == []
    d.find_element("id", "play").click()
    wait_js(d, "window.lmdm.blocksScheduled >= 10 && window.lmdm.worklet "
            "&& window.lmdm.worklet.block >= 3", 120,
            ">= 10 blocks received, block 3 heard")
    compiled = sh.jit_cache_sizes(engine.session)
    d.find_element("id", "rec").click()
    acks = d.execute_script("return window.lmdm.acks.length")
    # The CFG slider, moved as a hand does (input events), and pad 2.
    d.execute_script("const s = document.getElementById('cfg');"
                     "for (const v of [2.0, 3.1, 4.2]) { s.value = v;"
                     " s.dispatchEvent(new Event('input')); }")
    d.find_elements("css selector", ".pad button.go")[1].click()
    # 2.0 applies at once, 3.1 is replaced by 4.2 (coalesced within the
    # block), which applies when the next block starts.
    wait_js(d, "window.lmdm.acks.some(a => a.line.startsWith('cfg 4.2'))"
            " && window.lmdm.acks.some(a => a.line.startsWith('x '))", 30,
            "the acks")
    got = d.execute_script("return window.lmdm.acks")[acks:]
    cfg = [a for a in got if a["line"].startswith("cfg 4.2")]
    assert not [a for a in got if a["line"].startswith("cfg 3.1")], got
    xf = [a for a in got if a["line"].startswith("x ")]
    assert cfg and xf, got
    # Applied from the acked block: the session's own log says so.
    wait_js(d, f"window.lmdm.stats.block > {max(cfg[0]['block'], xf[0]['block']) + 1}",
            30, "the controlled blocks")
    log = engine.session.log
    b = cfg[0]["block"]
    assert log[b]["cfg_scale"] == pytest.approx(4.2)
    assert log[b - 1]["cfg_scale"] != pytest.approx(4.2)
    bx = xf[0]["block"]
    assert "fast irish folk fiddle" in log[bx]["prompts"]
    assert "fast irish folk fiddle" not in log[bx - 1]["prompts"]
    assert sh.jit_cache_sizes(engine.session) == compiled   # no recompile
    # The page hears it: control-to-sound latency measured in the page.
    wait_js(d, "window.lmdm.latencies.length >= 1", 30, "a latency figure")
    lat = d.execute_script("return window.lmdm.latencies")
    assert all(0 < x < 30000 for x in lat), lat
    time.sleep(1.0)                    # let the meters show it
    d.find_element("id", "rec").click()   # stop: WAV + control log offered
    sizes = d.execute_async_script(
        "const done = arguments[0];"
        "Promise.all(['dl-wav', 'dl-log'].map(i => fetch(document"
        ".getElementById(i).href).then(r => r.arrayBuffer())))"
        ".then(([w, l]) => done([w.byteLength, new TextDecoder()"
        ".decode(l)]));")
    sr, ch = engine.player.codec.sample_rate, engine.player.codec.channels
    assert sizes[0] > 44 + 2 * ch * sr * 1.0     # > 1 s of 16-bit audio
    rec_log = json.loads(sizes[1])
    assert any(e["line"].startswith("cfg 4.2") for e in rec_log["events"])
    d.save_screenshot(shot_path(tmp_path, "serve_demo.png"))
    assert os.path.getsize(shot_path(tmp_path, "serve_demo.png")) > 10000
    assert severe(d) == []
    assert engine.player.error is None
  finally:
    d.quit()
    sh.stop(engine, server)


@needs_browser
def test_sketch_model_plays_and_a_drawn_curve_reaches_the_session(tmp_path):
  from selenium.webdriver.common.action_chains import ActionChains
  engine, server = sh.start("sketch")
  d = browser()
  try:
    d.get(server.url() + "?rate=48000")        # the worklet resamples
    wait_js(d, "window.lmdm && window.lmdm.info", 30, "the info message")
    assert d.execute_script("return window.lmdm.info.drawable") == [
        "loudness", "brightness", "pitch"]
    d.find_element("id", "play").click()
    wait_js(d, "window.lmdm.blocksScheduled >= 5 && window.lmdm.worklet "
            "&& window.lmdm.worklet.block >= 2", 120, "5 blocks, 2 heard")
    assert d.execute_script("return window.lmdmContext().sampleRate") == 48000
    assert d.execute_script("return window.lmdm.worklet.underruns") <= 3
    canvas = d.find_element("id", "sketch")
    w, h = canvas.size["width"], canvas.size["height"]
    chain = ActionChains(d).move_to_element_with_offset(
        canvas, -w // 2 + 5, h // 2 - 10).click_and_hold()
    for k in range(1, 20):                    # a rising line, drawn by hand
      chain = chain.move_by_offset((w - 10) // 20, -(h - 20) // 20)
    chain.release().perform()
    wait_js(d, "window.lmdm.acks.some(a => a.line.startsWith('sketch'))",
            30, "the sketch ack")
    ack = [a for a in d.execute_script("return window.lmdm.acks")
           if a["line"].startswith("sketch")][0]
    b = ack["block"]
    wait_js(d, f"window.lmdm.stats.block > {b + 1}", 60, "the sketched block")
    log = engine.session.log
    assert "loudness" in log[b]["frame_controls"]
    assert "loudness" not in log[b - 1].get("frame_controls", [])
    curve = d.execute_script("return window.lmdmSketch.curves.loudness")
    assert curve[-10] > curve[10] + 0.3       # it rose, as drawn
    d.save_screenshot(shot_path(tmp_path, "serve_sketch.png"))
    assert severe(d) == [] and engine.player.error is None
  finally:
    d.quit()
    sh.stop(engine, server)


@needs_browser
def test_jam_model_plays_with_the_microphone_as_its_partner(tmp_path):
  engine, server = sh.start("jam")
  d = browser()
  try:
    d.get(server.url())
    wait_js(d, "window.lmdm && window.lmdm.info", 30, "the info message")
    assert "partner" in d.execute_script(
        "return Array.from(document.getElementById('input-as').options)"
        ".map(o => o.value)")
    d.find_element("id", "play").click()
    wait_js(d, "window.lmdm.blocksScheduled >= 3", 120, "3 blocks")
    d.find_element("id", "input-mic").click()    # Chromium's fake device
    wait_js(d, "window.lmdm.acks.some(a => a.line.startsWith('input as "
            "partner'))", 30, "the input ack")
    wait_js(d, "window.lmdm.inputFrames >= 20", 60, "input frames sent")
    end = time.time() + 120
    while time.time() < end and not any(
        "partner" in e.get("frame_controls", []) for e in
        engine.session.log):
      time.sleep(0.5)
    heard = [e["block"] for e in engine.session.log
             if "partner" in e.get("frame_controls", [])]
    assert heard, "the partner never reached the model"
    assert engine.live_input.given_fraction > 0
    d.save_screenshot(shot_path(tmp_path, "serve_jam.png"))
    assert severe(d) == [] and engine.player.error is None
  finally:
    d.quit()
    sh.stop(engine, server)
