"""ARC-Forcing pieces: rollout == inference stream, gradient truncation,
losses, discriminator shapes."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from helpers import random_controls, tiny_setup
from lmdm_jax.train.arc import losses
from lmdm_jax.train.arc.discriminator import Discriminator, DiscriminatorConfig
from lmdm_jax.train.arc.rollout import (dynamic_levels, last_step_output,
                                        rollout, sample_steps)
from lmdm_jax.diffusion import flow
from lmdm_jax.model.init import randomize
from lmdm_jax.streaming.sampler import Stream

K_MAX = 3


def _setup(tiny_cfg, mode):
  spec, params = tiny_setup(tiny_cfg, mode, batch=2, steps=K_MAX)
  ctx = jax.random.normal(jax.random.PRNGKey(4), (2, spec.geometry.context,
                                                  spec.model.io_channels))
  ctl = random_controls(spec, jax.random.PRNGKey(5), seed=3)
  return spec, params, ctx, ctl


def test_dynamic_levels_match_the_static_schedule():
  for k in range(1, 6):
    np.testing.assert_allclose(dynamic_levels(jnp.int32(k), 6)[:k + 1],
                               flow.logsnr_schedule(k), atol=1e-6)


@pytest.mark.parametrize("mode", ["bc", "ed"])
def test_rollout_with_fixed_steps_equals_the_inference_stream(tiny_cfg,
                                                              mode):
  spec, params, ctx, ctl = _setup(tiny_cfg, mode)
  blocks = 5
  out, _ = jax.jit(lambda p: rollout(p, spec, ctx, ctl, [K_MAX] * blocks,
                                     K_MAX))(params)
  stream = Stream(spec)
  state = stream.prime(params, ctx, ctl)
  stacked = jax.tree.map(lambda a: jnp.stack([a] * blocks), ctl)
  _, ref = stream.generate(params, state, stacked)
  np.testing.assert_allclose(out, ref, atol=2e-5, rtol=0)


def test_gradient_reaches_params_only_through_each_blocks_last_step(
    tiny_cfg):
  spec, params, ctx, ctl = _setup(tiny_cfg, "bc")
  steps = jnp.asarray([2, 1, 3, 2], jnp.int32)
  w = jax.random.normal(jax.random.PRNGKey(9), (2, 4 * spec.geometry.block,
                                                spec.model.io_channels))

  def loss(p, context):
    out, _ = rollout(p, spec, context, ctl, steps, K_MAX)
    return jnp.sum(out * w)

  g_params, g_ctx = jax.jit(jax.grad(loss, argnums=(0, 1)))(params, ctx)
  # Nothing flows back into the context: it only enters detached caches.
  assert float(jnp.abs(g_ctx).max()) == 0.0

  # The same gradient from the last steps alone, their inputs held fixed.
  _, _, last = jax.jit(lambda p: rollout(p, spec, ctx, ctl, steps, K_MAX,
                                         return_last_inputs=True))(params)
  o = spec.geometry.block

  def explicit(p):
    total = 0.0
    for b in range(len(steps)):
      inp = jax.tree.map(lambda a: a[b], last)
      x0 = last_step_output(p, spec, *inp)
      total += jnp.sum(x0 * w[:, b * o:(b + 1) * o])
    return total

  g_ref = jax.jit(jax.grad(explicit))(params)
  for a, b in zip(jax.tree.leaves(g_params), jax.tree.leaves(g_ref)):
    np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-4)
  assert max(float(jnp.abs(a).max()) for a in jax.tree.leaves(g_ref)) > 0


def test_sampled_steps_are_in_range():
  k = sample_steps(jax.random.PRNGKey(0), 1000, 2, 6)
  assert int(k.min()) == 2 and int(k.max()) == 6


def test_losses_against_hand_computed_values():
  real = jnp.asarray([[1.0, 0.0], [2.0, -1.0]])
  fake = jnp.asarray([[0.0, 0.0], [1.0, 1.0]])
  sp = lambda z: np.log1p(np.exp(z))
  np.testing.assert_allclose(losses.relativistic_d(real, fake),
                             np.mean(sp(np.asarray(fake - real))), rtol=1e-6)
  np.testing.assert_allclose(losses.relativistic_g(real, fake),
                             np.mean(sp(np.asarray(real - fake))), rtol=1e-6)
  np.testing.assert_allclose(
      losses.relativistic_g(real, fake),
      (sp(1) + sp(0) + sp(1) + sp(-2)) / 4, rtol=1e-6)
  wrong = jnp.asarray([[0.0, 0.0], [3.0, 3.0]])
  np.testing.assert_allclose(losses.contrastive_d(real, wrong),
                             (sp(-1) + sp(0) + sp(1) + sp(4)) / 4, rtol=1e-6)
  assert float(losses.contrastive_accuracy(real, wrong)) == 0.5
  np.testing.assert_array_equal(losses.permute_prompts(jnp.arange(3)),
                                [2, 0, 1])


def test_discriminator_scores_rollout_frames(tiny_cfg):
  from lmdm_jax.configs import dit_config
  base = dataclasses.replace(dit_config(tiny_cfg), input_add_dim=0)
  cfg = DiscriminatorConfig(backbone=base, exit_layer=0, channels=16)
  d = Discriminator(cfg)
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 28, base.io_channels))
  cross = jnp.zeros((2, 5, base.cond_token_dim))
  glob = jnp.zeros((2, base.global_cond_dim))
  p = d.init(jax.random.PRNGKey(1), x, jnp.ones(2) * .5, cross, glob, 12)
  p = randomize(p, jax.random.PRNGKey(2))    # zero-init layers mix nothing
  logits = d.apply(p, x, jnp.ones(2) * .5, cross, glob, 12)
  assert logits.shape == (2, 4)
  # Context frames change the rollout's scores (bidirectional backbone).
  x2 = x.at[:, :12].add(1.0)
  assert not np.allclose(d.apply(p, x2, jnp.ones(2) * .5, cross, glob, 12),
                         logits)
  with pytest.raises(ValueError, match="input_add_dim"):
    DiscriminatorConfig(backbone=dit_config(tiny_cfg), exit_layer=0)
