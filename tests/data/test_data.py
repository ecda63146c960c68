"""Dataset building (TFDS, array_record) and the training window pipeline."""
import glob
import json
import os

import numpy as np
import pytest

pytest.importorskip("tensorflow_datasets")
pytest.importorskip("soundfile")

from lmdm_jax.codecs import get_codec  # noqa: E402
from lmdm_jax.data import audio as audio_lib  # noqa: E402
from lmdm_jax.data import builders  # noqa: E402
from lmdm_jax.data.pipeline import SyntheticSource, WindowPipeline  # noqa
from train_helpers import write_audio_folder  # noqa: E402

CODEC = dict(hop=256, latent_channels=8)      # pool codec, 172 frames/s


@pytest.fixture(scope="module")
def built(tmp_path_factory):
  root = tmp_path_factory.mktemp("data")
  audio_dir, out = str(root / "audio"), str(root / "out")
  expected = write_audio_folder(audio_dir)
  caps = root / "captions.jsonl"
  caps.write_text(json.dumps({"file": "c_3ch_96k.wav",
                              "caption": "three channels"}) + "\n")
  report = builders.build(audio_dir, out, "pool", CODEC, str(caps),
                          min_frames=32, log=lambda *a: None)
  return audio_dir, out, expected, report


def test_builder_round_trips_latents_bit_exactly(built):
  audio_dir, out, expected, report = built
  codec = get_codec("pool", **CODEC)
  ds = builders.open_dataset(out)
  kept = sorted(f for f, r in expected.items() if r is None)
  assert len(ds) == report["examples"] == len(kept)
  rows = {ds[i]["source"].decode() if isinstance(ds[i]["source"], bytes)
          else ds[i]["source"]: ds[i] for i in range(len(ds))}
  assert sorted(rows) == kept
  for rel in kept:
    x, sr, dur = audio_lib.load_for_codec(os.path.join(audio_dir, rel),
                                          codec)
    want = codec.encode(x)
    got = rows[rel]["latents"]
    assert got.dtype == np.float32 and got.shape == want.shape
    assert np.array_equal(got, want)
    assert rows[rel]["frames"] == want.shape[0]
    assert rows[rel]["sample_rate"] == sr
  assert rows["c_3ch_96k.wav"]["sample_rate"] == 96000
  cap = {k: (v["caption"].decode() if isinstance(v["caption"], bytes)
             else v["caption"]) for k, v in rows.items()}
  assert cap["a_tone.wav"] == "a sidecar caption"
  assert cap["c_3ch_96k.wav"] == "three channels"
  assert cap["sub/b_mono.flac"] == ""


def test_builder_reports_every_bad_file(built):
  _, out, expected, report = built
  with open(os.path.join(out, "lmdm_latents_build_report.json")) as f:
    on_disk = json.load(f)
  reasons = {s["file"]: s["reason"] for s in on_disk["skipped"]}
  bad = {f: r for f, r in expected.items() if r is not None}
  assert sorted(reasons) == sorted(bad)
  for f, r in bad.items():
    assert r in reasons[f], (f, reasons[f])


def test_rebuild_reuses_encodings(built):
  audio_dir, out, expected, _ = built
  again = builders.build(audio_dir, out, "pool", CODEC, min_frames=32,
                         log=lambda *a: None)
  assert again["reused_encodings"] == len(expected)
  assert again["examples"] == 3


def test_a_new_encode_version_re_encodes(built, monkeypatch):
  """A codec whose encoding changed (encode_version bumped) does not reuse
  the latents cached under its old version; version 0 keys as before."""
  from lmdm_jax.codecs.pool import PoolCodec
  audio_dir, out, expected, _ = built
  monkeypatch.setattr(PoolCodec, "encode_version", 1)
  again = builders.build(audio_dir, out, "pool", CODEC, min_frames=32,
                         log=lambda *a: None)
  assert again["reused_encodings"] == 0 and again["examples"] == 3
  monkeypatch.setattr(PoolCodec, "encode_version", 0)
  back = builders.build(audio_dir, out, "pool", CODEC, min_frames=32,
                        log=lambda *a: None)
  assert back["reused_encodings"] == len(expected)


def test_convert_channels_and_rate():
  x = np.stack([np.ones(9600), 2 * np.ones(9600), 3 * np.ones(9600)])
  y = audio_lib.convert(x, 96000, 2, 48000)
  assert y.shape == (2, 4800) and y.dtype == np.float32
  np.testing.assert_allclose(y[:, 100:-100], 2.0, atol=1e-3)
  with pytest.raises(audio_lib.BadAudio, match="unreadable"):
    audio_lib.read(__file__)


def test_pipeline_is_deterministic_sharded_and_resumable(built):
  _, out, _, _ = built
  src = builders.open_dataset(out)
  one = WindowPipeline(src, 24, 4, seed=3, prefetch=2)
  batches = [next(one) for _ in range(4)]
  # Same seed, fresh pipeline: same batches; different seed: different.
  again = WindowPipeline(src, 24, 4, seed=3, prefetch=0)
  for b in batches:
    assert np.array_equal(next(again)["latents"], b["latents"])
  other = WindowPipeline(src, 24, 4, seed=4, prefetch=0)
  assert not all(np.array_equal(next(other)["latents"], b["latents"])
                 for b in batches)
  # Each process reads its own rows of the same global batches.
  halves = [WindowPipeline(src, 24, 4, seed=3, process_index=p,
                           process_count=2, prefetch=0) for p in (0, 1)]
  for b in batches:
    rows = np.concatenate([next(h)["latents"] for h in halves])
    assert np.array_equal(rows, b["latents"])
  # Restoring the saved state continues with the same batch.
  resumed = WindowPipeline(src, 24, 4, seed=3, prefetch=1)
  resumed.set_state({"next_batch": 3, "seed": 3})
  assert np.array_equal(next(resumed)["latents"], batches[3]["latents"])
  # Every epoch visits every record once.
  synth = WindowPipeline(SyntheticSource(5, 30, 2), 24, 5, prefetch=0)
  assert sorted(next(synth)["index"]) == [0, 1, 2, 3, 4]
  with pytest.raises(ValueError, match="seed"):
    resumed.set_state({"next_batch": 0, "seed": 9})


def test_cli_build_then_train(tmp_path, capsys):
  """`lmdm data build` then `lmdm train` on the built dataset (2 steps)."""
  from lmdm_jax import cli
  from train_helpers import ROOT
  audio_dir, out, work = (str(tmp_path / d) for d in ("a", "d", "w"))
  write_audio_folder(audio_dir, seconds=0.3)
  assert cli.main(["data", "build", "--audio-dir", audio_dir, "--codec",
                   "pool", "--codec-kwargs", json.dumps(CODEC), "--out", out,
                   "--min-frames", "32"]) == 0
  assert cli.main([
      "train", "--config", os.path.join(ROOT, "configs/finetune.py:ed,tiny"),
      "--workdir", work, "--no-progress", "--config.model.depth=1",
      "--config.mesh.devices=1", "--config.train.steps=2",
      "--config.data.source=tfds", f"--config.data.dir={out}"]) == 0
  with open(os.path.join(work, "metrics.jsonl")) as f:
    rows = [json.loads(line) for line in f]
  assert [r["step"] for r in rows] == [1, 2]
  assert all(np.isfinite(r["loss"]) and r["frames_per_s"] > 0 for r in rows)
  assert os.listdir(os.path.join(work, "ckpt")) == ["2"]
  capsys.readouterr()
  assert cli.main(["train", "--config",       # cli.main's one handler: exit 2
                   os.path.join(ROOT, "configs/finetune.py:ed,tiny"),
                   "--workdir", work, "--config.optim.lrr=1"]) == 2
  assert "unknown config field 'optim.lrr'" in capsys.readouterr().err


def _tone(path, seconds=0.3):
  import soundfile as sf
  t = np.arange(int(44100 * seconds)) / 44100
  sf.write(path, 0.3 * np.sin(2 * np.pi * 220 * t), 44100)


def test_symlinks_and_special_files_are_bad_inputs(tmp_path):
  """Dangling symlinks, symlink loops, FIFOs and devices named *.wav are
  reported (never opened: a FIFO or /dev/zero would block the build), on
  the first run and on a re-run; a symlink to a real file is followed."""
  audio, out = tmp_path / "a", str(tmp_path / "out")
  audio.mkdir()
  _tone(str(audio / "good.wav"))
  os.symlink("good.wav", audio / "link.wav")
  os.symlink("missing.wav", audio / "dangling.wav")
  os.symlink("loop.wav", audio / "loop.wav")
  os.mkfifo(audio / "fifo.wav")
  os.symlink("/dev/zero", audio / "zero.wav")
  want = {"dangling.wav": "dangling symlink", "loop.wav": "symlink loop",
          "fifo.wav": "not a regular file (FIFO)",
          "zero.wav": "not a regular file (device)"}
  for _ in range(2):
    report = builders.build(str(audio), out, "pool", CODEC, min_frames=8,
                            log=lambda *a: None)
    reasons = {s["file"]: s["reason"] for s in report["skipped"]}
    assert sorted(reasons) == sorted(want)
    for f, r in want.items():
      assert r in reasons[f], (f, reasons[f])
    assert report["examples"] == 2       # good.wav and link.wav


def test_rebuild_from_another_working_directory(tmp_path, monkeypatch):
  """The cache's records resolve inside the cache, so a re-run from another
  folder (or of a moved --out) reuses them instead of failing."""
  audio = str(tmp_path / "a")
  write_audio_folder(audio, seconds=0.3)
  (tmp_path / "elsewhere").mkdir()
  monkeypatch.chdir(tmp_path)
  first = builders.build(audio, "out", "pool", CODEC, min_frames=32,
                         log=lambda *a: None)
  monkeypatch.chdir(tmp_path / "elsewhere")
  again = builders.build(audio, "../out", "pool", CODEC, min_frames=32,
                         log=lambda *a: None)
  assert again["reused_encodings"] == first["files"] == 7
  assert again["examples"] == first["examples"] == 3
  os.rename(tmp_path / "out", tmp_path / "moved")
  moved = builders.build(audio, str(tmp_path / "moved"), "pool", CODEC,
                         min_frames=32, log=lambda *a: None)
  assert moved["reused_encodings"] == 7 and moved["examples"] == 3
  assert len(builders.open_dataset(str(tmp_path / "moved"))) == 3


def test_killed_tfds_write_is_cleaned_on_the_next_run(tmp_path):
  """SIGKILL in the middle of the TFDS write leaves incomplete.* behind;
  the next build removes it and writes the dataset."""
  import subprocess
  import sys
  from train_helpers import ROOT
  audio, out = str(tmp_path / "a"), str(tmp_path / "out")
  write_audio_folder(audio, seconds=0.3)
  code = f"""
import os, signal
from lmdm_jax.data import builders
gen = builders.LmdmLatents._generate_examples
def dying(self):
  for i, ex in enumerate(gen(self)):
    if i == 1:
      os.kill(os.getpid(), signal.SIGKILL)
    yield ex
builders.LmdmLatents._generate_examples = dying
builders.build({audio!r}, {out!r}, "pool", {CODEC!r}, min_frames=32)
"""
  r = subprocess.run([sys.executable, "-c", code], cwd=ROOT,
                     capture_output=True, text=True, timeout=300,
                     env=dict(os.environ, PYTHONPATH=ROOT))
  assert r.returncode == -9, r.stderr[-2000:]
  assert glob.glob(os.path.join(out, "lmdm_latents", "incomplete.*"))
  logs = []
  report = builders.build(audio, out, "pool", CODEC, min_frames=32,
                          log=logs.append)
  assert not glob.glob(os.path.join(out, "lmdm_latents", "incomplete.*"))
  assert any("interrupted write" in m for m in logs)
  assert report["examples"] == len(builders.open_dataset(out)) == 3
  lock = builders._lock(os.path.abspath(out))     # a build in progress
  try:
    with pytest.raises(ValueError, match="another `lmdm data build`"):
      builders.build(audio, out, "pool", CODEC, min_frames=32,
                     log=lambda *a: None)
  finally:
    lock.close()


def test_open_dataset_imports_nothing_the_folder_names(built, tmp_path,
                                                        monkeypatch):
  """features.json naming a feature class outside the allow-list is refused
  before TFDS could import its module (reachable through
  --config.data.dir and `lmdm export --data-dir`)."""
  import shutil
  import sys
  from lmdm_jax.data.pipeline import tfds_source
  _, out, _, _ = built
  copy = str(tmp_path / "ds")
  shutil.copytree(out, copy)
  marker = tmp_path / "imported"
  mods = tmp_path / "mods"
  mods.mkdir()
  (mods / "lmdm_evil_feature.py").write_text(
      f"open({str(marker)!r}, 'w').write('ran')\n")
  monkeypatch.syspath_prepend(str(mods))
  path = os.path.join(copy, "lmdm_latents", builders.VERSION,
                      "features.json")
  with open(path) as f:
    text = f.read()
  cls = "tensorflow_datasets.core.features.text_feature.Text"
  assert cls in text
  with open(path, "w") as f:
    f.write(text.replace(cls, "lmdm_evil_feature.Text", 1))
  for opener in (builders.open_dataset, tfds_source):
    with pytest.raises(ValueError, match="lmdm_evil_feature.Text"):
      opener(copy)
  assert not marker.exists() and "lmdm_evil_feature" not in sys.modules
  assert len(builders.open_dataset(out)) == 3     # the real one opens


def test_codec_mismatch_between_data_and_model_is_refused(built, tmp_path):
  """Pool latents with a model package on `semitone` (the shipped demo)
  as init, or exported into a package that names `mel`: one ValueError
  naming both codecs, before a checkpoint or parameter is read (every
  weights-free codec has 64 channels, so no shape would catch it); a
  matching codec and a dataset without a build report pass."""
  import shutil
  from lmdm_jax.configs import load_config
  from lmdm_jax.data.pipeline import check_init_codec
  from lmdm_jax.train.export import export
  from train_helpers import ROOT
  _, out, _, _ = built
  assert builders.built_codec(out) == "pool"
  builders.check_codec(out, "lmdm_latents", "pool", "x")
  cfg = load_config(os.path.join(ROOT, "configs/finetune.py:ed,tiny"))
  cfg.data.update(source="tfds", dir=out)
  cfg.init.params = os.path.join(ROOT, "lmdm_jax/assets/demo")
  with pytest.raises(ValueError, match=r"'pool' latents .* init package "
                     r".*'semitone' codec: rebuild the data with "
                     r"--codec semitone"):
    check_init_codec(cfg)
  work = tmp_path / "no_checkpoint"
  cfg.init.params = ""
  with pytest.raises(ValueError, match=r"'pool' latents .*'mel' codec"):
    export(cfg, str(work), str(tmp_path / "pkg"), data_dir=out)
  assert not (tmp_path / "pkg").exists()
  cfg.codec.name = "pool"       # the codec's arguments must match too
  with pytest.raises(ValueError, match=r"'pool' latents built with codec "
                     r"arguments .*\"hop\": 256.* but the package .* uses "
                     r"\{\}: rebuild the data with --codec-kwargs"):
    export(cfg, str(work), str(tmp_path / "pkg"), data_dir=out)
  with pytest.raises(ValueError, match=r"config.codec uses \{\}"):
    check_init_codec(cfg)                 # from scratch, same codec name
  cfg.codec.kwargs = dict(CODEC)          # matching: on to the checkpoint
  check_init_codec(cfg)
  with pytest.raises(FileNotFoundError, match="no checkpoint"):
    export(cfg, str(work), str(tmp_path / "pkg"), data_dir=out)
  bare = tmp_path / "bare"
  shutil.copytree(out, bare)
  os.remove(bare / "lmdm_latents_build_report.json")
  assert builders.built_codec(str(bare)) is None
  cfg.init.params = os.path.join(ROOT, "lmdm_jax/assets/demo")
  cfg.data.dir = str(bare)
  check_init_codec(cfg)
  # A demo-style run (hashed words, a weights-free codec) from the shipped
  # demo package exports config.codec, so the data must be config.codec's,
  # whatever the init package's layout (the demo moved to a new layout).
  demo = load_config(os.path.join(ROOT, "configs/demo.py:smoke"))
  demo.data.update(source="tfds", dir=out)
  demo.init.params = os.path.join(ROOT, "lmdm_jax/assets/demo")
  with pytest.raises(ValueError, match=r"'pool' latents .* config.codec "
                     r"\(a demo-style run's export names it"):
    check_init_codec(demo)
  demo.codec.update(name="pool", kwargs=dict(CODEC))
  check_init_codec(demo)
  demo.codec.kwargs = {}
  with pytest.raises(ValueError, match=r"built with codec arguments"):
    check_init_codec(demo)


def test_codec_arguments_that_only_change_decoding_are_not_compared(
    tmp_path):
  """A build of semitone's sub-pitch layout: a package that decodes it with
  another sub_share or high_tonal (decode-only arguments) passes; one on
  the plain layout (no sub_pitch: other latents) is refused."""
  from lmdm_jax.codecs.semitone import SUB_PITCH_LAYOUT
  from lmdm_jax.data import reading
  (tmp_path / "lmdm_latents_build_report.json").write_text(json.dumps(
      {"codec": "semitone", "codec_kwargs": SUB_PITCH_LAYOUT}))
  check = lambda kw: reading.check_codec(  # noqa: E731
      str(tmp_path), "lmdm_latents", "semitone", "pkg", kw)
  check(dict(SUB_PITCH_LAYOUT))
  check({"sub_pitch": True, "sub_share": 0.4, "high_tonal": 0.0})
  with pytest.raises(ValueError, match=r"\{\"sub_pitch\": true\} but pkg "
                     r"uses \{\}"):
    check({"sub_share": 0.7})
  with pytest.raises(ValueError, match="codec arguments"):
    check({"sub_pitch": True, "sub_fft": 4096})
  # oobleck: the batched encode's windows do not change its latents.
  (tmp_path / "lmdm_latents_build_report.json").write_text(json.dumps(
      {"codec": "oobleck", "codec_kwargs": {"directory": "/a", "chunk": 128}}))
  reading.check_codec(str(tmp_path), "lmdm_latents", "oobleck", "pkg",
                      {"directory": "/b"})
