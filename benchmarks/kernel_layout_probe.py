"""Kernel layout probe: Flax's [in, out] Dense kernels vs torch's [out, in].

Times the SAO-Small BC later step (o + 1 = 49 query rows) and fused first
step with the stock layout, then with every Dense swapped for one that keeps
its kernel as [out, in] and contracts over its last axis (params transposed,
outputs equal to float32 round-off), at a given batch and query padding.

  python benchmarks/kernel_layout_probe.py BATCH MIN_QUERY_ROWS
  (measured: 1 64 and 1 0; see docs/efficiency.md)

Exploratory: the swap is a monkeypatch of `lmdm_jax.model.dit._dense`, not a
model option, because it did not beat the query padding already in use.
"""
import time, jax, jax.numpy as jnp, flax.linen as nn, numpy as np
from jax import lax
import lmdm_jax.model.dit as ditmod
from lmdm_jax.configs import dit_config, geometry, load_config
from lmdm_jax.model.init import init_params
from lmdm_jax.streaming import steps as st
from lmdm_jax.streaming.sampler import Stream
from lmdm_jax.streaming.state import StreamSpec, make_controls
import sys
B = int(sys.argv[1]); mqr = int(sys.argv[2])
cfg = load_config("configs/sao_small.py"); dit = dit_config(cfg); g = geometry(cfg, "bc")
params = init_params(dit, jax.random.PRNGKey(0), cfg.cond_tokens)
def med(f, *a, r=7):
    jax.block_until_ready(f(*a)); ts=[]
    for _ in range(r):
        t0=time.perf_counter(); jax.block_until_ready(f(*a)); ts.append(time.perf_counter()-t0)
    ts.sort(); return ts[len(ts)//2]
def run(params):
    spec = StreamSpec(dit, g, batch=B, cond_tokens=cfg.cond_tokens, steps=8, min_query_rows=mqr)
    c = make_controls(spec); ctx = jax.random.normal(jax.random.PRNGKey(1), (B, g.context, 64))
    s = Stream(spec).prime(params, ctx, c); x = jax.random.normal(jax.random.PRNGKey(2), (B, g.block, 64))
    later = jax.jit(lambda p, s, x: st.later_step(p, spec, s, x, 0.5)[1])
    first = jax.jit(lambda p, s, x: st.first_step(p, spec, s, x, 0.5)[1])
    return med(later, params, s, x), med(first, params, s, x), later(params, s, x)
a = run(params)
class DenseOI(nn.Module):
    features: int; use_bias: bool = False; dtype: object = jnp.float32; kinit: object = None
    @nn.compact
    def __call__(self, x):
        k = self.param("kernel", lambda key, shape: self.kinit(key, shape[::-1]).T, (self.features, x.shape[-1]))
        y = lax.dot_general(x.astype(self.dtype), k.astype(self.dtype), (((x.ndim-1,), (1,)), ((), ())))
        if self.use_bias:
            y = y + self.param("bias", nn.initializers.zeros, (self.features,)).astype(self.dtype)
        return y
ditmod._dense = lambda features, name, use_bias=False, init=ditmod.torch_linear_init, dtype=jnp.float32: DenseOI(features, use_bias, dtype, init, name=name)
pt = jax.tree_util.tree_map_with_path(lambda p, v: v.T if p[-1].key == "kernel" and v.ndim == 2 else v, params)
b = run(pt)
print(f"B={B} mqr={mqr} io: later {a[0]*1e3:.0f} first {a[1]*1e3:.0f} | oi: later {b[0]*1e3:.0f} first {b[1]*1e3:.0f} | maxdiff {float(jnp.max(jnp.abs(a[2]-b[2]))):.2e}", flush=True)
