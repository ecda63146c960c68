"""Sketch and accompaniment controls (issue 7; docs/control.md).

  features  time-aligned features from audio and drawn curves (librosa)
  extract   a clip's controls packed [values, mask] in the model's scale
  inputs    packing, validation, normalisation, the partner visibility cut
  augment   per-control dropout and random median filtering (training)
"""
