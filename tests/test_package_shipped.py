"""The shipped model packages (lmdm_jax/assets/{demo,sketch,jam}) load
unchanged under the current manifest format and the old one, and a package
write is atomic. Needs nothing beyond the core install (the SAO packages:
tests/test_package.py)."""
import json
import os
import shutil

import numpy as np
import pytest

from lmdm_jax import package, pretrained
from helpers import no_leftovers


@pytest.mark.parametrize("name", sorted(pretrained.SHIPPED))
def test_shipped_packages_load_unchanged(name, tmp_path):
  """Migrated manifests (/2), the same arrays and text encodings; a /1
  manifest (an older export) still loads to the same model."""
  from lmdm_jax.text.hashed import HashedWords
  path = pretrained.SHIPPED[name]
  pkg = pretrained.load(name)
  with open(os.path.join(path, "model.json")) as f:
    assert json.load(f)["format"] == package.FORMAT
  with np.load(os.path.join(path, "params.npz")) as z:
    raw = {k: z[k] for k in z.files}
  flat = package.flatten(pkg.params)
  assert sorted(flat) == sorted(raw)
  for k, v in raw.items():
    assert np.array_equal(flat[k], v), k
  enc = pkg.text_encoder()
  assert isinstance(enc, HashedWords) and pkg.global_cond() is None
  ref = HashedWords(pkg.text["dim"], pkg.text["max_tokens"])
  prompt = "slow Bach chorale for string ensemble"
  assert np.array_equal(enc.encode_one(prompt), ref.encode_one(prompt))
  # The same package under the old format string, no conditioning block.
  old = tmp_path / "old"
  shutil.copytree(path, old)
  with open(old / "model.json") as f:
    doc = json.load(f)
  doc["format"] = package.FORMAT_V1
  del doc["conditioning"]
  with open(old / "model.json", "w") as f:
    json.dump(doc, f)
  v1 = pretrained.load(str(old))
  assert v1.conditioning == pkg.conditioning and v1.dit == pkg.dit
  assert np.array_equal(v1.text_encoder().encode_one(prompt),
                        ref.encode_one(prompt))


def test_write_is_atomic(tmp_path, monkeypatch):
  """A write that fails leaves nothing that loads: no new package, the old
  one intact, no temporary directories."""
  src = pretrained.SHIPPED["demo"]
  doc = package.read_manifest(src)
  with np.load(os.path.join(src, "params.npz")) as z:
    flat = {k: z[k] for k in z.files}
  out = tmp_path / "pkg"
  package.write(str(out), doc, {package.DIT_PARAMS: flat})
  assert package.load(str(out)).cond_tokens == doc["cond_tokens"]
  real = np.savez

  def failing(path, **arrays):
    real(path, **arrays)
    raise OSError("disk full")
  monkeypatch.setattr(np, "savez", failing)
  with pytest.raises(OSError, match="disk full"):
    package.write(str(tmp_path / "new"), doc, {package.DIT_PARAMS: flat})
  with pytest.raises(OSError, match="disk full"):
    package.write(str(out), doc, {package.DIT_PARAMS: flat})
  assert not os.path.exists(tmp_path / "new")
  package.load(str(out))                                  # still valid
  no_leftovers(tmp_path, "new")
  no_leftovers(tmp_path, "pkg")
  # Parts missing from the write: refused before anything is written.
  bad = dict(doc, codec={"name": "oobleck", "config": {"latent_dim": 64}})
  monkeypatch.setattr(np, "savez", real)
  with pytest.raises(package.PackageError, match="codec/params.npz"):
    package.write(str(tmp_path / "bad"), bad, {package.DIT_PARAMS: flat})
  assert not os.path.exists(tmp_path / "bad")
