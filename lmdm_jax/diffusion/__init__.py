"""The pure core: rectified flow, sampling schedules and samplers
(docs/architecture.md)."""
