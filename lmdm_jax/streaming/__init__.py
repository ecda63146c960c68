"""The pure core: stream spec, state, cached steps and the block sampler
(docs/architecture.md). Host playback is lmdm_jax/live/."""
