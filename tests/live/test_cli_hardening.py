"""The main job keeps its work; the CLI answers bad input in one line
(issue 20, findings 8 and 9).

Subprocess tests run `lmdm generate` on a random-weight package of the
demo's geometry with the `pool` codec (tests/live/test_long_runs.py); the rest
call `lmdm_jax.cli.main` in-process.
"""
import glob
import json
import os
import signal
import subprocess
import sys
import time
import wave

import numpy as np
import pytest

from live_helpers import REPO
from test_long_runs import package  # noqa: F401  (the module's fixture)
from lmdm_jax import cli, cliutil, pretrained
from lmdm_jax.text.hashed import HashedWords
from lmdm_jax.text.notes import prompt_notes


def run_main(argv, capsys):
  rc = cli.main(argv)
  cap = capsys.readouterr()
  return rc, cap.out, cap.err


# -- 8: Ctrl-C / SIGTERM keep the blocks made ---------------------------------
@pytest.mark.slow                    # generate in a subprocess, signalled
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_generate_writes_what_it_made(package, cli_env, tmp_path,
                                                  signum):
  out = str(tmp_path / "long.wav")
  p = subprocess.Popen(
      [sys.executable, "-m", "lmdm_jax.cli", "generate", "--checkpoint",
       package, "--prompt", "slow organ", "--seconds", "3600", "--steps",
       "50", "--out", out, "--no-progress"], env=cli_env,
      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  t0 = time.time()
  while time.time() - t0 < 300 and p.poll() is None:   # until blocks exist
    spool = glob.glob(str(tmp_path / ".lmdm_*.f32"))
    if spool and os.path.getsize(spool[0]) > 2 * 44100 * 4:
      break
    time.sleep(0.05)
  p.send_signal(signum)
  stdout, stderr = p.communicate(timeout=300)
  assert p.returncode == 128 + signum, stderr
  assert "Traceback" not in stderr, stderr
  with open(tmp_path / "long.json") as f:       # no --json: OUT.json
    fig = json.load(f)
  assert fig["interrupted"] == signal.Signals(signum).name
  assert 1 <= fig["blocks"] < fig["blocks_planned"]
  with wave.open(out) as w:                     # a valid WAV of the blocks
    frames = w.getnframes()
    audio = np.frombuffer(w.readframes(frames), "<i2")
  assert frames == round(fig["seconds"] * 44100) > 0
  assert frames >= (fig["blocks"] - 1) * 24 * 2048
  assert np.abs(audio).max() > 0
  assert f"{fig['blocks']} of {fig['blocks_planned']} blocks" in stdout
  assert not glob.glob(str(tmp_path / ".lmdm_*"))   # spool removed


# -- 8: --out checked before anything compiles ---------------------------------
@pytest.mark.parametrize("out, match", [
    ("/proc/lmdm_test.wav", "--out is not writable"),
    ("DIR.wav", "--out names a folder"),
])
def test_unwritable_out_fails_before_the_model_loads(tmp_path, capsys,
                                                     monkeypatch, out,
                                                     match):
  if out == "DIR.wav":
    out = str(tmp_path / "DIR.wav")
    os.mkdir(out)
  loaded = []
  monkeypatch.setattr(pretrained, "load", lambda *a: loaded.append(a))
  rc, _, err = run_main(["generate", "--prompt", "slow organ", "--seconds",
                         "2", "--out", out], capsys)
  assert rc == 2 and match in err and loaded == [], err
  assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


# -- 8: a missing extra names its pip install ----------------------------------
def test_missing_extra_names_the_install(tmp_path, capsys, monkeypatch):
  monkeypatch.setitem(sys.modules, "soundfile", None)   # import fails
  wav = tmp_path / "hum.wav"
  wav.write_bytes(b"")
  rc, _, err = run_main(["generate", "--prompt", "a", "--sketch", str(wav),
                         "--out", str(tmp_path / "o.wav")], capsys)
  assert rc == 1 and 'pip install -e ".[data]"' in err, err
  assert "--sketch" in err and len(err.strip().splitlines()) == 1
  rc, _, err = run_main(["eval", "--generated", str(tmp_path)], capsys)
  assert rc == 1 and 'pip install -e ".[eval]"' in err, err


# -- 8: prompt handling says what it dropped and why ----------------------------
def test_prompt_notes_tell_the_token_limit_from_unknown_words():
  enc = HashedWords(8, 24, vocabulary=["slow", "organ", "piano"])
  long = " ".join(["slow organ"] * 10 + ["violins"] + ["piano"] * 2000)
  d = enc.describe(long)
  assert d["unknown"] == ["violins"] and len(d["over_limit"]) == 1997
  notes = prompt_notes(enc, long)
  assert any("1997 words past the 24-word limit" in n for n in notes), notes
  assert any("never saw" in n and "violins" in n and "piano" not in n
             for n in notes), notes


def test_non_ascii_words_are_normalised_or_reported():
  enc = HashedWords(8, 24, vocabulary=["slow", "dvorak", "cafe"])
  d = enc.describe("Slow DVOŘÁK café 音楽 ♪")
  assert d["words"] == ["slow", "dvorak", "cafe", "音楽"]   # not split
  assert d["unknown"] == ["音楽"] and d["ignored"] == ["♪"]
  assert ["dvořák", "dvorak"] in d["normalised"]
  np.testing.assert_array_equal(enc.encode_one("Dvořák"),
                                enc.encode_one("dvorak"))
  notes = " | ".join(prompt_notes(enc, "Slow DVOŘÁK café 音楽 ♪"))
  assert "dvořák -> dvorak" in notes and "♪" in notes and "音楽" in notes
  # ASCII captions read exactly as before (the shipped models' vocabulary).
  assert enc.describe("Slow, organ-chorale 1920s")["words"] == [
      "slow", "organ", "chorale", "1920s"]


def test_empty_prompt_is_warned():
  enc = HashedWords(8, 24, vocabulary=["slow"])
  assert "empty prompt" in prompt_notes(enc, "   ")[0]
  assert any("no words left" in n for n in prompt_notes(enc, "!!! ..."))


# -- 9: shipped models are named explicitly ------------------------------------
def test_shipped_names_are_not_shadowed_by_the_working_directory(
    tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  for name in ("demo", "sketch", "jam"):
    os.mkdir(name)                              # a stray folder here
    with open(os.path.join(name, "model.json"), "w") as f:
      f.write("{}")
    assert pretrained.resolve(name) == pretrained.SHIPPED[name]
    assert os.path.isfile(os.path.join(pretrained.resolve(name),
                                       "params.npz"))
  assert pretrained.load("demo").path == pretrained.SHIPPED["demo"]
  assert pretrained.resolve("./demo") == "./demo"     # a path is a path
  with pytest.raises(ValueError, match="format"):
    pretrained.load("./demo")


# -- 9: control characters are escaped -----------------------------------------
def test_control_characters_are_escaped_when_echoed():
  evil = "slow\x00organ \u202eevil\x1b[2J\u2028x"
  shown = cliutil.printable(evil)
  assert shown == "slow\\x00organ \\u202eevil\\x1b[2J\\u2028x"
  assert cliutil.printable("Dvořák 音楽 ok\n", keep="\n") == "Dvořák 音楽 ok\n"
  enc = HashedWords(8, 4, vocabulary=["slow"])
  for note in prompt_notes(enc, evil + " a b c d e"):
    assert note.isprintable(), note
  line = cliutil.error_line("generate", ValueError(f"bad prompt {evil}"))
  assert line.isprintable() and "\\u202e" in line


# -- 9: one error handler for every command ------------------------------------
def test_every_command_answers_bad_input_in_one_line(tmp_path, capsys):
  rc, _, err = run_main(["info", "--config", str(tmp_path / "nope.py")],
                        capsys)
  assert rc == 2 and err.startswith("lmdm info: error: config file not "
                                    "found"), err
  assert len(err.strip().splitlines()) == 1
  rc, _, err = run_main(["export", "--config", str(tmp_path / "no.py"),
                         "--workdir", str(tmp_path / "none"),
                         "--out", str(tmp_path / "pkg")], capsys)
  assert rc in (1, 2) and err.startswith("lmdm export: error: "), err
  assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_runtime_failures_exit_1_and_debug_shows_the_traceback(tmp_path,
                                                               capsys):
  bad = tmp_path / "broken.py"
  bad.write_text("def get_config():\n  raise RuntimeError('disk on fire')\n")
  rc, _, err = run_main(["info", "--config", str(bad)], capsys)
  assert rc == 1 and "RuntimeError: disk on fire" in err, err
  assert "--debug" in err and len(err.strip().splitlines()) == 1
  with pytest.raises(RuntimeError, match="disk on fire"):
    cli.main(["info", "--config", str(bad), "--debug"])


# -- 9: config override errors name the field ----------------------------------
@pytest.mark.parametrize("override, match", [
    ("--config.train.batch_size=abc",
     r"--config.train.batch_size='abc': expected an integer"),
    ("--config.optim.lr=fast", r"--config.optim.lr='fast': expected a number"),
    ("--config.train=3", r"--config.train is a group of fields"),
    ("--config.train.nope=3", r"unknown config field 'train.nope'"),
])
def test_config_override_errors_name_the_field(tmp_path, capsys, override,
                                               match):
  rc, _, err = run_main(["train", "--config",
                         os.path.join(REPO, "configs", "finetune.py:bc,tiny"),
                         "--workdir", str(tmp_path / "w"), override], capsys)
  assert rc == 2, err
  import re
  assert re.search(match, err), err
  assert len(err.strip().splitlines()) == 1
  assert not os.path.exists(tmp_path / "w" / "config.json")
