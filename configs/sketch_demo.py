"""A demo-size sketch-controlled LMDM (issue 7): configs/demo.py + controls.

The shipped demo model's recipe (BC, s=96 / o=24 / W=4, width 192 x 6
layers, mel codec, hashed-word text) with sketch controls added through the
input-add path: loudness, brightness, pitch and the 84-bin top-4 CQT melody
(lmdm_jax/control, docs/control.md), per-control dropout 0.5 and random
median filtering (p 0.5, kernels 3..9 frames). It can start from the
shipped demo checkpoint (`init.params`): the new control projections are
zero-initialised, so step 0 plays exactly like the demo model. Variant
"jam" adds the partner's latents (t_f = 0, the live case); "smoke" is a
seconds-long run for tests. Not trained yet (docs/control.md).

  lmdm data demo --out DEMO
  lmdm data build --audio-dir DEMO/audio/train --codec mel --out DEMO/tfds \
      --controls loudness,brightness,pitch,cqt_topk
  lmdm train --config configs/sketch_demo.py --workdir W \
      --config.data.dir=DEMO/tfds
"""
import os

from lmdm_jax.train.config import add_sketch

_HERE = os.path.dirname(os.path.abspath(__file__))


def _demo(arg: str):
  import importlib.util
  spec = importlib.util.spec_from_file_location(
      "_lmdm_demo_config", os.path.join(_HERE, "demo.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)


def get_config(arg: str = ""):
  arg = (arg or "").strip()
  known = ("", "smoke", "jam", "smoke_jam")
  if arg not in known:
    raise ValueError(f"unknown sketch demo variant {arg!r}; known: {known}")
  c = _demo("smoke" if arg.startswith("smoke") else "")
  # Fine-tuning from the demo model: a shorter schedule at a lower rate.
  if not arg.startswith("smoke"):
    c.optim.update(lr=3e-4, warmup_steps=50, decay_steps=1500)
    c.train.update(steps=1500)
  return add_sketch(c, jam=arg.endswith("jam"))
