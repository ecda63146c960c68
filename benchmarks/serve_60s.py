"""60 s of `lmdm serve` in headless Chromium: underruns and the page's own
control-to-sound latency (docs/live.md, "The browser instrument").

  python3 benchmarks/serve_60s.py --seconds 60 \\
      --json benchmarks/results/serve_60s_demo.json \\
      --screenshot docs/img/serve_page.png

The shipped demo model at its defaults (8 ping-pong steps, CFG 3), the
server started paused as `lmdm serve` is, Play pressed in the page; every
--every seconds the CFG slider moves (3.0 <-> 3.5, input events as a hand
makes), and the page measures each change from sending it to playing the
first period of the block it was applied to (+ the context's output
latency). Compare with `lmdm live --simulate --seconds 60
--steps-options 8 --json live.json` run right after on the same machine.
Needs Debian's chromium + chromium-driver and `pip install selenium`.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))
from lmdm_jax.serve.headless import browser, wait_js        # noqa: E402


def pct(xs):
  if not len(xs):
    return None
  xs = np.asarray(xs, np.float64)
  return {"n": int(xs.size), "median": float(np.median(xs)),
          "p90": float(np.percentile(xs, 90)), "max": float(xs.max())}


def main():
  ap = argparse.ArgumentParser(description=__doc__)
  ap.add_argument("--seconds", type=float, default=60)
  ap.add_argument("--every", type=float, default=2.5)
  ap.add_argument("--json", required=True)
  ap.add_argument("--screenshot", default=None)
  ap.add_argument("--checkpoint", default=None)
  a = ap.parse_args()
  import jax
  t0 = time.perf_counter()
  from lmdm_jax.serve.cli import add_arguments
  from lmdm_jax.serve.engine import build
  from lmdm_jax.serve.server import Server
  p = argparse.ArgumentParser()
  add_arguments(p)
  args = p.parse_args(["--port", "0", "--steps-options", "8", "--prompt",
                       "slow Bach chorale for string ensemble"] +
                      (["--checkpoint", a.checkpoint] if a.checkpoint
                       else []))
  engine = build(args, lambda s: None)
  server = Server(engine, args.host, args.port, args.token, lambda s: None)
  server.start_in_thread()
  engine.player.paused = True          # as `lmdm serve`: until Play
  engine.start()
  compile_s = time.perf_counter() - t0
  d = browser()
  try:
    d.get(server.url())
    wait_js(d, "window.lmdm && window.lmdm.info", 30, "info")
    time.sleep(1.0)
    under0, cb0, block0 = (engine.player.underruns, engine.player.callbacks,
                           engine.next_block())
    d.find_element("id", "play").click()
    start = time.perf_counter()
    i = 0
    while time.perf_counter() - start < a.seconds:
      time.sleep(a.every)
      v = 3.5 if i % 2 == 0 else 3.0
      d.execute_script(f"const s = document.getElementById('cfg');"
                       f"s.value = {v}; s.dispatchEvent(new Event('input'));")
      i += 1
    time.sleep(4.0)          # the last changes reach the speaker
    page = d.execute_script(
        "return {lat: window.lmdm.latencies, w: window.lmdm.worklet,"
        " blocks: window.lmdm.blocksScheduled, frames: "
        "window.lmdm.framesReceived, errors: window.lmdm.errors}")
    if a.screenshot:
      d.save_screenshot(a.screenshot)
    console = [e for e in d.get_log("browser") if e["level"] == "SEVERE"]
  finally:
    d.quit()
  pl = engine.player
  played_s = (pl.callbacks - cb0) * pl.period / pl.codec.sample_rate
  compute = pl.compute_s[block0:]
  server.stop_thread()
  engine.stop()
  out = {"seconds": a.seconds, "played_s": played_s,
         "model": engine.settings["model"], "steps": engine.session.steps,
         "cfg_changes": i, "blocks": engine.next_block() - block0,
         "server_underruns": pl.underruns - under0,
         "page_underruns": page["w"]["underruns"],
         "page_dropped": page["w"]["dropped"],
         "page_blocks_received": page["blocks"],
         "control_to_sound_ms_page": pct(page["lat"]),
         "compute_per_block_s": pct(compute),
         "block_s": pl.block_samples / pl.codec.sample_rate,
         "buffer_blocks": engine.settings["buffer_blocks"],
         "compile_s": compile_s, "console_errors": console,
         "page_errors": page["errors"],
         "load_avg_1m": os.getloadavg()[0],
         "device": f"{jax.devices()[0].platform} x{jax.device_count()}",
         "jax": jax.__version__}
  with open(a.json, "w") as f:
    json.dump(out, f, indent=2)
  print(json.dumps(out, indent=2))


if __name__ == "__main__":
  main()
