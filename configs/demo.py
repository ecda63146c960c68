"""The embedded demo LMDM: small BC model, semitone codec, hashed-word text.

Trained on this machine (2 CPU cores) on the offline demo dataset; its
checkpoint ships in lmdm_jax/assets/demo/ and is what `lmdm generate` plays
with no flag. The exact recipe (also in docs/demo-model.md):

  apt-get install -y fluidsynth timgm6mb-soundfont fluid-soundfont-gm \
      wesnoth-1.16-music
  pip install -e ".[data,demo]"
  lmdm data demo --out DEMO
  lmdm data build --audio-dir DEMO/audio/train --codec semitone \
      --codec-kwargs '{"sub_pitch": true, "sub_share": 0.7}' \
      --out DEMO/tfds_semitone_sub --min-frames 120
  lmdm train --config configs/demo.py:semitone_sub --workdir W \
      --config.data.dir=DEMO/tfds_semitone_sub
  lmdm export --config configs/demo.py:semitone_sub --workdir W \
      --data-dir DEMO/tfds_semitone_sub --out lmdm_jax/assets/demo --cfg 1.5 \
      --steps 8
  (then the block level profile: launch/train_demo.sh)
  # the onset layout, from that model (the shipped one since 2026-12-03):
  lmdm data build --audio-dir DEMO/audio/train --codec semitone \
      --codec-kwargs '{"sub_pitch": true, "sub_share": 0.7, "onset_channel": true}' \
      --out DEMO/tfds_semitone_onset --min-frames 120
  lmdm train --config configs/demo.py:semitone_onset --workdir W2 \
      --config.data.dir=DEMO/tfds_semitone_onset \
      --config.init.params=lmdm_jax/assets/demo
  lmdm export --config configs/demo.py:semitone_onset --workdir W2 \
      --data-dir DEMO/tfds_semitone_onset --out lmdm_jax/assets/demo \
      --cfg 1.5 --steps 8
  (and its block level profile)

(`bash launch/train_demo.sh DEMO W semitone_sub` then `bash
launch/train_demo.sh DEMO W2 semitone_onset` run it all.) The shipped demo
model (since 2026-12-03, 19th session) is on `semitone`'s onset layout
(`:semitone_onset`, fine-tuned from the sub-pitch model of 2026-12-02);
this file's default variant stays plain `semitone`, the notebooks' smoke
runs' layout. The codec is `semitone`
(issue 19, docs/codecs_and_import.md: it keeps the notes, decodes block by
block with no seam, cannot go anti-phase); "mel" is the previous demo
model's codec (log-mel + Griffin-Lim, shipped until 2026-12-01; the
sketch and jam models' until 2026-12-02): `configs/demo.py:mel` with
`--codec mel` in the build (`bash launch/train_demo.sh DEMO W mel`).

Choices for this size, against the paper's text models (s=192, o=48, W=4,
SAO-Small width 1024 x 16 layers):
  - geometry s=96, o=24, W=4 (4.5 s context, 1.1 s blocks): the same
    chunk/window structure at half the frames, so a CPU training step costs
    half as much and blocks arrive twice as often live;
  - width 192, depth 6, 3 heads of 64 (head dim and the SAO rotary rule as
    in SAO-Small), 4.6M parameters, 18 MB in float32: sized so a training
    step of 12 windows takes ~2 s on 2 CPU cores (width 256 x 8 layers
    measured 6-17 s here, too slow to train in the time available);
  - text: `hashed_words` (lmdm_jax/text/hashed.py): fixed hashed vectors
    per caption word, 24 tokens of width 64, learnt through the DiT's cond
    projection; global conditioning off (no seconds_total: the stream is
    endless);
  - AdamW lr 1e-3 with warmup and cosine decay, batch 12, EMA 0.998: a
    from-scratch model rather than the paper's fine-tune (there is no
    small pretrained base to start from offline).
"""
import os

from lmdm_jax.codecs.semitone import ONSET_LAYOUT, SUB_PITCH_LAYOUT
from lmdm_jax.configs import load_config

HERE = os.path.dirname(os.path.abspath(__file__))


# Weights-free codecs a demo can train on, as (codec, keyword arguments);
# the first is the default. "semitone_sub": semitone's sub-pitch layout
# (codecs/semitone.py SUB_PITCH_LAYOUT: the strongest semitone under C2 in
# place of one of the four pan regions); "semitone_onset": that plus an
# onset channel in place of a second pan region (ONSET_LAYOUT: the
# decoder steps at the marked onsets; docs/codecs_and_import.md).
CODECS = {"semitone": ("semitone", {}),
          "semitone_sub": ("semitone", dict(SUB_PITCH_LAYOUT)),
          "semitone_onset": ("semitone", dict(ONSET_LAYOUT)),
          "mel": ("mel", {})}


def get_config(arg: str = ""):
  """arg: comma-separated variants: "smoke" (seconds-long run) and/or a
  codec variant of CODECS (default "semitone"; the shipped demo model is
  "semitone_sub"), e.g. "mel" or "smoke,mel"."""
  parts = [p for p in arg.split(",") if p]
  bad = [p for p in parts if p != "smoke" and p not in CODECS]
  codecs = [p for p in parts if p in CODECS]
  if bad or len(codecs) > 1:
    raise ValueError(f"unknown demo variant {arg!r}; known: '', 'smoke', "
                     f"one codec of {tuple(CODECS)}, comma-separated")
  variant = codecs[0] if codecs else next(iter(CODECS))
  codec, kwargs = CODECS[variant]
  c = load_config(os.path.join(HERE, "finetune.py:bc"))
  c.model.update(io_channels=64, embed_dim=192, depth=6, num_heads=3,
                 cond_token_dim=64, project_cond_tokens=True,
                 global_cond_dim=0, input_add_dim=65, postpend=True,
                 timestep_features_dim=128)
  c.geometry.update(context=96, block=24, window_chunks=4)
  c.cond_tokens = 24
  c.text = dict(encoder="hashed_words")
  c.codec = dict(name=codec, kwargs=dict(kwargs))
  c.loss.update(max_partial_chunks=4)
  c.optim.update(lr=1e-3, b2=0.99, weight_decay=0.01, clip_norm=1.0,
                 warmup_steps=100, decay="cosine", decay_steps=3000,
                 final_ratio=0.05)
  c.train.update(steps=3000, batch_size=12, ema_decay=0.998, log_every=25)
  c.ckpt.update(every_steps=100, keep=2)
  c.samples.update(every_steps=0, blocks=4, steps=8, codec=codec)
  c.data.update(source="tfds", name="lmdm_latents")
  if variant == "semitone_onset":
    # The shipped demo model (2026-12-03): a fine-tune of the sub-pitch
    # model (--config.init.params=<that package>; its value channels and
    # sub pitch are this layout's) on the onset layout's build.
    c.optim.update(lr=5e-4, warmup_steps=50, decay_steps=1500)
    c.train.update(steps=1500)
  if "smoke" in parts:                   # seconds: tests and dry runs
    c.model.update(embed_dim=64, depth=2, num_heads=1,
                   timestep_features_dim=32)
    c.train.update(steps=4, batch_size=4, log_every=1)
    c.optim.update(warmup_steps=1, decay_steps=4)
    c.ckpt.update(every_steps=2)
  return c
