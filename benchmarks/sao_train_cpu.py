"""Stage-1 costs at SAO-Small shape with T5 + seconds_total conditioning
(random weights): T5-base encode per caption batch vs the train step at a
small batch (where T5 goes: docs/training.md), and the data build's
Oobleck encode throughput (whole file and batched windows).
lmdm_jax/bench/sao_train.py does the work.

  PYTHONPATH=. python3 benchmarks/sao_train_cpu.py \
      --json benchmarks/results/sao_train_cpu.json [--parts t5,oobleck,step]
  (--parts t5,oobleck,step_flops: the step's FLOPs without timing it)
"""
import argparse
import json

from lmdm_jax.bench import sao_train


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--parts", default="t5,oobleck,step")
  p.add_argument("--batch", type=int, default=1,
                 help="train step batch (SAO-Small, one device)")
  p.add_argument("--t5-batch", type=int, default=8)
  p.add_argument("--tokens", type=int, default=64)
  p.add_argument("--steps", type=int, default=2)
  p.add_argument("--seconds", type=float, default=6.0,
                 help="audio encoded by the Oobleck part")
  p.add_argument("--json", default=None)
  a = p.parse_args()
  out = sao_train.run(tuple(a.parts.split(",")), a.batch, a.t5_batch,
                      a.tokens, a.steps, a.seconds)
  print(json.dumps(out, indent=2))
  if a.json:
    with open(a.json, "w") as f:
      json.dump(out, f, indent=2)


if __name__ == "__main__":
  main()
