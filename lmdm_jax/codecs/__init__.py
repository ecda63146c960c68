"""Audio codecs: waveform <-> latent frames, chosen by name from a registry."""
from lmdm_jax.codecs.base import (Codec, codec_class, get_codec,
                                  register_codec, registered)
from lmdm_jax.codecs import mel as _mel  # noqa: F401  (registers "mel")
from lmdm_jax.codecs import oobleck as _oobleck  # noqa: F401
from lmdm_jax.codecs import pool as _pool  # noqa: F401  (registers "pool")
from lmdm_jax.codecs import semitone as _semitone  # noqa: F401

__all__ = ["Codec", "codec_class", "get_codec", "register_codec", "registered"]
