"""The pure core: the DiT, its configs and the packing of its inputs
(docs/architecture.md)."""
