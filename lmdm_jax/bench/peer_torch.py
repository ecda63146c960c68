"""The PyTorch side of `lmdm bench peer` (runs in a torch environment).

  PYTHON_WITH_TORCH lmdm_jax/bench/peer_torch.py SPEC.json OUT.json

Never imported by lmdm_jax (the project does not depend on torch): `lmdm
bench peer` runs it as a subprocess with the interpreter of an environment
that has torch and stable-audio-tools (`.ci/setup_refenv.sh` makes one).

SPEC.json: {"dit": stable-audio-tools DiffusionTransformer kwargs, "batch",
"context", "block", "cond_tokens", "steps", "repeats", "threads"}.

Measures stable-audio-tools' `DiffusionTransformer` (random weights: cost
does not depend on them) on the same window the JAX side uses:
  full_forward_s: one forward of the whole window [B, s + o] (equal work);
  outpaint_block_s: one block of the standard outpainting continuation:
    K forwards of the whole window, the known context re-noised to each
    step's level and the target advanced by an Euler step (equal task).
Times are medians of `repeats` after one warm-up, under torch.inference_mode.
"""
import json
import statistics
import sys
import time


def main(spec_path, out_path):
  import torch
  from stable_audio_tools.models.dit import DiffusionTransformer

  with open(spec_path) as f:
    spec = json.load(f)
  torch.set_num_threads(int(spec["threads"]))
  torch.manual_seed(0)
  dit = DiffusionTransformer(**spec["dit"]).eval()
  b, s, o = spec["batch"], spec["context"], spec["block"]
  io = spec["dit"]["io_channels"]
  cross = torch.randn(b, spec["cond_tokens"], spec["dit"]["cond_token_dim"])
  glob = torch.randn(b, spec["dit"]["global_cond_dim"])
  context = torch.randn(b, io, s)
  steps = int(spec["steps"])
  levels = torch.linspace(1.0, 0.0, steps + 1)

  def forward(x, t):
    return dit(x, t, cross_attn_cond=cross, global_embed=glob)

  def full_forward():
    return forward(torch.randn(b, io, s + o), torch.full((b,), 0.5))

  def outpaint_block():
    x = torch.randn(b, io, o)
    for i in range(steps):
      t, t_next = levels[i], levels[i + 1]
      ctx_t = (1 - t) * context + t * torch.randn_like(context)
      v = forward(torch.cat([ctx_t, x], -1), torch.full((b,), float(t)))
      x = x + (t_next - t) * v[..., s:]
    return x

  def median_time(fn):
    fn()
    ts = []
    for _ in range(int(spec["repeats"])):
      t0 = time.perf_counter()
      fn()
      ts.append(time.perf_counter() - t0)
    return statistics.median(ts), ts

  with torch.inference_mode():
    full, full_all = median_time(full_forward)
    block, block_all = median_time(outpaint_block)
  n_params = sum(p.numel() for p in dit.parameters())
  with open(out_path, "w") as f:
    json.dump({"torch": torch.__version__, "threads": torch.get_num_threads(),
               "params": n_params, "full_forward_s": full,
               "full_forward_all_s": full_all, "outpaint_block_s": block,
               "outpaint_block_all_s": block_all}, f, indent=2)


if __name__ == "__main__":
  main(sys.argv[1], sys.argv[2])
