"""Every config file loads; recipes take their mode as an argument and
build on the one copy of each model preset (configs/tiny.py,
sao_small.py, sao.py)."""
import glob
import os

import pytest

from lmdm_jax.configs import load_config, parse_arg

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = os.path.join(ROOT, "configs")


@pytest.mark.parametrize("path", sorted(
    glob.glob(os.path.join(CONFIGS, "*.py")) +
    glob.glob(os.path.join(CONFIGS, "bench", "*.py"))))
def test_every_config_file_loads_with_its_default(path):
  cfg = load_config(path)
  assert len(cfg) > 0


@pytest.mark.parametrize("recipe", ["finetune", "finetune_sketch",
                                    "arc_forcing"])
@pytest.mark.parametrize("mode", ["bc", "ed"])
def test_recipes_take_the_mode_and_share_the_presets(recipe, mode):
  path = os.path.join(CONFIGS, f"{recipe}.py")
  tiny = load_config(f"{path}:{mode},tiny")
  full = load_config(f"{path}:{mode}")
  assert tiny.geometry.mode == full.geometry.mode == mode
  preset = load_config(os.path.join(CONFIGS, "tiny.py"))
  sao_small = load_config(os.path.join(CONFIGS, "sao_small.py"))
  got = {k: v for k, v in tiny.model.to_dict().items() if k != "controls"}
  assert got == preset.model.to_dict()
  got = {k: v for k, v in full.model.to_dict().items() if k != "controls"}
  assert got == sao_small.model.to_dict()
  assert full.cond_tokens == sao_small.cond_tokens
  # The mode is the only difference between the bc and ed recipes.
  other = load_config(f"{path}:{'ed' if mode == 'bc' else 'bc'}")
  other.geometry.mode = mode
  for key in ("arc",):
    if key in other:
      other[key].contrastive_weight = full[key].contrastive_weight
      other[key].text_dropout = full[key].text_dropout
  assert other.to_dict() == full.to_dict()


def test_parse_arg():
  assert parse_arg("", variants=("", "tiny")) == ("bc", "")
  assert parse_arg("ed", variants=("", "tiny")) == ("ed", "")
  assert parse_arg("tiny", variants=("", "tiny")) == ("bc", "tiny")
  assert parse_arg("ed,tiny", variants=("", "tiny")) == ("ed", "tiny")
  with pytest.raises(ValueError, match="neither a mode"):
    parse_arg("bc,huge", variants=("", "tiny"))
