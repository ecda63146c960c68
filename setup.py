"""lmdm_jax: Live Music Diffusion Models in JAX/Flax."""
from setuptools import find_packages, setup

setup(
    name="lmdm_jax",
    version="0.1.0",
    description=(
        "JAX/Flax reimplementation of Live Music Diffusion Models: a "
        "block-causal streaming diffusion transformer for live music."),
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["lmdm_jax", "lmdm_jax.*"]),
    # musicnn weights (ISC, converted by tools/convert_musicnn.py).
    package_data={"lmdm_jax.eval": ["weights/*.npz",
                                    "weights/LICENSE.musicnn"],
                  # The shipped demo model (`lmdm generate` default).
                  "lmdm_jax": ["assets/demo/*", "assets/sketch/*",
                               "assets/jam/*"],
                  # `lmdm serve`'s page (no CDN, no build step).
                  "lmdm_jax.serve": ["static/*"]},
    install_requires=[
        "jax>=0.7",
        "flax>=0.10",
        "optax>=0.2.4",
        "orbax-checkpoint>=0.11",
        "ml-collections>=1.0",
        "numpy>=1.26",
        "einops>=0.8",
        "tqdm>=4.60",
        "scipy>=1.9",          # the mel codec's FFTs (jax needs it too)
    ],
    extras_require={
        # nbclient/nbformat/ipykernel: tests/test_colab_notebooks.py runs
        # the colab/ notebooks headlessly (ipywidgets stays optional).
        "test": ["pytest>=8", "pytest-xdist>=3.5", "safetensors>=0.4",
                 "huggingface_hub>=0.30",
                 "matplotlib>=3.7", "nbclient>=0.10", "nbformat>=5.9",
                 "ipykernel>=6.29", "aiohttp>=3.9", "python-osc>=1.8",
                 "mido>=1.3", "selenium>=4.20"],
        # `lmdm serve`: the browser instrument, OSC and MIDI (python-rtmidi
        # opens hardware ports; tests drive mido without it). The browser
        # tests also need Debian's chromium and chromium-driver.
        "serve": ["aiohttp>=3.9", "python-osc>=1.8", "mido>=1.3",
                  "python-rtmidi>=1.5"],
        # `lmdm live` through the sound card (also Debian's libportaudio2);
        # without it `lmdm live` plays against the simulated clock.
        "live": ["sounddevice>=0.4.6"],
        "bench": ["matplotlib>=3.7"],
        # Checkpoint import (`lmdm convert`); .ckpt files also need torch,
        # which is deliberately not listed.
        "convert": ["safetensors>=0.4", "sentencepiece>=0.2"],
        # `lmdm fetch`: the hub client (the only network access) and what
        # the converters need.
        "fetch": ["huggingface_hub>=0.30", "safetensors>=0.4",
                  "sentencepiece>=0.2"],
        # `lmdm data demo`: scores and MIDI (Debian's fluidsynth renders).
        "demo": ["music21>=9", "mido>=1.3"],
        "data": ["tensorflow-datasets>=4.9.7", "array-record>=0.5",
                 "importlib_resources>=6", "grain>=0.2", "librosa>=0.10",
                 "soundfile>=0.12", "tensorboardX>=2.6"],
        # `lmdm eval` (musicnn features, FD / KL); no TensorFlow.
        "eval": ["librosa>=0.10", "soundfile>=0.12", "scipy>=1.9"],
    },
    entry_points={"console_scripts": ["lmdm=lmdm_jax.cli:main"]},
)
