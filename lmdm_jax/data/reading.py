"""Reading a dataset `lmdm data build` wrote (lmdm_jax/data/builders.py).

Opening one (`open_dataset`) never imports code the folder names: TFDS
imports the module of every feature class its features.json names, so the
classes are checked against FEATURE_CLASSES first. `check_codec` compares
the codec its build report records with the one a model uses.
"""
from __future__ import annotations

import json
import os
from typing import Optional

VERSION = "1.0.0"

# The only feature classes a dataset folder may name (what
# builders.LmdmLatents writes). TFDS imports the module of any other name
# when it opens one.
FEATURE_CLASSES = frozenset(
    "tensorflow_datasets.core.features." + c for c in (
        "features_dict.FeaturesDict", "tensor_feature.Tensor",
        "text_feature.Text"))


def _class_names(node):
  """Every feature class name in a features.json / dataset_info.json tree
  ("pythonClassName", or "type" in TFDS's legacy layout)."""
  if isinstance(node, dict):
    for k, v in node.items():
      if k in ("pythonClassName", "type") and isinstance(v, str):
        yield v
      else:
        yield from _class_names(v)
  elif isinstance(node, list):
    for v in node:
      yield from _class_names(v)


def check_features(builder_dir: str) -> None:
  """ValueError unless every feature class that features.json and
  dataset_info.json of `builder_dir` name is in FEATURE_CLASSES (TFDS
  imports the module of an unknown one: a dataset folder must not decide
  what code runs)."""
  found = False
  for fname in ("features.json", "dataset_info.json"):
    path = os.path.join(builder_dir, fname)
    if not os.path.exists(path):
      continue
    found = True
    try:
      with open(path, encoding="utf-8") as f:
        tree = json.load(f)
    except (OSError, ValueError) as e:
      raise ValueError(f"{path} is not readable JSON: {e}") from e
    for cls in _class_names(tree):
      if cls not in FEATURE_CLASSES:
        raise ValueError(f"{path} names feature class {cls!r}, which is not "
                         f"one lmdm data build writes "
                         f"({sorted(FEATURE_CLASSES)}); refusing to open it "
                         f"(TFDS would import its module)")
  if not found:
    raise ValueError(f"{builder_dir} is not a dataset written by `lmdm data "
                     f"build` (no features.json / dataset_info.json)")


def _build_report(data_dir: str, name: str) -> Optional[dict]:
  path = os.path.join(data_dir, f"{name}_build_report.json")
  if not os.path.isfile(path):
    return None
  try:
    with open(path, encoding="utf-8") as f:
      report = json.load(f)
  except (OSError, ValueError):
    return None
  return report if isinstance(report, dict) else None


def built_codec(data_dir: str, name: str = "lmdm_latents") -> Optional[str]:
  """The codec name `lmdm data build` recorded for the dataset `name` under
  `data_dir` (its build report), or None when there is no report (a
  dataset written some other way: nothing to check against)."""
  codec = (_build_report(data_dir, name) or {}).get("codec")
  return str(codec) if codec else None


def built_codec_kwargs(data_dir: str,
                       name: str = "lmdm_latents") -> Optional[dict]:
  """The codec keyword arguments of that build (--codec-kwargs), or None
  when the report does not say (a dataset built before they were
  recorded, or written some other way)."""
  kwargs = (_build_report(data_dir, name) or {}).get("codec_kwargs")
  return dict(kwargs) if isinstance(kwargs, dict) else None


# Codec arguments that say where weights are, not what the latents mean.
_LOCATION_KWARGS = ("directory",)


def check_codec(data_dir: str, name: str, codec: str, what: str,
                kwargs: Optional[dict] = None) -> None:
  """ValueError when the dataset was built with another codec than
  `codec`, the one `what` (an init package, an exported package) decodes
  with: its latents would mean something else to the model (e.g. `mel`
  latents fed to a model that learned `semitone`'s), and nothing else
  would say so: shapes agree for every weights-free codec. With `kwargs`
  the codec's keyword arguments must match the build's too (a layout
  option such as semitone's sub_pitch changes what a channel means),
  except where weights live and the codec's `latent_neutral_kwargs`."""
  built = built_codec(data_dir, name)
  if built is not None and built != str(codec):
    raise ValueError(
        f"{data_dir} holds {built!r} latents (lmdm data build --codec "
        f"{built}) but {what} uses the {codec!r} codec: rebuild the data "
        f"with --codec {codec}, or use a model/config on {built!r}")
  built_kw = built_codec_kwargs(data_dir, name)
  if kwargs is None or built_kw is None:
    return
  ignored = set(_LOCATION_KWARGS)
  try:
    from lmdm_jax.codecs import codec_class
    ignored |= set(codec_class(str(codec)).latent_neutral_kwargs)
  except ValueError:                  # a codec this install does not know
    pass
  strip = lambda d: {k: v for k, v in d.items()  # noqa: E731
                     if k not in ignored}
  if strip(built_kw) != strip(dict(kwargs)):
    raise ValueError(
        f"{data_dir} holds {codec!r} latents built with codec arguments "
        f"{json.dumps(strip(built_kw), sort_keys=True)} but {what} uses "
        f"{json.dumps(strip(dict(kwargs)), sort_keys=True)}: rebuild the "
        f"data with --codec-kwargs "
        f"'{json.dumps(strip(dict(kwargs)), sort_keys=True)}', or use a "
        f"model/config with the build's arguments")


def open_dataset(data_dir: str, name: str = "lmdm_latents",
                 split: str = "train"):
  """Random-access source (no TensorFlow) over a built dataset, opened
  only after `check_features` (no module a folder names is imported)."""
  builder_dir = os.path.join(data_dir, name, VERSION)
  if not os.path.isdir(builder_dir):
    raise ValueError(f"no dataset at {builder_dir} (the --out of `lmdm data "
                     f"build`)")
  check_features(builder_dir)
  import tensorflow_datasets as tfds
  return tfds.builder_from_directory(builder_dir).as_data_source(split)
