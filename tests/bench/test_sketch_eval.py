"""benchmarks/sketch_eval.py: one row per clip and seed, a summary whose
mean is the mean of the seeds' means, seeds that change the generation,
and bad seeds refused before anything runs."""
import numpy as np
import pytest

from helpers import load_benchmark

KEYS = ("pitch_accuracy", "chroma_accuracy", "cqt_topk_match", "onset_f1",
        "loudness_correlation")


@pytest.fixture(scope="module")
def sketch_setup(tmp_path_factory):
  sf = pytest.importorskip("soundfile")
  from live_helpers import make_smoke_package
  root = tmp_path_factory.mktemp("sketch_eval")
  pkg = make_smoke_package(str(root / "pkg"), config="sketch_demo.py:smoke_jam")
  folk = root / "folk"
  folk.mkdir()
  sr, rng = 44100, np.random.default_rng(0)
  t = np.arange(10 * sr) / sr      # context 96 + 2 blocks of 24 frames: 6.7 s
  notes = 220.0 * 2 ** (np.floor(t * 4) % 5 / 12)        # a 4 Hz melody
  x = 0.3 * np.sin(2 * np.pi * np.cumsum(notes) / sr)
  x = x + 0.01 * rng.standard_normal(x.shape)
  sf.write(str(folk / "tune.flac"), np.stack([x, x], 1).astype(np.float32),
           sr)
  (folk / "tune.txt").write_text("folk tune for fiddle")
  return load_benchmark("sketch_eval"), pkg, str(folk)


def test_rows_per_seed_and_a_summary_of_them(sketch_setup):
  se, pkg, folk = sketch_setup
  r = se.run(pkg, [folk], n_clips=1, blocks=2, seeds=(3, 5), log=lambda m: 0)
  assert [row["seed"] for row in r["clips"]] == [3, 5]
  assert {row["clip"] for row in r["clips"]} == {"folk/tune.flac#0"}
  s = r["summary"]["all"]
  assert s["clips"] == 1 and s["rows"] == 2 and r["seeds"] == [3, 5]
  for cond in ("controls", "none"):
    for k in KEYS:
      per_seed = [s["seeds"][str(x)][cond][k] for x in (3, 5)]
      if np.all(np.isfinite(per_seed)):
        assert s[cond][k] == pytest.approx(np.mean(per_seed))
  # The seed reaches the generation: the two rows are not the same music.
  a, b = r["clips"]
  assert any(a[c][k] != b[c][k] for c in ("controls", "none") for k in KEYS)
  # Onsets against the raw clip beside the codec path (librosa hears the
  # melody's steps and its noise: more than the melody's 4 per second).
  assert a["reference"]["onsets_per_s_raw"] >= 4.0
  assert a["reference"]["onsets_per_s_codec"] > 0.0
  assert a["reference"] == b["reference"]
  for row in (a, b):
    for cond in ("controls", "none"):
      assert 0.0 <= row[cond]["onset_f1_raw"] <= 1.0
      assert row[cond]["onsets_per_s"] >= 0.0


def test_bad_seeds_are_refused(sketch_setup):
  se, pkg, folk = sketch_setup
  for seeds in ((), (1, 1)):
    with pytest.raises(ValueError, match="seeds must be distinct"):
      se.run(pkg, [folk], n_clips=1, blocks=1, seeds=seeds)


def test_seeds_that_are_not_integers_are_a_usage_error(tmp_path):
  import os
  import subprocess
  import sys
  root = os.path.dirname(os.path.dirname(os.path.dirname(
      os.path.abspath(__file__))))
  for script in ("sketch_eval.py", "sketch_seams.py"):
    args = [sys.executable, os.path.join(root, "benchmarks", script),
            "--model", "m", "--json", str(tmp_path / "x.json"),
            "--seeds", "1,a"]
    args += (["--audio", "d"] if script == "sketch_eval.py"
             else ["--sketch", "f", "--workdir", str(tmp_path)])
    p = subprocess.run(args, capture_output=True, text=True, timeout=120,
                       env={**os.environ, "PYTHONPATH": root})
    assert p.returncode == 2, (script, p.stderr)
    assert "comma-separated integers, got '1,a'" in p.stderr
    assert not (tmp_path / "x.json").exists()
