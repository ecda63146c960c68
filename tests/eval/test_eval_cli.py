"""`lmdm eval` and lmdm_jax.eval.run end to end on tiny files in tmp_path."""
import json
import os
import re
import shutil

import numpy as np
import pytest
import soundfile as sf

from lmdm_jax.cli import build_parser, main
from lmdm_jax.eval import evaluate_dirs, tag_summary


def _plucks(seconds, sr, seed=0):
  """Decaying harmonic notes, 8 per second (musicnn: piano, classical)."""
  t = np.arange(int(seconds * sr)) / sr
  y = np.zeros_like(t)
  notes = np.array([220.0, 277.18, 329.63, 440.0, 246.94, 311.13])
  notes = np.roll(notes, seed)
  for i in range(int(seconds * 8)):
    a, b = int(i / 8 * sr), int((i / 8 + 2) * sr)   # 2 s: decayed to 3e-4
    tt = t[a:b] - i / 8
    for h in range(1, 6):
      y[a:b] += 0.02 / h * np.exp(-4 * tt) * np.sin(
          2 * np.pi * h * notes[i % len(notes)] * tt)
  return y


def _noise(seconds, sr, seed=0):
  return 0.05 * np.random.default_rng(seed).normal(size=int(seconds * sr))


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
  root = tmp_path_factory.mktemp("eval")
  gen, ref = root / "gen", root / "ref"
  gen.mkdir()
  ref.mkdir()
  # Generated: one 18 s file that turns from plucks into noise at 9 s
  # (44.1 kHz stereo wav) and one 6 s plucks file (22.05 kHz mono flac).
  sr = 44100
  long = np.concatenate([_plucks(9, sr), _noise(9, sr, 1)])
  sf.write(gen / "long.wav", np.stack([long, 0.9 * long], 1), sr)
  sf.write(gen / "a.flac", _plucks(6, 22050, 2), 22050)
  # Reference: plucks at 16 kHz (wav) and 48 kHz (ogg).
  sf.write(ref / "a.wav", _plucks(6, 16000, 1), 16000)
  sf.write(ref / "b.ogg", _plucks(6.5, 48000, 3), 48000)
  return str(gen), str(ref)


def test_cli_end_to_end(dirs, tmp_path, capsys):
  gen, ref = dirs
  out = tmp_path / "eval.json"
  assert "eval" in build_parser()._subparsers._group_actions[0].choices
  assert main(["eval", "--generated", gen, "--reference", ref, "--json",
               str(out), "--window-seconds", "6", "--tags"]) == 0
  r = json.loads(out.read_text())
  assert r["model"] == "MTT_musicnn" and r["embedding_dim"] == 200
  assert r["generated"]["files"] == 2 and r["reference"]["files"] == 2
  assert r["generated"]["patches"] == 6 + 2 and r["reference"]["patches"] == 4
  assert np.isfinite(r["fd"]) and r["fd"] > 0
  assert np.isfinite(r["kl"]) and r["kl"] > 0
  assert r["pairs"] == 1 and np.isfinite(r["kl_paired"])   # a.flac/a.wav
  assert len(r["generated"]["mean"]) == 50
  assert {"piano", "guitar", "strings", "classical"} <= set(
      r["generated"]["focus"])
  assert len(r["files"]) == 4
  # Drift: 6 s windows over the generated files; the long file turns into
  # noise at 9 s, so the last window is farther from the reference.
  w = r["drift"]["windows"]
  assert [x["start_s"] for x in w] == [0, 6, 12]
  assert [x["patches"] for x in w] == [4, 2, 2]
  assert w[2]["kl"] > w[0]["kl"] and w[2]["fd"] > w[0]["fd"]
  text = capsys.readouterr().out
  for s in ("top 5:", "focus: piano", "FD ", "KL(ref||gen)", "drift (6.0 s",
            "per file:"):
    assert s in text
  # Tag summary only, MSD model, another embedding layer.
  out2 = tmp_path / "tags.json"
  assert main(["eval", "--generated", gen, "--json", str(out2), "--model",
               "msd", "--embedding", "max_pool"]) == 0
  r2 = json.loads(out2.read_text())
  assert r2["model"] == "MSD_musicnn" and "fd" not in r2
  assert "rock" in r2["generated"]["focus"]


def test_tag_summary_python_api(dirs):
  gen, ref = dirs
  s = tag_summary([os.path.join(ref, "a.wav"), os.path.join(ref, "b.ogg")])
  assert s["model"] == "MTT_musicnn" and s["files"] == 2
  assert s["patches"] == 4 and s["seconds"] == pytest.approx(12.5)
  # Plucked harmonic notes read as piano (musicnn MTT).
  assert s["top"][0]["tag"] == "piano"
  assert s["focus"]["piano"] > 5 * s["focus"]["strings"]
  assert tag_summary(ref)["mean"] == s["mean"]          # a directory
  nested = os.path.join(os.path.dirname(ref), "nested")
  os.makedirs(os.path.join(nested, "group"), exist_ok=True)
  shutil.copy(os.path.join(ref, "a.wav"), nested)
  shutil.copy(os.path.join(ref, "b.ogg"), os.path.join(nested, "group"))
  assert tag_summary(nested)["mean"] == s["mean"]       # sub-folders too
  res = evaluate_dirs(gen)
  assert "reference" not in res and res["generated"]["files"] == 2


def test_bad_inputs_name_the_problem(dirs, tmp_path, capsys):
  def refused(argv, pattern):
    """cli.main's one handler: one line, exit 2."""
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("lmdm eval: error: ") and err.count("\n") == 1
    assert re.search(pattern, err), err

  gen, ref = dirs
  empty = tmp_path / "empty"
  empty.mkdir()
  (empty / "notes.txt").write_text("not audio")
  refused(["eval", "--generated", str(empty), "--reference", ref],
          "no audio files .* in .*empty")
  refused(["eval", "--generated", str(tmp_path / "missing")],
          "not a directory: .*missing")
  bad = tmp_path / "bad"
  bad.mkdir()
  (bad / "broken.wav").write_bytes(b"RIFF....WAVEfmt garbage")
  refused(["eval", "--generated", str(bad), "--reference", ref],
          r"broken\.wav: unreadable")
  short = tmp_path / "short"
  short.mkdir()
  sf.write(short / "tiny.wav", _plucks(2.0, 16000), 16000)
  with pytest.raises(ValueError, match=r"tiny\.wav: too short .*2\.976 s"):
    evaluate_dirs(str(short), ref)
  refused(["eval", "--generated", gen, "--window-seconds", "5"],
          "needs --reference")
  with pytest.raises(ValueError, match="window_seconds must be > 0"):
    evaluate_dirs(gen, ref, window_seconds=-1)
  with pytest.raises(ValueError, match="unknown musicnn model"):
    tag_summary(gen, model="vgg")
  with pytest.raises(ValueError, match="no files given"):
    tag_summary([])
  one = tmp_path / "one"
  one.mkdir()
  sf.write(one / "x.wav", _plucks(3.2, 16000), 16000)
  with pytest.raises(ValueError, match="generated: FD needs at least 2"):
    evaluate_dirs(str(one), ref)
