"""Stage-1 fine-tuning: train state, loss, data-parallel step, loop."""
