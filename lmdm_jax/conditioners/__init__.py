"""Conditioners: user inputs (numbers, later text) -> conditioning arrays."""
from lmdm_jax.conditioners.base import (Conditioners, build_conditioners,
                                        register_conditioner, registered)
from lmdm_jax.conditioners import number as _number  # noqa: F401
from lmdm_jax.conditioners import text as _text  # noqa: F401

__all__ = ["Conditioners", "build_conditioners", "register_conditioner",
           "registered"]
