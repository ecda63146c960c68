"""launch/train_tpu_pod.sh and launch/train_slurm.sbatch: with DRY_RUN=1
they print the commands they would run; those command lines parse with
`lmdm`'s own argparse and their --config.* overrides apply to the config
(stage 1 from a fetched package: fetch, then train with init.params and
T5 captions). shellcheck (Debian, .ci/install_debian.sh) lints them."""
import os
import shlex
import shutil
import subprocess

import pytest

from lmdm_jax.cli import build_parser
from lmdm_jax.configs import load_config
from lmdm_jax.train.cli import apply_overrides

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = ("launch/train_tpu_pod.sh", "launch/train_slurm.sbatch")
CONFIG = "configs/finetune.py:bc"
PKG = "/shared/sao small pkg"            # a space survives the quoting


def _run(script, args, env, tmp_path):
  fake = tmp_path / "bin"
  fake.mkdir(exist_ok=True)
  # The pause makes the second line arrive after a `head -n 1` reading the
  # list would have exited: the script must still not die of SIGPIPE.
  (fake / "scontrol").write_text(
      "#!/bin/sh\necho node-a\nsleep 0.3\necho node-b\n")
  (fake / "scontrol").chmod(0o755)
  e = {k: v for k, v in os.environ.items()
       if k not in ("HF_TOKEN", "LMDM_PACKAGE", "LMDM_FETCH")}
  e.update(DRY_RUN="1", SLURM_JOB_NODELIST="node-[a-b]", SLURM_NNODES="2",
           PATH=f"{fake}:{os.environ['PATH']}", **env)
  out = subprocess.run(["bash", os.path.join(ROOT, script), *args], env=e,
                       capture_output=True, text=True, check=True)
  return out.stdout


def _lmdm_commands(text):
  """Every `python3 -m lmdm_jax.cli ...` in the output -> its argv."""
  cmds = []
  for line in text.splitlines():
    words = shlex.split(line)
    for i in range(len(words) - 2):
      if words[i:i + 3] == ["python3", "-m", "lmdm_jax.cli"]:
        cmds.append(words[i + 3:])
        break
  return cmds


def _check_train(argv, extra=()):
  args = build_parser().parse_args(list(argv) + list(extra))
  assert args.command == "train" and args.config == CONFIG
  cfg = load_config(os.path.join(ROOT, CONFIG))
  overrides = list(args.overrides)
  if "text" not in cfg:
    # The T5-caption trainer (branch sao-train) adds cfg.text; until it is
    # merged only the other overrides can be applied.
    overrides = [o for o in overrides if not o.startswith("--config.text.")]
  apply_overrides(cfg, overrides)
  return args, cfg


@pytest.mark.parametrize("script", SCRIPTS)
def test_dry_run_fetches_then_trains_from_the_package(script, tmp_path):
  pre = ["tpu-1", "us-central2-b"] if script.endswith(".sh") else []
  out = _run(script, pre + [CONFIG, "/shared/run 1",
                            "--config.data.dir=/shared/data",
                            "--config.train.batch_size=64"],
             {"LMDM_PACKAGE": PKG, "HF_TOKEN": "hf_secret"}, tmp_path)
  assert "hf_secret" not in out
  cmds = _lmdm_commands(out)
  assert [c[0] for c in cmds] == ["fetch", "train"], out
  fetch = build_parser().parse_args(cmds[0])
  assert (fetch.command, fetch.model, fetch.out) == ("fetch", "sao-small",
                                                     PKG)
  extra = ([] if script.endswith(".sh") else
           ["--num-processes", "2", "--process-id", "0"])
  args, cfg = _check_train(cmds[1], extra)
  assert args.workdir == "/shared/run 1"
  assert cfg.init.params == PKG and cfg.data.dir == "/shared/data"
  assert cfg.train.batch_size == 64
  assert "--config.text.encoder=t5" in args.overrides
  if script.endswith(".sh"):
    pip = next(shlex.split(l) for l in out.splitlines() if "pip" in l)
    assert args.distributed and {".[data,fetch]", "jax[tpu]"} <= set(pip)
  else:
    assert args.coordinator == "node-a:12355"
    assert "--process-id" in out and "SLURM_PROCID" in out


@pytest.mark.parametrize("script", SCRIPTS)
def test_dry_run_without_a_package_trains_as_configured(script, tmp_path):
  pre = ["tpu-1", "zone"] if script.endswith(".sh") else []
  out = _run(script, pre + [CONFIG, "/w", "--config.data.dir=/d"], {},
             tmp_path)
  cmds = _lmdm_commands(out)
  assert [c[0] for c in cmds] == ["train"], out
  extra = ([] if script.endswith(".sh") else
           ["--num-processes", "2", "--process-id", "1"])
  args, cfg = _check_train(cmds[0], extra)
  assert cfg.init.params == "" and "--config.text.encoder=t5" not in \
      args.overrides


def test_dry_run_with_an_existing_package_skips_the_fetch(tmp_path):
  out = _run(SCRIPTS[1], [CONFIG, "/w"],
             {"LMDM_PACKAGE": PKG, "LMDM_FETCH": ""}, tmp_path)
  cmds = _lmdm_commands(out)
  assert [c[0] for c in cmds] == ["train"]
  assert _check_train(cmds[0])[1].init.params == PKG


@pytest.mark.skipif(shutil.which("shellcheck") is None,
                    reason="shellcheck not installed (bash "
                    ".ci/install_debian.sh)")
def test_launch_scripts_are_shellcheck_clean():
  r = subprocess.run(["shellcheck", *[os.path.join(ROOT, s) for s in
                                      SCRIPTS]],
                     capture_output=True, text=True)
  assert r.returncode == 0, r.stdout
