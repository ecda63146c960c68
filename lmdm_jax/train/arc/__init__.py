"""ARC-Forcing: adversarial relativistic-contrastive post-training on rollouts."""
