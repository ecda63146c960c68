"""The package's import graph: no circle, and every module imports first.

A circle between modules (issue 17: train/state -> arc/train -> train/loop
-> train/state) works only while some import sits inside a function, and
breaks as soon as one of them is imported first from the wrong end. The
graph here includes imports inside functions, so a lazy import does not
hide a circle.
"""
from __future__ import annotations

import ast
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, "lmdm_jax")


def _modules():
  """{dotted name: path} of every module of lmdm_jax."""
  mods = {}
  for d, _, files in os.walk(PACKAGE):
    for f in files:
      if f.endswith(".py"):
        p = os.path.join(d, f)
        name = os.path.relpath(p, ROOT)[:-3].replace(os.sep, ".")
        mods[name[:-len(".__init__")] if name.endswith(".__init__")
             else name] = p
  return mods


def import_graph():
  """{module: set of lmdm_jax modules it imports anywhere in its body}.
  `from pkg import sub` is an edge to pkg.sub when sub is a module."""
  mods = _modules()
  graph = {}
  for name, path in mods.items():
    with open(path) as f:
      tree = ast.parse(f.read(), path)
    deps = set()
    for node in ast.walk(tree):
      if isinstance(node, ast.Import):
        deps.update(a.name for a in node.names)
      elif isinstance(node, ast.ImportFrom) and node.module and \
          not node.level:
        subs = [f"{node.module}.{a.name}" for a in node.names]
        found = [s for s in subs if s in mods]
        deps.update(found)
        if len(found) < len(subs):
          deps.add(node.module)
    graph[name] = {d for d in deps if d in mods and d != name}
  return graph


def cycles(graph):
  """Strongly connected components with more than one module (Tarjan)."""
  index, low, stack, on, out = {}, {}, [], set(), []
  counter = [0]

  def visit(v):
    index[v] = low[v] = counter[0]
    counter[0] += 1
    stack.append(v)
    on.add(v)
    for w in graph[v]:
      if w not in index:
        visit(w)
        low[v] = min(low[v], low[w])
      elif w in on:
        low[v] = min(low[v], index[w])
    if low[v] == index[v]:
      comp = []
      while True:
        w = stack.pop()
        on.discard(w)
        comp.append(w)
        if w == v:
          break
      if len(comp) > 1:
        out.append(sorted(comp))

  sys.setrecursionlimit(max(sys.getrecursionlimit(), 10000))
  for v in sorted(graph):
    if v not in index:
      visit(v)
  return out


def test_cycle_finder_finds_a_circle():
  assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [
      ["a", "b", "c"]]
  assert cycles({"a": {"b"}, "b": set()}) == []


def test_import_graph_is_acyclic():
  graph = import_graph()
  assert "lmdm_jax.train.objective" in graph
  assert "lmdm_jax.train.loop" in graph["lmdm_jax.train.objective"]
  assert cycles(graph) == []


def test_training_modules_do_not_import_the_objective_table():
  """objective.py sits on top of the training package: it imports the
  trainers and specs, they never import it."""
  graph = import_graph()
  users = sorted(m for m, deps in graph.items()
                 if "lmdm_jax.train.objective" in deps)
  assert all(not m.startswith("lmdm_jax.train.") or
             m in ("lmdm_jax.train.cli", "lmdm_jax.train.export")
             for m in users), users


@pytest.mark.parametrize("order", ["sorted", "reversed", "training_first"])
def test_every_module_imports_in_a_fresh_interpreter(order):
  names = sorted(_modules())
  if order == "reversed":
    names = names[::-1]
  elif order == "training_first":
    first = ["lmdm_jax.train.state", "lmdm_jax.train.arc.train",
             "lmdm_jax.train.loop", "lmdm_jax.train.parallel"]
    names = first + [n for n in names[::-1] if n not in first]
  code = ("import importlib, sys\n"
          "for n in sys.argv[1:]:\n"
          "  importlib.import_module(n)\n")
  env = dict(os.environ, JAX_PLATFORMS="cpu",
             PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
  r = subprocess.run([sys.executable, "-c", code] + names, cwd=ROOT, env=env,
                     capture_output=True, text=True, timeout=300)
  assert r.returncode == 0, r.stderr[-3000:]


def test_pure_core_imports_no_host_code():
  """model/ -> nothing of ours; diffusion/ -> nothing; streaming/ -> model/
  and diffusion/ only (docs/architecture.md)."""
  graph = import_graph()
  allowed = {"lmdm_jax.model": (), "lmdm_jax.diffusion": (),
             "lmdm_jax.streaming": ("lmdm_jax.model.", "lmdm_jax.diffusion.")}
  for pkg, ok in allowed.items():
    outside = sorted(
        d for m, deps in graph.items() if m == pkg or m.startswith(pkg + ".")
        for d in deps if not d.startswith(pkg) and not d.startswith(tuple(ok)))
    assert not outside, (pkg, outside)


def test_package_and_benchmarks_do_not_import_the_tests():
  """What users run (lmdm_jax/, benchmarks/) stands without tests/: a
  helper both need lives in the package (e.g. convert/random_hub.py)."""
  found = []
  for top in ("lmdm_jax", "benchmarks"):
    for d, _, files in os.walk(os.path.join(ROOT, top)):
      for f in files:
        if not f.endswith(".py"):
          continue
        p = os.path.join(d, f)
        with open(p) as fh:
          tree = ast.parse(fh.read(), p)
        for node in ast.walk(tree):
          names = ([a.name for a in node.names]
                   if isinstance(node, ast.Import) else
                   [node.module or ""] if isinstance(node, ast.ImportFrom)
                   else [])
          found += [(os.path.relpath(p, ROOT), n) for n in names
                    if n == "tests" or n.startswith(("tests.", "sao_fixture",
                                                     "helpers"))]
  assert not found, found
