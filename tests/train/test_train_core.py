"""Fine-tuning core: objective, samplers, optimizer, data parallelism."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lmdm_jax.model.init import init_params, randomize
from lmdm_jax.train import finetune, parallel, timesteps
from lmdm_jax.train import state as train_state
from lmdm_jax.train.loop import check_config
from train_helpers import random_batch, tiny_finetune


def _spec(cfg, **kw):
  spec = finetune.FinetuneSpec.from_config(cfg)
  return finetune.FinetuneSpec(**{**spec.__dict__, **kw})


def _random_params(spec, cfg, seed=0):
  return randomize(init_params(spec.model, jax.random.PRNGKey(seed),
                               cfg.cond_tokens), jax.random.PRNGKey(seed + 1))


@pytest.mark.parametrize("mode", ["bc", "ed"])
def test_eight_devices_equal_one_device(mode):
  """3 AdamW steps on one global batch of 16: 8 devices (no accumulation)
  and 1 device (2 accumulated microbatches) give the same parameters; the
  EMA follows decay * ema + (1 - decay) * params."""
  cfg = tiny_finetune(mode)
  cfg.optim.warmup_steps = 1
  cfg.optim.clip_norm = 1.0
  # q/k-norm biases of the keys get exactly zero gradient in exact
  # arithmetic on their unrotated half (softmax ignores a shift shared by all
  # keys), so their float gradients are summation-order noise (~1e-9) that
  # Adam's first steps with eps 1e-8 normalise to +-lr. eps 1e-6 keeps
  # noise-level gradients at noise-level updates; all else is unchanged.
  cfg.optim.eps = 1e-6
  spec = finetune.FinetuneSpec.from_config(cfg)
  tx = train_state.make_optimizer(cfg.optim)
  batch = random_batch(cfg, 16)
  finals, losses = {}, {}
  cfg.train.ema_decay = 0.9
  emas = {}
  for n, accum in ((1, 2), (8, 1)):
    mesh = parallel.make_mesh(jax.devices()[:n])
    state = train_state.init_state(cfg, tx)
    p0 = _random_params(spec, cfg)
    state = parallel.put_replicated(
        state.replace(params=p0, opt_state=tx.init(p0), ema_params=p0), mesh)
    step = parallel.make_train_step(spec, tx, mesh, accum, ema_decay=0.9)
    losses[n], emas[n] = [], jax.device_get(p0)
    for _ in range(3):
      state, metrics = step(state, parallel.put_batch(batch, mesh))
      losses[n].append(float(metrics["loss"]))
      emas[n] = jax.tree.map(lambda e, p: 0.9 * e + 0.1 * p, emas[n],
                             jax.device_get(state.params))
    finals[n] = jax.device_get(state.params)
    for w, e in zip(jax.tree.leaves(emas[n]),
                    jax.tree.leaves(jax.device_get(state.ema_params))):
      np.testing.assert_allclose(e, w, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(losses[1], losses[8], rtol=1e-5)
  diff = jax.tree.map(lambda a, b: np.max(np.abs(a - b)), finals[1],
                      finals[8])
  assert max(jax.tree.leaves(diff)) <= 1e-5
  moved = jax.tree.map(lambda a, b: np.max(np.abs(a - b)), finals[1],
                       jax.device_get(_random_params(spec, cfg)))
  assert max(jax.tree.leaves(moved)) > 1e-4    # the steps did something


def test_loss_only_sees_target_frames():
  """Context frames' noise and velocity targets never reach the loss; their
  clean latents do, but only through the input-add condition."""
  cfg = tiny_finetune("bc")
  spec = _spec(cfg, p_uncond=0.0, p_partial=0.0, cfg_dropout=0.0,
               input_add_dropout=0.0)
  params = _random_params(spec, cfg)
  batch = {k: jnp.asarray(v) for k, v in random_batch(cfg, 3).items()}
  keys = jax.random.split(jax.random.PRNGKey(0), 3)
  d = jax.vmap(lambda k: finetune.draw(spec, k))(keys)
  s = spec.geometry.context

  def loss(eps, latents, add):
    dd = {**d, "eps": eps, "input_add": add}
    return finetune.window_loss(params, spec, {**batch, "latents": latents},
                                dd).sum()

  grad = jax.jit(jax.grad(loss, argnums=(0, 1)))     # one compile
  g_eps, g_lat = grad(d["eps"], batch["latents"], d["input_add"])
  assert np.all(np.asarray(g_eps[:, :s]) == 0.0)       # context noise
  assert np.abs(np.asarray(g_eps[:, s:])).min() > 0.0  # target noise
  assert np.abs(np.asarray(g_lat[:, :s])).max() > 1e-6  # conditioning
  # Without the input-add condition the context has no path to the loss.
  _, g_lat0 = grad(d["eps"], batch["latents"], jnp.zeros_like(d["input_add"]))
  assert np.all(np.asarray(g_lat0[:, :s]) == 0.0)
  # The per-frame MSE ignores context frames' predictions and targets.
  v = jax.random.normal(jax.random.PRNGKey(1), (2, spec.geometry.window, 8))
  w = v.at[:, :s].add(100.0)
  np.testing.assert_array_equal(finetune.target_mse(v, v * 0, s),
                                finetune.target_mse(w, v * 0, s))


def test_outpainting_and_cfg_dropout_rates():
  cfg = tiny_finetune("bc")
  cfg.geometry.update(context=16, block=2, window_chunks=3)
  spec = _spec(cfg, max_partial_chunks=4)
  keys = jax.random.split(jax.random.PRNGKey(3), 20000)
  d = jax.jit(jax.vmap(lambda k: finetune.draw(spec, k)))(keys)
  keep = np.asarray(d["keep"])
  whole = (keep == 0).all(1)
  partial = ~whole & (keep == 0).any(1)
  assert abs(whole.mean() - 0.2) < 0.015
  assert abs(partial.mean() - 0.3) < 0.015
  zeroed = (keep[partial] == 0).sum(1) // 2            # chunks of 2 frames
  assert set(np.unique(zeroed)) == {1, 2, 3, 4}
  # Zeroing is in place and takes the oldest chunks: a zero prefix.
  first_kept = np.argmax(keep[partial] == 1, axis=1)
  assert np.array_equal(first_kept, zeroed * 2)
  assert abs(1 - np.asarray(d["text"]).mean() - 0.1) < 0.01
  assert abs(1 - np.asarray(d["input_add"]).mean() - 0.1) < 0.01
  both = (1 - np.asarray(d["text"])) * (1 - np.asarray(d["input_add"]))
  assert abs(both.mean() - 0.01) < 0.004               # independent
  t = np.asarray(d["t"])
  assert t.min() > 0 and t.max() < 1


@pytest.mark.parametrize("name", timesteps.SAMPLERS)
def test_timestep_samplers(name):
  t = np.asarray(timesteps.sample(jax.random.PRNGKey(0), 4096, name))
  assert t.shape == (4096,) and 0 < t.min() and t.max() < 1
  if name == "uniform":
    assert abs(t.mean() - 0.5) < 0.02
  if name == "logsnr_uniform":        # lambda in [-6, 2] -> t in [.12, 1)
    assert t.min() >= 1 / (1 + np.exp(2.0)) - 1e-6


def test_time_shift():
  assert timesteps.shift_mu(256) == pytest.approx(0.5)
  assert timesteps.shift_mu(4096) == pytest.approx(1.15)
  t = jnp.linspace(0.01, 0.99, 50)
  s = np.asarray(timesteps.shift(t, 240))
  assert np.all(np.diff(s) > 0) and np.all(s > np.asarray(t))
  with pytest.raises(ValueError, match="unknown timestep sampler"):
    timesteps.sample(jax.random.PRNGKey(0), 2, "cosine")


def test_init_from_params_checkpoint_keeps_fresh_input_add_layer(tmp_path):
  """Starting from an SAO-like params checkpoint (no input-add layer): every
  saved leaf is loaded, the new layer keeps torch's default Linear init."""
  import orbax.checkpoint as ocp
  cfg = tiny_finetune("bc")
  spec = finetune.FinetuneSpec.from_config(cfg)
  fresh = init_params(spec.model, jax.random.PRNGKey(0), cfg.cond_tokens)
  loaded = jax.tree.map(lambda x: x + 1.0, dict(fresh))
  del loaded["to_input_add_embed"]                 # an SAO checkpoint
  path = str(tmp_path / "sao_params")
  ckptr = ocp.StandardCheckpointer()
  ckptr.save(path, loaded)
  ckptr.wait_until_finished()
  cfg.init.params = path
  logs = []
  state = train_state.init_state(cfg, train_state.make_optimizer(cfg.optim),
                                 log=logs.append)
  params = jax.device_get(state.params)
  assert any("to_input_add_embed" in m for m in logs)
  np.testing.assert_array_equal(params["transformer"]["project_in"]["kernel"],
                                fresh["transformer"]["project_in"]["kernel"]
                                + 1.0)
  # torch Linear default init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
  k = np.asarray(params["to_input_add_embed"]["kernel"])
  assert 0 < np.abs(k).max() <= 1 / np.sqrt(k.shape[0])
  assert np.abs(k).max() > 0.9 / np.sqrt(k.shape[0])
  bad = dict(loaded, preprocess_conv={"kernel": np.zeros((3, 3))})
  with pytest.raises(ValueError, match="preprocess_conv"):
    train_state.merge_params(fresh, bad)
  with pytest.raises(ValueError, match="lacks"):
    train_state.merge_params(fresh, dict(loaded, extra={"w": np.zeros(2)}))


def test_argument_validation():
  cfg = tiny_finetune("bc")
  with pytest.raises(ValueError, match="p_uncond \\+ p_partial"):
    _spec(cfg, p_uncond=0.8, p_partial=0.3)
  with pytest.raises(ValueError, match="max_partial_chunks"):
    _spec(cfg, max_partial_chunks=9)
  cfg.train.batch_size = 12
  with pytest.raises(ValueError, match="multiple of devices x accum_steps"):
    check_config(cfg, 8)
  cfg.optim.decay = "linear"
  with pytest.raises(ValueError, match="optim.decay"):
    train_state.make_optimizer(cfg.optim)


def test_bf16_compute_keeps_f32_master_weights():
  """bfloat16 compute: the loss is finite and the gradients (what AdamW and
  the float32 master weights receive) are float32."""
  cfg = tiny_finetune("bc")
  cfg.model.dtype = "bfloat16"
  spec = finetune.FinetuneSpec.from_config(cfg)
  params = init_params(spec.model, jax.random.PRNGKey(0), cfg.cond_tokens)
  batch = {k: jnp.asarray(v) for k, v in random_batch(cfg, 2).items()}
  keys = jax.random.split(jax.random.PRNGKey(1), 2)
  loss, grads = jax.jit(jax.value_and_grad(
      lambda p: finetune.loss_fn(p, spec, batch, keys)[0]))(params)
  assert np.isfinite(float(loss))
  assert {g.dtype for g in jax.tree.leaves(grads)} == {jnp.dtype(jnp.float32)}
  assert {p.dtype for p in jax.tree.leaves(params)} == {jnp.dtype(jnp.float32)}
