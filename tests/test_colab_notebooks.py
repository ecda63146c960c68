"""The colab/ notebooks execute headlessly at tiny size.

Each runs in a fresh Jupyter kernel (nbclient) with LMDM_NOTEBOOK_TINY=1,
which every notebook's parameter cell reads: tiny models, seconds of audio,
a two-point study. The Colab clone cell is commented out and the install
cell is a no-op here because lmdm_jax is importable (PYTHONPATH). ipywidgets
is optional: without it the streaming notebook prints that it skips the
controls.
"""
import os
import time

import pytest

from xla_flags import KEEP_EVERY_COMPILE, with_devices

nbformat = pytest.importorskip(
    "nbformat", reason="the `test` extra installs nbformat")
nbclient = pytest.importorskip(
    "nbclient", reason="the `test` extra installs nbclient")
pytest.importorskip("ipykernel", reason="the `test` extra installs ipykernel")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Each notebook runs in its own kernel and shares nothing with the others:
# under xdist (conftest.py) they may run on different workers at once.
XDIST_SPLIT_TESTS = True


def run_notebook(name, monkeypatch):
  """Executes colab/<name>.ipynb; -> (notebook with outputs, seconds)."""
  monkeypatch.setenv("LMDM_NOTEBOOK_TINY", "1")
  monkeypatch.setenv("PYTHONPATH", REPO)
  monkeypatch.setenv("JAX_PLATFORMS", "cpu")
  monkeypatch.setenv("XLA_FLAGS", with_devices(0))    # one device
  # Like conftest's `cli_env`: every program the kernel and its `lmdm`
  # subprocesses compile goes to the run's persistent cache, and what the
  # CLI tests compiled for the same models (one device, the same flags) is
  # read back instead of compiled again.
  for var, value in KEEP_EVERY_COMPILE.items():
    monkeypatch.setenv(var, value)
  nb = nbformat.read(os.path.join(REPO, "colab", f"{name}.ipynb"),
                     as_version=4)
  client = nbclient.NotebookClient(
      nb, timeout=300, kernel_name="python3",
      resources={"metadata": {"path": REPO}})
  t0 = time.perf_counter()
  client.execute()
  return nb, time.perf_counter() - t0


def outputs(nb, key):
  """All outputs' `key` data (e.g. "text/html") and stream text, joined."""
  parts = []
  for cell in nb.cells:
    for out in cell.get("outputs", []):
      if out.get("output_type") == "stream":
        parts.append(out.get("text", ""))
      parts.append(str(out.get("data", {}).get(key, "")))
  return "\n".join(parts)


def test_notebooks_have_the_colab_cells():
  for name in ("streaming", "finetune", "efficiency", "sao_small"):
    nb = nbformat.read(os.path.join(REPO, "colab", f"{name}.ipynb"),
                       as_version=4)
    nbformat.validate(nb)
    src = [c.source for c in nb.cells]
    assert "# !git clone" in src[1] and "%pip install -q -e ." in src[2]
    assert "find_spec(\"lmdm_jax\") is None" in src[2]
    assert all(w in src[3] for w in ("GPU", "TPU", "Stable Audio Open"))
    assert "TINY = False" in src[4] and "LMDM_NOTEBOOK_TINY" in src[4]
    assert all(not c.get("outputs") for c in nb.cells
               if c.cell_type == "code"), f"{name}: clear outputs"


@pytest.mark.slow
def test_streaming_notebook(monkeypatch):
  nb, seconds = run_notebook("streaming", monkeypatch)
  assert outputs(nb, "text/html").count("<audio") >= 4
  text = outputs(nb, "text/plain")
  assert "underruns" in text and "model:" in text
  print(f"streaming.ipynb: {seconds:.1f} s")


@pytest.mark.slow
def test_finetune_notebook(monkeypatch):
  nb, seconds = run_notebook("finetune", monkeypatch)
  text = outputs(nb, "text/plain")
  assert "real_time_factor" in text and "finished at step 4" in text
  assert outputs(nb, "image/png").strip()               # the loss curve
  assert outputs(nb, "text/html").count("<audio") == 1
  print(f"finetune.ipynb: {seconds:.1f} s")


@pytest.mark.slow
def test_efficiency_notebook(monkeypatch):
  nb, seconds = run_notebook("efficiency", monkeypatch)
  pngs = [o for c in nb.cells for o in c.get("outputs", [])
          if "image/png" in o.get("data", {})]
  assert len(pngs) >= 4           # bench stream bars, study scatter, 2 PNGs
  assert "| bc |" in outputs(nb, "text/markdown")
  print(f"efficiency.ipynb: {seconds:.1f} s")


@pytest.mark.slow
def test_sao_small_notebook(monkeypatch):
  """fetch (offline toy hub) -> live with prompt changes between blocks ->
  data build with the package's VAE -> stage 1 with T5 captions ->
  export -> the fine-tuned package plays live."""
  pytest.importorskip("huggingface_hub")
  pytest.importorskip("sentencepiece")
  pytest.importorskip("safetensors")
  nb, seconds = run_notebook("sao_small", monkeypatch)
  text = outputs(nb, "text/plain")
  assert "offline toy hub" in text and "$ lmdm fetch sao-small" in text
  assert text.count("real-time factor") == 2          # base, fine-tuned
  assert "codec oobleck" in text
  assert outputs(nb, "text/html").count("<audio") == 2
  losses = [line for line in text.splitlines()
            if line.startswith("loss by step:")]
  assert losses and "(3, " in losses[-1], losses
  assert "exported from step 3" in text
  print(f"sao_small.ipynb: {seconds:.1f} s")
