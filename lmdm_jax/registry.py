"""Name -> factory tables that configs choose from (codecs, conditioners).

  CODECS = Registry("codec")
  @CODECS.register("mel")
  class MelCodec(Codec): ...
  CODECS.get("mel")(**kwargs)      # unknown names: ValueError listing known
"""
from __future__ import annotations

from typing import Callable, Dict, List


class Registry:
  """A table of factories by name; `what` names the kind in errors."""

  def __init__(self, what: str):
    self.what = what
    self._table: Dict[str, Callable] = {}

  def register(self, name: str):
    """Class or function decorator: makes it constructible by `name`."""
    def wrap(factory):
      if name in self._table:
        raise ValueError(f"{self.what} {name!r} is already registered")
      self._table[name] = factory
      return factory
    return wrap

  def get(self, name: str) -> Callable:
    if name not in self._table:
      raise ValueError(f"unknown {self.what} {name!r}; registered: "
                       f"{self.names()}")
    return self._table[name]

  def names(self) -> List[str]:
    return sorted(self._table)
