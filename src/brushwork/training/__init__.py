"""Training: one generic loop (Trainer), per-family tasks, EMA and checkpoints."""
