"""Periodic audio samples during training: a short stream from the current
(EMA if present) parameters, decoded with the run's codec, as WAV.

  workdir/samples/step_<N>.wav   `samples.blocks` blocks, streamed in the
                                 run's geometry from a silent (zero) context
                                 with `samples.steps` ping-pong steps

Conditioning is the null prompt (zeros) until the text encoder is wired in.
"""
from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np

from lmdm_jax.codecs import get_codec
from lmdm_jax.model.config import DiTConfig, Geometry
from lmdm_jax.live.player import write_wav
from lmdm_jax.live.session import stream_for
from lmdm_jax.streaming.state import StreamSpec, make_controls


def write_sample(params, cfg, workdir: str, step: int) -> str:
  s = cfg.samples
  dit = DiTConfig.from_dict(cfg.model.to_dict())
  spec = StreamSpec(dit, Geometry.from_dict(cfg.geometry.to_dict()),
                    batch=1, cond_tokens=int(cfg.cond_tokens),
                    steps=int(s.steps))
  codec = get_codec(str(s.codec), latent_channels=dit.io_channels) if (
      str(s.codec) == "pool") else get_codec(str(s.codec))
  if codec.latent_channels != dit.io_channels:
    raise ValueError(f"samples.codec {s.codec} has {codec.latent_channels} "
                     f"latent channels; the model has {dit.io_channels}")
  stream = stream_for(spec)
  controls = make_controls(spec, seed=int(cfg.seed))
  context = jnp.zeros((1, spec.geometry.context, dit.io_channels))
  state = stream.prime(params, context, controls)
  stacked = jax.tree.map(lambda a: jnp.stack([a] * int(s.blocks)), controls)
  _, latents = stream.generate(params, state, stacked)
  audio = codec.decode(np.asarray(latents[0]))
  peak = float(np.abs(audio).max())
  if peak > 1.0:
    audio = audio / peak
  os.makedirs(os.path.join(workdir, "samples"), exist_ok=True)
  path = os.path.join(workdir, "samples", f"step_{step}.wav")
  write_wav(path, audio, codec.sample_rate)
  return path
