"""A demo-size sketch-controlled LMDM (issue 7): configs/demo.py + controls.

The demo model's recipe (BC, s=96 / o=24 / W=4, width 192 x 6 layers,
hashed-word text; codec `semitone` by default, see below) with sketch
controls added through the input-add path: loudness, brightness, pitch and
the 84-bin top-4 CQT melody (lmdm_jax/model/control_inputs.py,
docs/control.md), per-control dropout 0.5 and random median filtering (p
0.5, kernels 3..9 frames). It starts from the shipped demo package
(`init.params`): the new control projections are zero-initialised, so step
0 plays exactly like the demo model. Variant "jam" adds the partner's
latents, with the visibility t_f drawn per example from {-43, 0, +24}
frames (-2 s, 0, +1.1 s = the whole block: the most a 1.1 s block can see
ahead), so one model streams at any of them; its data holds mix records
(sketch controls) and accompaniment records (partner) from `lmdm data build
--stems`. The shipped sketch and jam models (lmdm_jax/assets/{sketch,jam},
since 2026-12-03) are on semitone's onset layout: "jam,semitone_onset",
a 1500-step layout fine-tune of each sub-pitch model on the onset layout's
build of its own data (as the demo model's: configs/demo.py). The
sub-pitch sketch model was "jam,semitone_sub" on all groups in two
2000-step cycles from the sub-pitch demo model (one cycle followed its
melody control less: docs/control.md), the sub-pitch jam model
"jam,semitone_sub" on the chorales with every part, from that sketch
model. "smoke"/"smoke_jam" are seconds-long runs for tests.

The onset-layout models (the sub-pitch packages: `git archive eb6fb57
lmdm_jax/assets/sketch lmdm_jax/assets/jam | tar -x -C /tmp`):

  KW='{"sub_pitch": true, "sub_share": 0.7, "onset_channel": true}'
  lmdm data build --audio-dir JAM/audio/train --codec semitone \
      --codec-kwargs "$KW" --out JAMO/tfds \
      --controls loudness,brightness,pitch,cqt_topk --pitch-method yin \
      --stems --parts-per-file 1 --workers 2
  lmdm data build --audio-dir JAM/audio/train/bach_chorales \
      --codec semitone --codec-kwargs "$KW" --out JAMCO/tfds \
      --controls loudness,brightness,pitch,cqt_topk --pitch-method yin --stems
  lmdm train --config configs/sketch_demo.py:jam,semitone_onset --workdir W3 \
      --config.data.dir=JAMO/tfds --config.init.params=/tmp/lmdm_jax/assets/sketch
  lmdm export --config configs/sketch_demo.py:jam,semitone_onset --workdir W3 \
      --data-dir JAMO/tfds --out lmdm_jax/assets/sketch --cfg 3 --steps 8
  lmdm train --config configs/sketch_demo.py:jam,semitone_onset --workdir W4 \
      --config.data.dir=JAMCO/tfds --config.init.params=/tmp/lmdm_jax/assets/jam
  lmdm export --config configs/sketch_demo.py:jam,semitone_onset --workdir W4 \
      --data-dir JAMCO/tfds --out lmdm_jax/assets/jam --cfg 3 --steps 8

The sub-pitch models (from the sub-pitch demo model):

  lmdm data demo --out JAM --stems --no-wesnoth
  lmdm data build --audio-dir JAM/audio/train --codec semitone \
      --codec-kwargs '{"sub_pitch": true, "sub_share": 0.7}' \
      --out JAM/tfds --controls loudness,brightness,pitch,cqt_topk \
      --pitch-method yin --stems --parts-per-file 1 --workers 2
  git archive 179abef lmdm_jax/assets/demo | tar -x -C /tmp
  # (the sub-pitch demo model: the shipped demo is on the onset layout
  #  since 2026-12-03)
  lmdm train --config configs/sketch_demo.py:jam,semitone_sub --workdir W1 \
      --config.data.dir=JAM/tfds --config.init.params=/tmp/lmdm_jax/assets/demo
  lmdm export --config configs/sketch_demo.py:jam,semitone_sub --workdir W1 \
      --data-dir JAM/tfds --out P1 --cfg 3 --steps 8
  # the second cycle: the same config from P1, exported as the sketch model
  lmdm train --config configs/sketch_demo.py:jam,semitone_sub --workdir W2 \
      --config.data.dir=JAM/tfds --config.init.params=P1
  lmdm export --config configs/sketch_demo.py:jam,semitone_sub --workdir W2 \
      --data-dir JAM/tfds --out lmdm_jax/assets/sketch --cfg 3 --steps 8

Until 2026-12-02 (18th session) the sketch and jam models were on the
plain layout ("jam", one cycle from the plain-layout demo model: `git
archive 8073bc0 lmdm_jax/assets/demo | tar -x -C /tmp` gives
/tmp/lmdm_jax/assets/demo, and a build without --codec-kwargs).

",mel" trains on the `mel` codec (the sketch and jam models shipped until
2026-12-02), from the *mel* demo model (`git archive 983dc84
lmdm_jax/assets/demo | tar -x -C /tmp` gives /tmp/lmdm_jax/assets/demo)
and `--codec mel` data: `lmdm train` refuses a dataset whose codec is not
its init package's.
"""
import os

from lmdm_jax.configs import load_config, load_module

HERE = os.path.dirname(os.path.abspath(__file__))
add_sketch = load_module(os.path.join(HERE, "finetune_sketch.py")).add_sketch
_CODECS = load_module(os.path.join(HERE, "demo.py")).CODECS


def _demo(arg: str):
  return load_config(os.path.join(HERE, "demo.py:" + arg) if arg else
                     os.path.join(HERE, "demo.py"))


def get_config(arg: str = ""):
  """arg: a variant of `known`, optionally with ",CODEC" (a codec of
  configs/demo.py's CODECS, default semitone: the shipped sketch and jam
  models' codec), e.g. "jam" or "jam,mel"."""
  parts = [p.strip() for p in (arg or "").split(",") if p.strip()]
  codecs = [p for p in parts if p in _CODECS]
  rest = [p for p in parts if p not in _CODECS]
  arg = rest[0] if len(rest) == 1 else ""
  known = ("", "smoke", "jam", "smoke_jam")
  if len(rest) > 1 or arg not in known or len(codecs) > 1:
    raise ValueError(f"unknown sketch demo variant {','.join(parts)!r}; "
                     f"known: {known}, optionally ',' + one of {_CODECS}")
  c = _demo(",".join((["smoke"] if arg.startswith("smoke") else [])
                     + (codecs or ["semitone"])))
  # Fine-tuning from the demo model. 1e-3 (the demo's own peak rate): at
  # 3e-4 the zero-initialised control projections had not moved the
  # outputs after 400 steps (docs/control.md, first training run).
  jam = arg.endswith("jam")
  if not arg.startswith("smoke") and codecs != ["semitone_onset"]:
    # 2000 steps: both sub-pitch models (30 and 32 min on the 2-core VM).
    c.optim.update(lr=1e-3, warmup_steps=50, decay_steps=2000)
    c.train.update(steps=2000)
  # ",semitone_onset" keeps configs/demo.py's layout fine-tune (1500 steps
  # at 5e-4): the onset-layout sketch and jam models are each their
  # sub-pitch predecessor fine-tuned on the onset layout's build of its
  # own data, as the demo model is.
  c = add_sketch(c, jam=jam,
                 partner_visibilities=(-43, 0, 24) if jam and
                 not arg.startswith("smoke") else ())
  if jam and not arg.startswith("smoke"):
    # The partner is given in ~2/3 of examples (3/4 of the records are
    # accompaniment records, dropout 0.1): at dropout 0.5 on data with a
    # partner in 2 of 5 records (--parts-per-file 1) it stayed unused
    # (docs/control.md, "Jamming").
    c.loss.partner_dropout = 0.1
  return c
