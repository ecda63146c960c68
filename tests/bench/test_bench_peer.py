"""`lmdm bench peer`: ours vs stable-audio-tools' PyTorch DiT in one run."""
import json
import os

import pytest

from conftest import ROOT
from refenv import REF_PYTHON, needs_refenv
from lmdm_jax import cli
from lmdm_jax.bench import peer
from lmdm_jax.configs import dit_config, load_config


@needs_refenv
def test_peer_on_tiny_writes_both_sides_and_consistent_ratios(tmp_path,
                                                             capsys):
  out = tmp_path / "peer.json"
  assert cli.main(["bench", "peer", "--config",
                   os.path.join(ROOT, "configs", "tiny.py"), "--steps", "2",
                   "--repeats", "1", "--python", REF_PYTHON,
                   "--json", str(out)]) == 0
  r = json.loads(out.read_text())
  assert r["device"]["kind"] and r["steps"] == 2
  # Same architecture on both sides except SAO's DiT has no input-add
  # projection and always uses 256 Fourier timestep features (tiny: 32).
  cfg = dit_config(load_config(os.path.join(ROOT, "configs", "tiny.py")))
  tf = 256 - cfg.timestep_features_dim
  assert r["ours"]["params"] - r["torch"]["params"] == (
      cfg.input_add_dim * cfg.embed_dim - tf * cfg.embed_dim - tf // 2)
  for side in ("torch", "ours"):
    assert r[side]["full_forward_s"] > 0
  q = r["ratios"]
  assert q["equal_work_full_forward"] == pytest.approx(
      r["torch"]["full_forward_s"] / r["ours"]["full_forward_s"])
  assert q["equal_task_outpaint_vs_bc"] == pytest.approx(
      r["torch"]["outpaint_block_s"] / r["ours"]["bc_block_s"])
  assert "full-window forward" in capsys.readouterr().out


def test_peer_without_torch_interpreter_says_how_to_get_one(tmp_path):
  cfg = load_config(os.path.join(ROOT, "configs", "tiny.py"))
  with pytest.raises(FileNotFoundError, match="setup_refenv"):
    peer.run("tiny", cfg, 2, 1, 1, python=str(tmp_path / "no-python"))
  with pytest.raises(ValueError, match="must be >= 1"):
    peer.run("tiny", cfg, 0, 1, 1, python=str(tmp_path / "no-python"))


def test_torch_kwargs_match_the_sao_small_config():
  kw = peer.torch_kwargs(dit_config(load_config(
      os.path.join(ROOT, "configs", "sao_small.py"))))
  assert kw["embed_dim"] == 1024 and kw["depth"] == 16
  assert kw["num_heads"] == 8 and kw["attn_kwargs"] == {"qk_norm": "ln"}
