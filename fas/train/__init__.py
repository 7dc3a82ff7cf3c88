"""The trainer layer: Ray Train + DeepSpeed wrapping, checkpoints and data shards, kept out of the methods."""
