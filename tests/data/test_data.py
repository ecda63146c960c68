"""Dataset building (TFDS, array_record) and the training window pipeline."""
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


def test_cli_build_then_train(tmp_path):
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
  with pytest.raises(ValueError, match="unknown config field"):
    cli.main(["train", "--config",
              os.path.join(ROOT, "configs/finetune.py:ed,tiny"),
              "--workdir", work, "--config.optim.lrr=1"])
