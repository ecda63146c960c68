"""The demo recipe end to end at tiny size: captioned audio -> latents ->
`lmdm train` (configs/demo.py:smoke, hashed-word text) -> `lmdm export` ->
`lmdm generate`, plus the text encoder and the generate argument checks."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from lmdm_jax.text.hashed import HashedWords, vocabulary_of, words

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


def _lmdm(env, *args, timeout=900):
  """`lmdm ARGS` in conftest's `cli_env` (one device, as a user would run;
  the compilation cache shared with the other CLI tests of the run)."""
  r = subprocess.run([sys.executable, "-m", "lmdm_jax.cli", *args],
                     capture_output=True, text=True, timeout=timeout,
                     cwd=REPO, env=env)
  assert r.returncode == 0, (args, r.stdout[-2000:], r.stderr[-4000:])
  return r


def test_hashed_words_is_deterministic_and_padded():
  enc = HashedWords(dim=16, max_tokens=6, vocabulary=["slow", "organ"])
  a = enc(["Slow organ, 60 bpm", ""])
  assert a.shape == (2, 6, 16) and a.dtype == np.float32
  np.testing.assert_array_equal(a[1], 0.0)           # "" = unconditional
  np.testing.assert_array_equal(a[0, 4:], 0.0)       # 4 words, then padding
  # Same word -> same vector wherever it appears; different words differ.
  b = HashedWords(dim=16, max_tokens=6)(["organ slow"])
  np.testing.assert_array_equal(a[0, 0], b[0, 1])
  assert np.abs(a[0, 0] - a[0, 1]).max() > 0.1
  assert enc.unknown_words("slow violins for organ") == ["violins", "for"]
  assert words("In F-sharp minor!") == ["in", "f", "sharp", "minor"]
  assert vocabulary_of(["b a", "a c"]) == ["a", "b", "c"]
  with pytest.raises(TypeError):
    enc("one string")
  with pytest.raises(ValueError):
    HashedWords(dim=0, max_tokens=4)


@pytest.mark.parametrize("kwargs, match", [
    (dict(seconds=0.0), "seconds"),
    (dict(seconds=float("nan")), "seconds"),
    (dict(out="x.mp3"), ".wav"),
    (dict(out="/no/such/dir/x.wav"), "does not exist"),
    (dict(steps=0), "steps"),
    (dict(cfg_scale=-1.0), "cfg"),
])
def test_generate_rejects_bad_arguments(kwargs, match):
  from lmdm_jax.live.generate import check_args
  args = dict(prompt="organ", seconds=5.0, out="out.wav", steps=None,
              cfg_scale=None)
  args.update(kwargs)
  with pytest.raises(ValueError, match=match):
    check_args(**args)


@pytest.mark.slow
@pytest.mark.parametrize("codec, config, kwargs", [
    ("semitone", "configs/demo.py:smoke", ""),
    ("semitone", "configs/demo.py:smoke,semitone_onset",   # + onset channel
     '{"sub_pitch": true, "sub_share": 0.7, "onset_channel": true}'),
    ("mel", "configs/demo.py:smoke,mel", "")])
def test_demo_recipe_train_export_generate(tmp_path, cli_env, codec, config,
                                           kwargs):
  import soundfile as sf
  def lmdm(*args):
    return _lmdm(cli_env, *args)
  audio_dir = tmp_path / "audio"
  audio_dir.mkdir()
  sr = 44100
  t = np.arange(int(8 * sr)) / sr
  for i, (f0, cap) in enumerate([(220.0, "slow organ chorale in A minor"),
                                 (440.0, "fast piano folk tune in A major"),
                                 (330.0, "slow organ chorale in E minor")]):
    x = 0.3 * np.sin(2 * np.pi * f0 * t) * (1 + 0.5 * np.sin(2 * t))
    sf.write(audio_dir / f"piece{i}.flac", np.stack([x, x], 1), sr)
    (audio_dir / f"piece{i}.txt").write_text(cap + "\n")
  data = tmp_path / "tfds"
  lmdm("data", "build", "--audio-dir", str(audio_dir), "--codec", codec,
       *(["--codec-kwargs", kwargs] if kwargs else []),
       "--out", str(data), "--min-frames", "120")
  work = tmp_path / "work"
  lmdm("train", "--config", config, "--workdir", str(work),
       "--no-progress", f"--config.data.dir={data}")
  pkg = tmp_path / "pkg"
  lmdm("export", "--config", config, "--workdir",
       str(work), "--data-dir", str(data), "--out", str(pkg), "--cfg", "2")
  doc = json.loads((pkg / "model.json").read_text())
  assert doc["meta"]["step"] == 4 and doc["meta"]["ema"] is True
  assert "organ" in doc["text"]["vocabulary"]
  assert doc["defaults"]["cfg_scale"] == 2.0
  assert doc["codec"]["name"] == codec
  assert doc["codec"].get("kwargs", {}) == (json.loads(kwargs) if kwargs
                                            else {})

  out, fig = tmp_path / "out.wav", tmp_path / "fig.json"
  r = lmdm("generate", "--prompt", "slow organ chorale with violins",
           "--seconds", "3", "--out", str(out), "--checkpoint", str(pkg),
           "--steps", "2", "--json", str(fig), "--no-progress")
  assert "violins" in r.stderr                # named as never seen
  assert "real-time factor" in r.stdout
  audio, rate = sf.read(out)
  assert rate == 44100 and audio.shape == (3 * 44100, 2)
  assert np.isfinite(audio).all()
  f = json.loads(fig.read_text())
  assert f["blocks"] == 3 and f["unknown_words"] == ["with", "violins"]
  assert f["latency_s"]["total"]["median"] > 0 and f["real_time_factor"] > 0

  # A missing or foreign checkpoint is a clear error, not a traceback.
  env = dict(os.environ, PYTHONPATH=REPO)
  bad = subprocess.run(
      [sys.executable, "-m", "lmdm_jax.cli", "generate", "--prompt", "x",
       "--checkpoint", str(tmp_path), "--out", str(out)],
      capture_output=True, text=True, cwd=REPO, env=env, timeout=300)
  assert bad.returncode == 2 and "model.json" in bad.stderr


@pytest.mark.slow
def test_sketch_jam_recipe_on_semitone(tmp_path, cli_env):
  """The sketch / jam recipe of docs/control.md at tiny size on the shipped
  models' codec and layout (semitone's onset layout): mixes with stems
  (the `lmdm data demo --stems` layout) -> `lmdm data build --codec
  semitone --codec-kwargs <onset layout> --controls ... --pitch-method yin
  --stems` -> `lmdm train configs/sketch_demo.py:smoke_jam,semitone_onset`
  from a demo package -> `lmdm export` -> `lmdm generate --sketch` and
  `--accompany` with the exported package."""
  from lmdm_jax.codecs.semitone import ONSET_LAYOUT
  import soundfile as sf
  def lmdm(*args):
    return _lmdm(cli_env, *args)
  sr = 44100
  t = np.arange(int(8 * sr)) / sr
  root = tmp_path / "JAM"
  for i, (f0s, cap) in enumerate([((220.0, 277.2), "slow chorale in A"),
                                  ((330.0, 392.0), "slow chorale in E minor")]):
    parts = [0.2 * np.sin(2 * np.pi * f * t) * (1 + 0.5 * np.sin(2 * t + k))
             for k, f in enumerate(f0s)]
    mix = root / "audio" / "train" / "g" / f"piece{i}.flac"
    stems = root / "stems" / "train" / "g" / f"piece{i}"
    stems.mkdir(parents=True)
    mix.parent.mkdir(parents=True, exist_ok=True)
    for k, x in enumerate(parts):
      sf.write(stems / f"part{k:02d}.flac", np.stack([x, x], 1), sr)
    sf.write(mix, np.stack([sum(parts)] * 2, 1), sr)
    mix.with_suffix(".txt").write_text(cap + "\n")
  data = tmp_path / "tfds"
  lmdm("data", "build", "--audio-dir", str(root / "audio" / "train"),
       "--codec", "semitone", "--codec-kwargs", json.dumps(ONSET_LAYOUT),
       "--out", str(data), "--min-frames", "120",
       "--controls", "loudness,brightness,pitch,cqt_topk",
       "--pitch-method", "yin", "--stems", "--parts-per-file", "1")
  report = json.loads((data / "lmdm_latents_build_report.json").read_text())
  assert report["codec"] == "semitone" and report["part_records"] == 2
  assert report["codec_kwargs"] == ONSET_LAYOUT
  # The demo model first (smoke size), then the sketch model from it.
  demo_cfg = "configs/demo.py:smoke,semitone_onset"
  demo = tmp_path / "demo_pkg"
  lmdm("train", "--config", demo_cfg, "--workdir", str(tmp_path / "wd"),
       "--no-progress", f"--config.data.dir={data}")
  lmdm("export", "--config", demo_cfg, "--workdir", str(tmp_path / "wd"),
       "--data-dir", str(data), "--out", str(demo))
  config = "configs/sketch_demo.py:smoke_jam,semitone_onset"
  work, pkg = tmp_path / "work", tmp_path / "pkg"
  lmdm("train", "--config", config, "--workdir", str(work), "--no-progress",
       f"--config.data.dir={data}", f"--config.init.params={demo}")
  lmdm("export", "--config", config, "--workdir", str(work), "--data-dir",
       str(data), "--out", str(pkg), "--cfg", "3", "--steps", "2")
  doc = json.loads((pkg / "model.json").read_text())
  assert doc["codec"] == {"name": "semitone", "kwargs": ONSET_LAYOUT}
  assert {"cqt_topk", "partner"} <= set(doc["dit"]["controls"])
  melody = root / "stems" / "train" / "g" / "piece0" / "part00.flac"
  for flag in ("--sketch", "--accompany"):
    out = tmp_path / f"out{flag}.wav"
    lmdm("generate", "--prompt", "slow chorale", flag, str(melody),
         "--out", str(out), "--checkpoint", str(pkg), "--no-progress")
    audio, rate = sf.read(out)
    assert rate == sr and audio.shape[1] == 2
    assert audio.shape[0] >= 7 * sr and np.isfinite(audio).all()
    mono = np.mean(np.mean(audio, 1) ** 2)
    assert 10 * np.log10(np.mean(audio ** 2) / mono) < 3.0   # mono-safe


def test_pipeline_encodes_captions_with_the_configured_encoder():
  from lmdm_jax.configs import load_config
  from lmdm_jax.data.pipeline import SyntheticSource, make_pipeline
  cfg = load_config(os.path.join(REPO, "configs/demo.py:smoke"))
  window = cfg.geometry.context + cfg.geometry.block
  src = SyntheticSource(5, window + 3, cfg.model.io_channels, seed=1)
  pipe = make_pipeline(cfg, source=src)
  batch = pipe.batch(0)
  enc = HashedWords(cfg.model.cond_token_dim, cfg.cond_tokens)
  want = enc([src[int(i)]["caption"] for i in batch["index"]])
  np.testing.assert_array_equal(batch["cross_tokens"], want)
  assert np.abs(want).sum() > 0
  pipe.close()
  # Without a text encoder the tokens stay the unconditional zeros.
  with cfg.unlocked():
    cfg.text.encoder = "none"
  pipe = make_pipeline(cfg, source=src)
  np.testing.assert_array_equal(pipe.batch(0)["cross_tokens"], 0.0)
  pipe.close()
  with cfg.unlocked():
    cfg.text.encoder = "bert"
  with pytest.raises(ValueError, match="unknown text encoder"):
    make_pipeline(cfg, source=src)
