"""Controls from files and live input: control tracks, the generative delay's
causality, `lmdm generate --sketch/--accompany` and `lmdm live --input`."""
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest
import soundfile as sf

from live_helpers import REPO, make_smoke_package
from lmdm_jax.codecs import get_codec
from lmdm_jax.model import control_inputs as ci
from lmdm_jax.live.live_input import LiveInput, default_delay
from lmdm_jax.live.track import ControlTrack, partner_track, sketch_names
from lmdm_jax.live.generate import generate

SR = 44100


@pytest.fixture(scope="module")
def jam_package(tmp_path_factory):
  return make_smoke_package(str(tmp_path_factory.mktemp("jam_pkg")),
                            config="sketch_demo.py:smoke_jam")


def tone(seconds, freq=220.0, amp=0.3, channels=2):
  t = np.arange(int(seconds * SR)) / SR
  x = amp * np.sin(2 * np.pi * freq * t).astype(np.float32)
  return np.repeat(x[None], channels, 0)


def test_control_track_windows_and_delay():
  a = np.arange(10, dtype=np.float32)[:, None]
  track = ControlTrack({"loudness": ci.pack(a)})
  w = track.window(-3, 6)["loudness"]          # 3 frames before the track
  np.testing.assert_array_equal(w[:3], 0.0)
  np.testing.assert_array_equal(w[3:, 0], [0, 1, 2])
  np.testing.assert_array_equal(w[3:, 1], 1.0)
  late = ControlTrack({"loudness": ci.pack(a)}, delay=4)
  # Timeline frame f reads track frame f - 4; after the track: absent.
  np.testing.assert_array_equal(late.window(4, 3)["loudness"],
                                track.window(0, 3)["loudness"])
  np.testing.assert_array_equal(late.window(12, 4)["loudness"][2:], 0.0)
  # Block i's window is [i * o - s, (i + 1) * o).
  np.testing.assert_array_equal(track.block_window(2, 3, 2)["loudness"],
                                track.window(1, 5)["loudness"])
  with pytest.raises(ValueError, match="same number of frames"):
    ControlTrack({"a": np.zeros((4, 2)), "b": np.zeros((5, 2))})
  with pytest.raises(ValueError, match="packed"):
    ControlTrack({"a": np.zeros(4)})
  with pytest.raises(ValueError, match="delay"):
    ControlTrack({"a": np.zeros((4, 2))}, delay=-1)
  with pytest.raises(ValueError, match="no control.*'timbre'"):
    sketch_names({"loudness": 1, "partner": 8}, ["timbre"])
  with pytest.raises(ValueError, match="no sketch controls"):
    sketch_names({"partner": 8})
  assert sketch_names({"loudness": 1, "cqt_topk": 84, "partner": 8}) == [
      "loudness", "cqt_topk"]


def test_live_input_is_causal_and_delayed():
  """With a frame-local codec (pool), the live partner windows are exactly
  the whole file's latents, shifted by the delay, on every frame heard by
  then, and absent on every frame not heard yet."""
  codec = get_codec("pool", hop=512, latent_channels=8)
  s, o, delay = 12, 4, 6
  x = np.random.default_rng(0).normal(size=(2, 512 * 60)).astype(np.float32)
  full = partner_track(x, codec, delay=delay)
  live = LiveInput(codec, ["partner"], s, o, delay)
  live.push(x[:, :512 * 30 + 100])             # 30 complete frames heard
  for i in range(10):
    w = live.block_window(i).get("partner")
    want = full.block_window(i, s, o)["partner"]
    frames = np.arange(i * o - s, (i + 1) * o) - delay   # input frames
    heard = (frames >= 0) & (frames < 30)
    if not heard.any():
      assert w is None
      continue
    np.testing.assert_allclose(w[heard], want[heard], atol=1e-6)
    np.testing.assert_array_equal(w[~heard], 0.0)
  assert 0 < live.given_fraction < 1
  # Sketch controls: a 220 Hz tone reads as MIDI 57 where heard.
  mel = get_codec("mel")
  live = LiveInput(mel, ["pitch", "loudness"], 96, 24, delay=0)
  live.push(tone(3.0))
  heard = int(3.0 * mel.frame_rate)
  w = live.block_window(4)                     # window frames [0, 120)
  inner = slice(10, heard - 10)
  np.testing.assert_allclose(w["pitch"][inner, 0], (57 - 60) / 24,
                             atol=0.02)
  np.testing.assert_array_equal(w["loudness"][heard + 1:], 0.0)
  assert default_delay(24, 2) == 72
  with pytest.raises(ValueError, match="live input controls"):
    LiveInput(mel, ["timbre"], 96, 24, 0)
  with pytest.raises(ValueError, match="pushed audio"):
    live.push(np.zeros((3, 10)))


def test_generate_accompany_sees_the_partner_up_to_t_f(jam_package,
                                                       tmp_path):
  """--accompany: perturbing the partner from frame 50 on leaves every
  block that may not see it (t_f = 0: blocks 0-2 see frames < 48)
  bit-identical, and changes block 2 once it may see one block ahead
  (t_f = +24 frames)."""
  base = tone(5.0, 220.0)
  late = base.copy()
  late[:, 50 * 2048:] = tone(5.0, 330.0)[:, 50 * 2048:]
  paths = {}
  for name, x in (("base", base), ("late", late)):
    paths[name] = str(tmp_path / f"{name}.wav")
    sf.write(paths[name], x.T, SR, subtype="FLOAT")

  def run(partner, visibility, out):
    z = str(tmp_path / (out + ".npy"))
    fig = generate("folk tune", 4 * 24 * 2048 / SR, str(tmp_path / out),
                   checkpoint=jam_package, progress=False, log=lambda s: None,
                   accompany=paths[partner], visibility_s=visibility,
                   latents_out=z)
    assert os.path.exists(fig["mix_out"])
    return fig, np.load(z)                     # [4 * 24, C]
  fig, a0 = run("base", 0.0, "a0.wav")
  assert fig["partner_visibility_frames"] == 0 and fig["blocks"] == 4
  assert a0.shape == (96, 64)
  _, a1 = run("late", 0.0, "a1.wav")
  np.testing.assert_array_equal(a0[:72], a1[:72])         # blocks 0-2
  assert np.abs(a0[72:] - a1[72:]).max() > 1e-4
  _, b0 = run("base", 24 / 21.533203125, "b0.wav")
  _, b1 = run("late", 24 / 21.533203125, "b1.wav")
  np.testing.assert_array_equal(b0[:48], b1[:48])         # blocks 0-1
  assert np.abs(b0[48:72] - b1[48:72]).max() > 1e-4       # block 2 sees it


def test_generate_sketch_and_bad_control_arguments(jam_package, smoke_package,
                                                  tmp_path):
  hum = str(tmp_path / "hum.wav")
  sf.write(hum, tone(2.0).T, SR)
  fig = generate("folk tune", None, str(tmp_path / "s.wav"),
                 checkpoint=jam_package, progress=False, log=lambda s: None,
                 sketch=hum, sketch_controls=["pitch", "loudness"])
  assert fig["sketch_controls"] == ["loudness", "pitch"]
  assert abs(fig["seconds"] - 2.0) < 0.05      # the file's length
  out = str(tmp_path / "x.wav")
  with pytest.raises(ValueError, match="does not exist"):
    generate("a", 2.0, out, checkpoint=jam_package, sketch="/nope.wav")
  with pytest.raises(ValueError, match="no control.*'timbre'"):
    generate("a", 2.0, out, checkpoint=jam_package, sketch=hum,
             sketch_controls=["timbre"])
  with pytest.raises(ValueError, match="--visibility must be in"):
    generate("a", 2.0, out, checkpoint=jam_package, accompany=hum,
             visibility_s=5.0)
  with pytest.raises(ValueError, match="--accompany only"):
    generate("a", 2.0, out, checkpoint=jam_package, visibility_s=0.0)
  with pytest.raises(ValueError, match="--delay"):
    generate("a", 2.0, out, checkpoint=jam_package, sketch=hum, delay_s=-1)
  plain = smoke_package
  with pytest.raises(ValueError, match="no partner control"):
    generate("a", 2.0, out, checkpoint=plain, accompany=hum)
  with pytest.raises(ValueError, match="no sketch controls"):
    generate("a", 2.0, out, checkpoint=plain, sketch=hum)


@pytest.mark.slow
def test_live_generative_delay_from_a_file(jam_package, cli_env, tmp_path):
  """`lmdm live --input FILE`: the file is heard in step with the simulated
  output; the JSON says how it was used and how much was heard in time."""
  inp = str(tmp_path / "in.wav")
  sf.write(inp, tone(6.0).T, SR)
  env = cli_env             # the second run reuses the first one's compiles
  for kind in ("partner", "sketch"):
    js = str(tmp_path / f"{kind}.json")
    r = subprocess.run(
        [sys.executable, "-m", "lmdm_jax.cli", "live", "--checkpoint",
         jam_package, "--prompt", "folk tune", "--simulate", "--no-tui",
         "--seconds", "4", "--steps-options", "2", "--input", inp,
         "--input-as", kind, "--delay", "0.5", "--out",
         str(tmp_path / f"{kind}.wav"), "--json", js],
        env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    doc = json.load(open(js))
    assert doc["delay_frames"] == 11
    assert sorted(doc["input_as"]) == (
        ["partner"] if kind == "partner" else
        ["brightness", "cqt_topk", "loudness", "pitch"])
    assert 0 < doc["input_heard_fraction"] <= 1
  r = subprocess.run(
      [sys.executable, "-m", "lmdm_jax.cli", "live", "--prompt", "a",
       "--input", str(tmp_path / "missing.wav"), "--seconds", "1",
       "--no-tui"], env=env, capture_output=True, text=True, timeout=120)
  assert r.returncode == 2 and "--input must be" in r.stderr


@pytest.mark.slow        # a whole benchmarks/jam_eval.py run (every condition)
def test_jam_eval_pairs_partner_and_accompaniment(jam_package, tmp_path):
  """benchmarks/jam_eval.py: part k of piece k is the partner, the other
  parts' sum the accompaniment; every condition and reference is scored."""
  from lmdm_jax.bench import jam_eval
  adir, sdir = tmp_path / "audio", tmp_path / "stems"
  adir.mkdir()
  for p, freqs in enumerate(((220.0, 330.0), (262.0, 392.0, 523.0))):
    (sdir / f"p{p}").mkdir(parents=True)
    parts = [tone(6.0, f) for f in freqs]
    for k, x in enumerate(parts):
      sf.write(str(sdir / f"p{p}" / f"part{k:02d}.wav"), x.T, SR,
               subtype="FLOAT")
    sf.write(str(adir / f"p{p}.wav"), np.sum(parts, 0).T, SR,
             subtype="FLOAT")
  codec = get_codec("mel")
  data = jam_eval.clips([str(adir)], [str(sdir)], 5, 5.0, codec)
  assert [d[0] for d in data] == ["audio/p0.wav#part00", "audio/p1.wav#part01"]
  np.testing.assert_allclose(data[1][2], tone(5.0, 392.0), atol=1e-5)
  np.testing.assert_allclose(data[1][3], tone(5.0, 262.0) + tone(5.0, 523.0),
                             atol=1e-5)
  r = jam_eval.run(jam_package, [str(adir)], [str(sdir)], 5, 1, [0, 4],
                   log=lambda s: None, loss_draws=2)
  summ = r["summary"]
  assert set(summ) == {"tf+0", "tf+4", "none", "real", "real_raw", "random",
                       "real_raw_random", "clips", "loss"}
  for cond in ("tf+0", "none", "real", "real_raw", "random"):
    for k in ("chord_tone", "chroma_agreement", "onset_f1"):
      assert 0.0 <= summ[cond][k] <= 1.0, (cond, k)
  assert -1.0 <= summ["none"]["latent_r"] <= 1.0
  loss = summ["loss"]
  assert all(np.isfinite(loss[c]) for c in ("tf+0", "tf+4", "none",
                                            "random"))
  # A random partner projection changes the loss once the partner is seen;
  # with it zeroed, every condition is the no-partner loss exactly.
  assert loss["tf+4"] != loss["none"]
  from lmdm_jax import pretrained
  pkg = pretrained.load(jam_package)
  params = jax.tree.map(np.asarray, pkg.params["dit"])
  params["to_control_embed_partner"]["kernel"] = np.zeros_like(
      params["to_control_embed_partner"]["kernel"])
  codec_ = pkg.make_codec()
  long = jam_eval.clips([str(adir)], [str(sdir)], 5, 6.1, codec_)
  zeroed = jam_eval.partner_losses(pkg, params, long, [0, 4], codec_,
                                   pkg.text_encoder(), 1, draws=2)
  for c in ("tf+0", "tf+4", "random"):
    assert zeroed[c] == pytest.approx(zeroed["none"], rel=1e-6)


def test_shipped_sketch_model_plays_a_sketch_and_a_partner(tmp_path):
  """The shipped sketch model (lmdm_jax/assets/sketch) loads by name,
  has every sketch control and a partner, and its melody control moves its
  output (the trained control projections are not zero)."""
  from lmdm_jax import pretrained
  pkg = pretrained.load("sketch")
  assert sorted(pkg.dit.control_dims) == ["brightness", "cqt_topk",
                                          "loudness", "partner", "pitch"]
  w = np.asarray(pkg.params["dit"]["to_control_embed_cqt_topk"]["kernel"])
  assert np.abs(w).max() > 1e-2
  hum = str(tmp_path / "hum.wav")
  sf.write(hum, tone(2.3, 440.0).T, SR)
  z = {}
  for name, kw in (("sketch", dict(sketch=hum,
                                   sketch_controls=["cqt_topk"])),
                   ("partner", dict(accompany=hum)), ("plain", {})):
    z[name] = str(tmp_path / f"{name}.npy")
    generate("slow Bach chorale for string ensemble", 2.2,
             str(tmp_path / f"{name}.wav"), checkpoint="sketch", steps=2,
             progress=False, log=lambda s: None, latents_out=z[name], **kw)
  plain = np.load(z["plain"])
  assert np.abs(np.load(z["sketch"]) - plain).max() > 1e-3
  assert np.abs(np.load(z["partner"]) - plain).max() > 1e-3


def test_shipped_jam_model_is_the_default_for_a_partner(tmp_path):
  """`--accompany` without --checkpoint plays the shipped jam model
  (lmdm_jax/assets/jam), whose partner projection is trained (not zero) and
  moves its output; `--sketch` alone plays the sketch model; a given
  checkpoint always wins."""
  from lmdm_jax import pretrained
  assert pretrained.for_controls(None, partner=True) == "jam"
  assert pretrained.for_controls(None, sketch=True) == "sketch"
  assert pretrained.for_controls(None, sketch=True, partner=True) == "jam"
  assert pretrained.for_controls(None) is None
  assert pretrained.for_controls("x", partner=True) == "x"
  pkg = pretrained.load("jam")
  assert "partner" in pkg.dit.control_dims
  w = np.asarray(pkg.params["dit"]["to_control_embed_partner"]["kernel"])
  assert np.abs(w).max() > 1e-2
  part = str(tmp_path / "soprano.wav")
  sf.write(part, tone(2.3, 392.0).T, SR)
  z, fig = {}, {}
  for name, kw in (("partner", dict(accompany=part)), ("plain", {})):
    z[name] = str(tmp_path / f"{name}.npy")
    fig[name] = generate("slow Bach chorale for string ensemble", 2.2,
                         str(tmp_path / f"{name}.wav"), steps=2,
                         progress=False, log=lambda s: None,
                         latents_out=z[name],
                         checkpoint=None if kw else "jam", **kw)
  assert os.path.realpath(fig["partner"]["model"]) == os.path.realpath(
      pretrained.SHIPPED["jam"])
  assert os.path.exists(str(tmp_path / "partner_mix.wav"))
  assert np.abs(np.load(z["partner"]) - np.load(z["plain"])).max() > 1e-3
