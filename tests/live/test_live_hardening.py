"""A stream that cannot be poisoned, or clipped (issue 20, findings 1-3).

- every live control is checked against its documented range in one place
  (lmdm_jax/live/control_ranges.py) by the CLI flags, the command
  language and `LiveSession`;
- a block that still comes out non-finite never enters the context or the
  cache (sampler.guard_block): it is replaced by the previous block and
  counted, and the stream recovers as soon as the cause is gone;
- every sample played or written passes a gain + true-peak limiter
  (lmdm_jax/live/output_stage.py);
- a fuzz of 1,000 random commands never makes a non-finite or silent block
  and never compiles.
"""
import json
import os
import subprocess
import sys
import wave

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from live_helpers import REPO, random_params
from lmdm_jax.live import cli as live
from lmdm_jax.codecs import get_codec
from lmdm_jax.configs import dit_config, geometry
from lmdm_jax.live import commands
from lmdm_jax.live import control_ranges as ranges
from lmdm_jax.live.output_stage import OutputStage, true_peak
from lmdm_jax.live.player import Player
from lmdm_jax.streaming.sampler import Stream
from lmdm_jax.live.session import LiveSession
from lmdm_jax.streaming.state import StreamSpec, make_controls


# -- one place for the ranges ----------------------------------------------------
@pytest.mark.parametrize("line, match", [
    ("cfg 1e30", r"cfg scale must be in \[0, 25\]"),
    ("cfg 1e308", r"cfg scale must be in \[0, 25\]"),
    ("cfg 1e400", "finite"),                    # inf in float64 already
    ("cfg 3 nan", "finite"),
    ("mix a=1e308; b=1e308", r"weight of 'a' must be in \[0, 1e\+06\]"),
    ("mix " + "; ".join(f"p{i}=1" for i in range(17)), "at most 16"),
    ("x TEXT 1000000", r"blocks must be in \[1, 1000\]"),
    ("seed 2147483648", "int32"),
    ("steps 1000", r"steps must be in \[1, 100\]"),
])
def test_commands_refuse_out_of_range_controls(line, match):
  with pytest.raises(ValueError, match=match):
    commands.parse_command(line)


def test_range_edges_are_accepted():
  assert commands.parse_command("cfg 25 1").args == (25.0, 1.0)
  assert commands.parse_command("x a 1000").args == ({"a": 1.0}, 1000)
  assert commands.parse_command("mix a=1e6; b=1e6").args == (
      {"a": 1e6, "b": 1e6},)
  assert commands.parse_command("seed -2147483648").args == (-2 ** 31,)
  # Normalising never overflows, whatever a future front end passes.
  assert ranges.normalised_weights([1e308, 1e308]) == [0.5, 0.5]


@pytest.mark.parametrize("kwargs, match", [
    (dict(cfg_scale=1e30), r"--cfg must be in \[0, 25\]"),
    (dict(cfg_scale=float("inf")), "finite"),
    (dict(steps=1000), r"--steps must be in \[1, 100\]"),
    (dict(seed=2 ** 40), "int32"),
])
def test_generate_refuses_out_of_range_flags(kwargs, match):
  from lmdm_jax.live.generate import check_args
  args = dict(prompt="organ", seconds=5.0, out="out.wav", steps=None,
              cfg_scale=None)
  args.update(kwargs)
  with pytest.raises(ValueError, match=match):
    check_args(**args)


@pytest.mark.parametrize("argv, match", [
    (["--cfg", "1e30"], r"--cfg must be in \[0, 25\]"),
    (["--seed", str(2 ** 31)], "--seed must fit in int32"),
    (["--steps-options", "2,500"], r"--steps-options entries must be in"),
])
def test_live_refuses_out_of_range_flags(argv, match):
  from lmdm_jax.cli import build_parser
  args = build_parser().parse_args(["live", "--prompt", "a", *argv])
  with pytest.raises(ValueError, match=match):
    live.check_args(args)


# -- the tiny stream -------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_parts(tiny_cfg):
  spec = StreamSpec(dit_config(tiny_cfg), geometry(tiny_cfg, "bc"), batch=1,
                    cond_tokens=tiny_cfg.cond_tokens, steps=2, cfg=True)
  return spec, random_params(tiny_cfg, seed=1)


def _encoder(spec):
  enc = {}

  def encode(text):
    if text not in enc:
      enc[text] = np.random.default_rng(len(enc) + 1).standard_normal(
          (spec.cond_tokens, spec.model.cond_token_dim)).astype(np.float32)
    return enc[text]
  return encode


def _session(parts, **kw):
  spec, params = parts
  s = LiveSession(params, spec, _encoder(spec), steps_options=(1, 2), **kw)
  s.set_prompts({"a": 1.0})
  return s


def test_session_refuses_out_of_range_controls(tiny_parts):
  s = _session(tiny_parts)
  before = (s.cfg_scale, s.rescale, s.prompts, s.steps, s.seed)
  for call, match in [
      (lambda: s.set_cfg(1e30), r"cfg scale must be in \[0, 25\]"),
      (lambda: s.set_cfg(float("nan")), "finite"),
      (lambda: s.set_cfg(3.0, rescale=2.0), r"rescale must be in \[0, 1\]"),
      (lambda: s.set_prompts({"a": 1e308, "b": 1e308}), "weight of 'a'"),
      (lambda: s.set_prompts({"a": float("inf")}), "finite"),
      (lambda: s.crossfade_to({"b": 1.0}, 10 ** 6), r"\[1, 1000\]"),
      (lambda: s.set_steps(3), "not compiled"),
      (lambda: s.set_seed(2 ** 31), "int32"),
      (lambda: s.drop_context(10 ** 6), "frames must be in"),
  ]:
    with pytest.raises(ValueError, match=match):
      call()
  assert (s.cfg_scale, s.rescale, s.prompts, s.steps, s.seed) == before
  assert s._fade == []


def test_plus_plus_weight_range(tiny_parts):
  spec, params = tiny_parts
  s = LiveSession(params, spec.replace(plus_plus=True), _encoder(spec))
  with pytest.raises(ValueError, match=r"in \[0, 1\] \(a Ping-Pong\+\+"):
    s.set_cfg(3.0)
  s.set_cfg(0.7)


# -- a non-finite block never enters the stream ---------------------------------
@pytest.mark.parametrize("mode", ["bc", "ed"])
def test_nonfinite_block_is_replaced_and_the_stream_recovers(tiny_cfg, mode):
  """cfg 1e30 (past every check: a future front end's bug) makes NaN
  latents. The block is replaced by the previous one, the context and cache
  stay as they were, the event is counted; the next block under a sane cfg
  is exactly the block a never-poisoned stream makes at that index."""
  spec = StreamSpec(dit_config(tiny_cfg), geometry(tiny_cfg, mode), batch=2,
                    cond_tokens=tiny_cfg.cond_tokens, steps=2, cfg=True)
  params = jax.tree.map(jnp.asarray, random_params(tiny_cfg, seed=3))
  stream = Stream(spec)
  m, g = spec.model, spec.geometry
  rng = np.random.default_rng(0)
  tokens = rng.standard_normal((2, spec.cond_tokens, m.cond_token_dim))
  ctx = rng.standard_normal((2, g.context, m.io_channels)).astype(np.float32)

  def controls(cfg, tok=tokens):
    return make_controls(spec, tok, cfg_scale=cfg, seed=5)

  def primed():
    return stream.prime(params, jnp.asarray(ctx), controls(3.0))

  s = primed()
  s, x0 = stream.block(params, s, controls(3.0))
  ctx1 = np.asarray(s.context)
  kv1 = jax.tree.map(np.asarray, s.kv)
  s, bad = stream.block(params, s, controls(1e30))
  bad = np.asarray(bad)
  assert np.isfinite(bad).all()
  np.testing.assert_array_equal(bad, np.asarray(x0))   # the previous block
  np.testing.assert_array_equal(np.asarray(s.context), ctx1)
  for a, b in zip(jax.tree.leaves(s.kv), jax.tree.leaves(kv1)):
    np.testing.assert_array_equal(np.asarray(a), b)
  assert int(s.rejected) == 1 and int(s.block) == 2
  s, good = stream.block(params, s, controls(3.0))
  # Reference: the same stream without the poisoned block (block index 2).
  r = primed()
  r, _ = stream.block(params, r, controls(3.0))
  r, want = stream.block(params, r.replace(block=jnp.int32(2)),
                         controls(3.0))
  np.testing.assert_allclose(np.asarray(good), np.asarray(want), atol=1e-5)
  assert int(s.rejected) == 1 and np.abs(np.asarray(good)).max() > 0
  # Per voice: a poisoned voice 1 leaves voice 0 as it would have been.
  poison = tokens.copy()
  poison[1] = 1e30
  r2 = primed()
  r2, _ = stream.block(params, r2, controls(3.0))
  r2, mixed = stream.block(params, r2, controls(3.0, poison))
  mixed = np.asarray(mixed)
  s3 = primed()
  s3, x3 = stream.block(params, s3, controls(3.0))
  s3, clean = stream.block(params, s3, controls(3.0))
  np.testing.assert_allclose(mixed[0], np.asarray(clean)[0], atol=1e-5)
  np.testing.assert_array_equal(mixed[1], np.asarray(x3)[1])
  assert int(r2.rejected) == 1
  assert stream._block._cache_size() == 1        # one program throughout


def test_session_reports_a_replaced_block_and_recovers(tiny_parts):
  s = _session(tiny_parts)
  s.next_block()
  s.cfg_scale = float("inf")         # past the setters, as a buggy front end
  x = s.next_block()
  assert np.isfinite(x).all() and s.log[-1]["rejected"] is True
  s.set_cfg(3.0)
  y = s.next_block()
  assert np.isfinite(y).all() and s.log[-1]["rejected"] is False
  assert s.rejected_blocks == [1] and np.abs(y - x).max() > 1e-3


# -- the output stage ------------------------------------------------------------
def _loud(seconds=4.0, sr=44100, seed=0):
  rng = np.random.default_rng(seed)
  t = np.arange(int(seconds * sr)) / sr
  burst = 1 + 12 * ((t % 1.0) < 0.1)
  x = np.stack([np.sin(2 * np.pi * 440 * t) * burst,
                3 * np.sin(2 * np.pi * 9000.7 * t + 1)])
  return x + 0.5 * rng.standard_normal(x.shape)


def test_output_stage_never_exceeds_the_ceiling():
  x = _loud()
  stage = OutputStage(44100, 2, gain_db=6.0)
  sizes = np.random.default_rng(1).integers(1, 30000, 40)
  outs, i = [], 0
  for n in sizes:
    outs.append(stage.process(x[:, i:i + n]))
    i += n
  outs.append(stage.process(x[:, i:]))
  y = np.concatenate(outs, axis=1)
  assert y.shape == x.shape and y.dtype == np.float32
  assert np.abs(y).max() <= stage.ceiling + 1e-6      # -1 dBFS
  assert true_peak(y) < 1.0                           # below 0 dBTP
  lv = stage.levels()
  assert lv["max_gain_reduction_db"] > 20 and lv["peak_in_dbfs"] > 20
  assert lv["peak_dbfs"] == pytest.approx(-1.0, abs=0.01)


def test_output_stage_leaves_music_below_the_ceiling_alone():
  x = 0.02 * _loud()                    # true peak ~ -4 dBFS at +6 dB
  stage = OutputStage(44100, 2, gain_db=6.0)
  y = np.concatenate([stage.process(x[:, i:i + 4096])
                      for i in range(0, x.shape[1], 4096)], axis=1)
  assert true_peak(x * 10 ** 0.3) < stage.ceiling
  np.testing.assert_allclose(y, x * 10 ** 0.3, rtol=1e-6, atol=1e-7)
  assert stage.levels()["limited_fraction"] == 0.0


def test_output_stage_is_causal_and_zeroes_nonfinite():
  """What comes out of a block depends on nothing after it."""
  x = _loud(2.0)
  a, b = OutputStage(44100, 2, gain_db=0.0), OutputStage(44100, 2,
                                                        gain_db=0.0)
  first = [a.process(x[:, i:i + 8192]) for i in range(0, 40000, 8192)]
  y = x.copy()
  y[:, 40960:] = 100.0                  # a different future
  other = [b.process(y[:, i:i + 8192]) for i in range(0, 40000, 8192)]
  for p, q in zip(first, other):
    np.testing.assert_array_equal(p, q)
  z = x[:, :5000].copy()
  z[0, 100:200] = np.nan
  z[1, 300] = np.inf
  out = OutputStage(44100, 2, gain_db=0.0).process(z)
  assert np.isfinite(out).all() and np.abs(out).max() <= 0.8913
  with pytest.raises(ValueError, match="gain_db"):
    OutputStage(44100, 2, gain_db=float("nan"))


# -- fuzz: 1,000 commands --------------------------------------------------------
def _random_command(rng) -> str:
  words = ["a", "b", "organ", "ragtime piano", "x", ""]
  num = lambda: rng.choice([  # noqa: E731
      "0", "1", "2.5", "7", "25", "26", "-1", "1e30", "1e308", "1e39", "nan",
      "inf", "-inf", "0.7", "1e6", "1e7", "abc", "", "3 0.5", "3 2"])
  integer = lambda: rng.choice([  # noqa: E731
      "0", "1", "2", "3", "4", "8", "96", "97", "-5", "1000", "1000000",
      "2147483647", "2147483648", "x", ""])
  kind = rng.integers(0, 10)
  if kind == 0:
    return f"p {rng.choice(words)}"
  if kind == 1:
    n = rng.integers(1, 4)
    return "mix " + "; ".join(f"{rng.choice(words)}={num()}"
                              for _ in range(n))
  if kind == 2:
    return f"x {rng.choice(words)} {integer()}"
  if kind == 3:
    return f"cfg {num()}"
  if kind == 4:
    return f"steps {integer()}"
  if kind == 5:
    return f"seed {integer()}"
  if kind == 6:
    return f"drop {integer()}"
  if kind == 7:
    return "status"
  if kind == 8:
    return rng.choice(["", "# note", "bogus 1", "help", "cfg", "mix",
                       "x", "p", "steps", "wait 0", "\x00\x1b[31m"])
  return f"x a=1; b={num()} {integer()}"


def test_fuzz_thousand_random_commands(tiny_parts):
  s = _session(tiny_parts, drop_frames=4)
  player = Player(s, get_codec("pool", latent_channels=8), overlap=1)
  app = commands.LiveApp(s, player)

  def sizes():
    return {(k, n): getattr(st, n)._cache_size() for k, st in s.streams.items()
            for n in ("_init_state", "_block")}
  player.render(1)                           # warm: decode, output stage
  compiled = sizes()
  compiles = []

  def on_event(name, *args, **kw):
    if "compil" in name:
      compiles.append(name)
  jax.monitoring.register_event_duration_secs_listener(on_event)
  rng = np.random.default_rng(20)
  ok = refused = 0
  try:
    for i in range(1000):
      line = _random_command(rng)
      try:
        app.handle(line)
        ok += 1
      except ValueError:
        refused += 1
      if i % 2 == 1:
        audio = player.render(1)
        x = s.recorded[-1]
        assert np.isfinite(x).all() and np.abs(x).max() > 1e-3, (i, line)
        assert np.isfinite(audio).all(), (i, line)
        assert np.abs(audio).max() <= player.output.ceiling + 1e-6
        assert np.sqrt(np.mean(np.square(audio))) > 1e-4, (i, line)
    n = len(compiles)
    jax.jit(lambda v: v * 3 + 1)(np.float32(2))   # the listener hears one
    assert len(compiles) > n
    del compiles[n:]
  finally:
    jax.monitoring.unregister_event_duration_listener(on_event)
  assert ok > 200 and refused > 200, (ok, refused)
  assert s.rejected_blocks == [], s.rejected_blocks
  assert sizes() == compiled
  assert compiles == [], compiles[:5]
  assert len(s.recorded) == 501


# -- generate writes nothing non-finite -------------------------------------------
def test_generate_refuses_to_write_a_nonfinite_result(tmp_path, monkeypatch):
  """cfg 1e30 past the range check (as a caller that skips it): every block
  is rejected by the stream; generate raises, names the cause, and writes
  no file (main wrote an all-zero WAV and exited 0)."""
  from live_helpers import make_smoke_package
  from lmdm_jax.live import generate
  pkg = make_smoke_package(str(tmp_path / "pkg"))
  monkeypatch.setattr(ranges, "check_cfg", lambda x, *a, **k: float(x))
  out = tmp_path / "out.wav"
  with pytest.raises(generate.NonFiniteResult,
                     match=r"non-finite \(2 of 2 blocks.*lower --cfg"):
    generate.generate("slow organ", 1.5, str(out), checkpoint=pkg, steps=1,
                      cfg_scale=1e30, progress=False, log=lambda s: None)
  assert not out.exists()


# -- the shipped demo model, 30 s live, never above full scale -------------------
@pytest.mark.slow          # 30 s of `lmdm live` in a subprocess
def test_demo_live_recording_never_clips(tmp_path, cli_env):
  """30 s of the demo model through the live output stage, against the
  simulated clock unpaced (--no-pace: as fast as compute; the levels and
  the limiter see the same blocks as in real time, minus the load-dependent
  underrun silence), in conftest's cli_env (the demo's programs compiled
  once per run, shared with the other demo-model runs)."""
  out, doc_path = str(tmp_path / "live.wav"), str(tmp_path / "live.json")
  r = subprocess.run(
      [sys.executable, "-m", "lmdm_jax.cli", "live", "--prompt",
       "slow Bach chorale for string ensemble", "--simulate", "--no-pace",
       "--seconds", "30", "--no-tui", "--steps-options", "8",
       "--buffer-blocks", "4", "--json", doc_path, "--out", out],
      stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=600,
      cwd=str(tmp_path), env=cli_env)
  assert r.returncode == 0, (r.stdout[-2000:], r.stderr[-2000:])
  with wave.open(out) as w:
    pcm = np.frombuffer(w.readframes(w.getnframes()), "<i2")
  doc = json.load(open(doc_path))
  lv = doc["levels"]
  assert lv["blocks"] == doc["blocks"] and lv["gain"] == "auto"
  # -1 dBFS ceiling: no sample at or near full scale (int16 32767).
  assert np.abs(pcm.astype(np.int32)).max() <= int(0.8913 * 32767) + 1
  # The decoder's raw output is hot (several times full scale: the semitone
  # demo peaks near +12 dBFS, the mel one reached +29), so the auto gain and
  # the limiter have real work here.
  assert lv["peak_dbfs"] <= -0.99 and lv["peak_in_dbfs"] > 6
  # Calibrated: music, not a limiter at work all the time, and not quiet.
  assert lv["limited_fraction"] < 0.1, lv
  # Underruns (silence) depend on the machine's load: measure what played.
  heard = pcm[np.abs(pcm) > 0].astype(np.float64) / 32767
  assert heard.size > 44100
  assert -30 < 20 * np.log10(np.sqrt(np.mean(heard ** 2))) < -12
  assert doc["rejected_blocks"] == []
  assert "dBFS RMS" in r.stdout


def test_crossfades_keep_mixes_within_the_bound(tiny_parts):
  """Fades between 16-prompt mixes are refused before they start (a fade
  step holding 32 prompts would fail inside the generation thread), and
  names that faded out do not pile up."""
  s = _session(tiny_parts)
  s.set_prompts({f"p{i}": 1.0 for i in range(16)})
  with pytest.raises(ValueError, match="32 > 16"):
    s.crossfade_to({f"q{i}": 1.0 for i in range(16)}, 2)
  assert s._fade == []
  s.set_prompts({"a": 1.0})
  for i in range(20):
    s.crossfade_to({f"r{i}": 1.0}, 1)
    s._apply_prompts(s._fade.pop(0))
  assert s.prompts == {"r19": 1.0}
