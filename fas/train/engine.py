"""The one thin layer that knows about the cluster: DeepSpeed engine, rank, checkpoints, Ray Train reports.

A method's per-worker loop builds its model and optimizer and calls this layer to wrap them in DeepSpeed (ZeRO
stage from config, fp16 only on GPU), to save a DeepSpeed checkpoint plus a portable weights file every epoch,
and to resume from ``ray.train.get_checkpoint()`` after a failure.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Callable

import torch

STATE_FILE = "train_state.json"
WEIGHTS_FILE = "model.pt"
DS_TAG = "latest_epoch"


def deepspeed_config(batch_size: int, zero_stage: int, fp16: bool, grad_clip: float | None = None) -> dict:
    cfg = {
        "train_micro_batch_size_per_gpu": batch_size,
        "gradient_accumulation_steps": 1,
        "zero_optimization": {"stage": zero_stage},
        "zero_allow_untested_optimizer": True,  # a plain torch optimizer, as the papers used
        "fp16": {"enabled": fp16, "initial_scale_power": 16},
        "steps_per_print": 10**9,
    }
    if grad_clip:
        cfg["gradient_clipping"] = grad_clip
    return cfg


def wrap_deepspeed(model: torch.nn.Module, optimizer: torch.optim.Optimizer, ds_config: dict):
    import deepspeed

    engine, optimizer, _, _ = deepspeed.initialize(model=model, optimizer=optimizer, config=ds_config)
    return engine, optimizer


def restore(engine) -> dict:
    """Load the latest Ray Train checkpoint into ``engine``; returns its saved state ({} when starting fresh)."""
    import ray.train

    checkpoint = ray.train.get_checkpoint()
    if checkpoint is None:
        return {}
    with checkpoint.as_directory() as folder:
        engine.load_checkpoint(folder, tag=DS_TAG)
        return json.loads((Path(folder) / STATE_FILE).read_text())


def save_and_report(engine, epoch: int, metrics: dict, portable: Callable[[Path], None], state: dict) -> None:
    """Every rank saves its DeepSpeed shard; rank 0 adds the portable weights; one Ray Train report."""
    import ray.train

    rank = ray.train.get_context().get_world_rank()
    with tempfile.TemporaryDirectory() as folder:
        engine.save_checkpoint(folder, tag=DS_TAG)
        if rank == 0:
            portable(Path(folder))
            (Path(folder) / STATE_FILE).write_text(json.dumps({"epoch": epoch, **metrics, **state}))
        ray.train.report({**metrics, "epoch": epoch}, checkpoint=ray.train.Checkpoint.from_directory(folder))
