"""The efficiency-study harness and the discrete-AR baseline."""
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import ROOT
from helpers import tiny_setup
from lmdm_jax.bench import study
from lmdm_jax.bench.stream import call_flops
from lmdm_jax.configs import load_config
from lmdm_jax.bench import discrete_ar as dar
from lmdm_jax.streaming.sampler import Stream
from lmdm_jax.streaming.state import make_controls

POINT_FIELDS = {"flops_per_block", "flops_per_audio_second",
                "time_to_first_audio_s", "p50_s", "p90_s",
                "real_time_factor", "compile_s", "memory_bytes", "mfu",
                "mode", "steps", "context", "block", "batch", "dtype"}


def test_study_tiny_writes_complete_json_markdown_and_plots(tmp_path,
                                                            monkeypatch):
  monkeypatch.chdir(ROOT)
  cfg = load_config(os.path.join(ROOT, "configs", "bench", "study_tiny.py"))
  cfg.steps = [2]
  cfg.contexts = [8]
  result = study.run(cfg, progress=lambda *a: None)
  out = tmp_path / "s.json"
  study.write(result, str(out), str(tmp_path / "report"))
  data = json.loads(out.read_text())
  assert data["device"]["kind"] and data["device"]["count"] >= 1
  modes = {p["mode"] for p in data["points"]}
  assert modes == {"outpaint", "ed", "bc", "discrete_ar"}
  for p in data["points"]:
    assert POINT_FIELDS <= set(p), POINT_FIELDS - set(p)
    assert p["flops_per_block"] > 0 and p["p50_s"] > 0
    assert 0 < p["mfu"] < 1.5
  md = (tmp_path / "report" / "study.md").read_text()
  assert "discrete_ar" in md and data["device"]["kind"] in md
  for name in ("cost_vs_context.png", "cost_vs_steps.png"):
    assert (tmp_path / "report" / name).stat().st_size > 1000


def _block_flops(tiny_cfg, mode, context, steps=4):
  import dataclasses
  spec, params = tiny_setup(tiny_cfg, mode, batch=1, steps=steps)
  spec = spec.replace(geometry=dataclasses.replace(
      spec.geometry, context=context, window_chunks=2))
  stream = Stream(spec)
  ctl = make_controls(spec)
  state = stream.prime(params, jnp.zeros((1, context, 8)), ctl)
  f = call_flops(params, spec, state, ctl)
  return f["cache_update"] + f["first_step"] + (steps - 1) * f["later_step"]


def test_flops_scale_with_context_as_the_formulas_say(tiny_cfg):
  """outpaint ~ K (s + o); ed ~ e s + d K o (grows with s); bc with a
  fixed window ~ e o + d K o (independent of s)."""
  s1, s2, o = 8, 16, 4
  bc = [_block_flops(tiny_cfg, "bc", s) for s in (s1, s2)]
  assert bc[0] == bc[1]
  ed = [_block_flops(tiny_cfg, "ed", s) for s in (s1, s2)]
  out = [_block_flops(tiny_cfg, "outpaint", s) for s in (s1, s2)]
  linear = (s2 + o + 1) / (s1 + o + 1)
  assert abs(out[1] / out[0] - linear) / linear < 0.2
  # ED encodes the extra context once, outpainting K = 4 times.
  assert ed[1] > ed[0]
  assert (out[1] - out[0]) > 2.5 * (ed[1] - ed[0])
  assert out[0] > bc[0] and out[1] > 2 * bc[1]


def test_discrete_ar_generates_tokens_and_scales_to_a_size():
  c = dar.DiscreteARConfig(width=64, heads=2, mlp=128, encoder_layers=2,
                           temporal_layers=2, depth_layers=1, depth_width=64,
                           vocab=32, context_levels=2, levels=4,
                           style_tokens=2, context_frames=6, chunk_frames=3)
  params = dar.init_params(c, jax.random.PRNGKey(0))
  tokens = dar.generate_chunk(params, c, jnp.zeros((2, 6, 2), jnp.int32),
                              jnp.zeros((2, 2), jnp.int32),
                              jax.random.PRNGKey(1))
  assert tokens.shape == (2, 3, 4)
  assert tokens.min() >= 0 and tokens.max() < 32
  assert len(np.unique(np.asarray(tokens))) > 1
  target = 2 * dar.count_params(c)
  scaled = c.scaled_to(target)
  assert abs(dar.count_params(scaled) - target) / target < 0.1
  with pytest.raises(ValueError):
    dar.DiscreteARConfig(width=65, heads=2)
