"""benchmarks/block_profile.py: a level bump at block starts and a spectral
contrast change are found where they were put, and nowhere else; the
script runs end to end on a random model with the semitone codec."""
import json
import os

import numpy as np
import pytest

from helpers import load_benchmark

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


def _load():
  return load_benchmark("block_profile")


def test_a_bump_and_a_contrast_change_are_found_where_they_were_put():
  from lmdm_jax.codecs import get_codec
  bp, codec = _load(), get_codec("semitone")
  rng = np.random.default_rng(0)
  block, n = 24, 40
  z = rng.normal(0.0, 0.3, (n * block, 64)).astype(np.float32)
  flat = bp.summarise(bp.excess(z, codec, block), bp.contrast(z, codec, block))
  assert abs(flat["first2_db"]) < 4 * flat["first2_db_stderr"] + 0.05
  # +3 dB on every value channel in the first two frames of each block.
  vc = bp.value_channels(codec)
  bumped = z.copy()
  first = (np.arange(n * block) % block) < 2
  bumped[first, vc] += 3.0 / (10 * np.log10(np.e) * codec.scale)
  r = bp.summarise(bp.excess(bumped, codec, block),
                   bp.contrast(bumped, codec, block))
  assert r["first2_db"] == pytest.approx(3.0 + flat["first2_db"], abs=0.05)
  assert r["profile_db"][2:] == flat["profile_db"][2:]
  # A level shift changes no contrast; stretching the spectrum does.
  assert r["contrast_profile"][0] == pytest.approx(
      flat["contrast_profile"][0], abs=1e-3)
  wide = z.copy()
  mu = wide[first][:, vc].mean(-1, keepdims=True)
  wide[first, vc] = mu + 2.0 * (wide[first][:, vc] - mu)
  c = bp.contrast(wide, codec, block).mean(0)
  assert c[0] == pytest.approx(2 * flat["contrast_profile"][0], rel=0.02)
  assert c[5] == pytest.approx(flat["contrast_profile"][5], abs=1e-3)
  with pytest.raises(ValueError, match="whole blocks"):
    bp.excess(z[:-1], codec, block)
  with pytest.raises(ValueError, match="semitone"):
    bp.value_channels(get_codec("mel"))


@pytest.mark.slow
def test_the_script_profiles_a_random_model(tmp_path):
  sf = pytest.importorskip("soundfile")
  import live_helpers
  from lmdm_jax import pretrained
  from lmdm_jax.configs import load_config
  cfg = load_config(os.path.join(ROOT, "configs", "demo.py:smoke"))
  pkg = pretrained.save(
      str(tmp_path / "pkg"), dit_params=live_helpers.random_params(cfg),
      cfg=cfg, text={"encoder": "hashed_words",
                     "dim": cfg.model.cond_token_dim,
                     "max_tokens": cfg.cond_tokens,
                     "vocabulary": list(live_helpers.VOCABULARY)},
      codec={"name": "semitone", "kwargs": {}},
      defaults={"steps": 2, "cfg_scale": 1.0, "sampler": "pingpong"},
      meta={"source": "tests/bench/test_block_profile.py"})
  audio = tmp_path / "audio"
  audio.mkdir()
  sr = 44100
  t = np.arange(int(8 * sr)) / sr
  for i, f in enumerate((220.0, 330.0)):
    x = 0.2 * np.sin(2 * np.pi * f * t) * (1 + 0.5 * np.sin(2 * np.pi * t))
    sf.write(str(audio / f"p{i}.wav"), np.stack([x, x], 1), sr)
  (audio / "p0.txt").write_text("slow organ chorale")
  out = tmp_path / "r.json"
  bp = _load()
  assert bp.main(["--model", pkg, "--heldout", str(audio), "--clips", "3",
                  "--offset", "0", "--blocks", "2", "--forced-blocks", "1",
                  "--json", str(out)]) == 0
  r = json.loads(out.read_text())
  assert r["clips"] == 2 and r["steps"] == 2
  g = load_config(os.path.join(ROOT, "configs", "demo.py:smoke")).geometry
  assert r["free"]["blocks"] == 2 and r["forced"]["blocks"] == 2
  for kind in ("real", "forced", "free"):
    assert len(r[kind]["profile_db"]) == g.block
    assert np.isfinite(r[kind]["first2_db"])
  # The real blocks of a steady tone are flat.
  assert abs(r["real"]["first2_db"]) < 1.5
  # --generated profiles prompt-only generations as played; a random
  # model's swings by tens of dB, so --calibrate refuses to store it (the
  # players would refuse it) and leaves the package as it was.
  before = open(os.path.join(pkg, "model.json")).read()
  with pytest.raises(SystemExit, match="not written: block_level_db"):
    bp.main(["--model", pkg, "--heldout", str(audio), "--clips", "1",
             "--offset", "0", "--blocks", "2", "--forced-blocks", "1",
             "--generated", "2", "--seconds", "4", "--skip-seconds", "1.2",
             "--json", str(out), "--calibrate", pkg])
  assert open(os.path.join(pkg, "model.json")).read() == before
  r = json.loads(out.read_text())
  assert r["generated"]["clips"] == 2 and r["generated"]["skip_seconds"] == 1.2
  assert len(r["generated"]["profile_db"]) == g.block
  with pytest.raises(SystemExit):        # --calibrate needs --generated
    bp.main(["--model", pkg, "--heldout", str(audio), "--calibrate", pkg])
  # A sane profile is stored smoothed and zero-mean, where players find it.
  from lmdm_jax.live import block_level
  level = bp.calibration(np.linspace(1.0, -1.0, g.block))
  bp.write_calibration(pkg, level, {"block_level": "test"})
  loaded = pretrained.load(pkg)
  stored = np.asarray(loaded.defaults["block_level_db"])
  assert stored.shape == (g.block,) and abs(stored.mean()) < 0.01
  assert stored[0] > 0.5 > -0.5 > stored[-1]
  assert loaded.defaults["steps"] == 2 and loaded.meta["block_level"] == "test"
  assert block_level.for_package(loaded, loaded.make_codec()).block == g.block
  bp.write_calibration(pkg, level, {"block_level": "again"})
  assert pretrained.load(pkg).meta["block_level"] == "test; then again"
  # A profile at another scale goes into the per-CFG table beside the
  # default scale's (cfg_scale 1.0 here); a later default-scale profile
  # updates both places.
  other = bp.calibration(np.linspace(-1.0, 1.0, g.block))
  bp.write_calibration(pkg, other, {"block_level": "cfg 7"}, cfg=7.0)
  loaded = pretrained.load(pkg)
  assert loaded.defaults["block_level_db"] == level
  assert loaded.defaults["block_level_db_by_cfg"] == {"1": level,
                                                      "7": other}
  lv = block_level.for_package(loaded, loaded.make_codec())
  np.testing.assert_allclose(lv.profile(7.0), other, atol=1e-9)
  np.testing.assert_allclose(lv.profile(4.0), (np.asarray(level) +
                                               np.asarray(other)) / 2,
                             atol=1e-9)
  flat = [0.0] * g.block
  bp.write_calibration(pkg, flat, {"block_level": "flat"}, cfg=1.0)
  d = pretrained.load(pkg).defaults
  assert d["block_level_db"] == flat and d["block_level_db_by_cfg"] == {
      "1": flat, "7": other}
  # --calibrate measures the package it writes (it adds what is left).
  with pytest.raises(SystemExit, match="measure that package"):
    bp.main(["--model", pkg, "--heldout", str(audio), "--clips", "1",
             "--offset", "0", "--blocks", "2", "--forced-blocks", "1",
             "--generated", "1", "--seconds", "3",
             "--calibrate", str(tmp_path)])


def test_calibration_smooths_and_centres_the_profile():
  bp = _load()
  profile = [3.0, 1.0, 1.0, 1.0, -1.0, -1.0, -1.0, -3.0]
  got = np.asarray(bp.calibration(profile))
  assert abs(got.mean()) < 0.01
  np.testing.assert_allclose(got[1], (3 + 1 + 1) / 3 - np.mean(
      np.convolve(np.r_[3.0, profile, -3.0], np.ones(3) / 3, "valid")),
      atol=0.006)
  assert got[0] > got[3] > got[-1]
