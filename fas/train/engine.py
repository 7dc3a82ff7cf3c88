"""The one thin layer that knows about the cluster: DeepSpeed engine, rank, checkpoints, Ray Train reports.

A method's per-worker loop builds its model and optimizer and calls ``wrap_engine`` to wrap them in DeepSpeed (ZeRO
stage from config, fp16 only on GPU) or in torch DDP (``DDPEngine``, the same interface: ``engine(x)``,
``backward``, ``step``, ``module``, ``device``, ``save_checkpoint``/``load_checkpoint``), so the loop has one code
path for both. This layer saves the engine's checkpoint plus a portable weights file every epoch and resumes
from ``ray.train.get_checkpoint()`` after a failure.
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


class DDPEngine:
    """torch DDP (via Ray Train's ``prepare_model``) behind DeepSpeed's engine interface."""

    STATE = "ddp_state.pt"

    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, grad_clip: float | None = None):
        import ray.train.torch

        self.module = model
        self.model = ray.train.torch.prepare_model(model)  # moves to the worker's device; DDP when world > 1
        self.optimizer = optimizer
        self.device = ray.train.torch.get_device()
        self.grad_clip = grad_clip

    def __call__(self, *args, **kwargs):
        return self.model(*args, **kwargs)

    def train(self) -> None:
        self.model.train()

    def eval(self) -> None:
        self.model.eval()

    def backward(self, loss: torch.Tensor) -> None:
        loss.backward()

    def step(self) -> None:
        if self.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.module.parameters(), self.grad_clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    def save_checkpoint(self, folder, tag: str) -> None:
        import ray.train

        if ray.train.get_context().get_world_rank() == 0:  # DDP replicas are identical: one copy
            (Path(folder) / tag).mkdir(parents=True, exist_ok=True)
            torch.save({"model": self.module.state_dict(), "optimizer": self.optimizer.state_dict()},
                       Path(folder) / tag / self.STATE)

    def load_checkpoint(self, folder, tag: str) -> None:
        state = torch.load(Path(folder) / tag / self.STATE, map_location=self.device, weights_only=True)
        self.module.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])


def wrap_engine(kind: str, model: torch.nn.Module, optimizer: torch.optim.Optimizer, *, batch_size: int,
                zero_stage: int = 2, fp16: bool = False, grad_clip: float | None = None):
    """``deepspeed`` or ``ddp``: the same training loop runs on either."""
    if kind == "deepspeed":
        return wrap_deepspeed(model, optimizer, deepspeed_config(batch_size, zero_stage, fp16, grad_clip))[0]
    if kind == "ddp":
        return DDPEngine(model, optimizer, grad_clip)
    raise ValueError(f"unknown engine {kind!r}; choose deepspeed or ddp")


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


def fit(train_loop: Callable[[dict], None], cfg, datasets: dict, callbacks: list | None = None,
        val_columns: tuple[str, ...] | list[str] = ("image", "label")):
    """Run a method's loop as a Ray Train ``TorchTrainer``: scaling, storage, retries and checkpoints from ``cfg``.

    ``datasets["train"]`` is split across workers; every other dataset reaches each worker whole. With
    ``cfg.validate`` the source-side validation rows are added as ``val`` (rank 0 scores them each epoch).
    """
    import dataclasses

    import ray.train
    from ray.train.torch import TorchTrainer

    from fas.ray_utils import storage_uri
    from fas.train.validation import validation_rows

    if cfg.validate:
        from ray.data.expressions import col

        val = validation_rows(cfg.cache, list(val_columns), cfg.protocol, cfg.fold)
        for column in val_columns:
            val = val.filter(expr=col(column).is_not_null())
        datasets = {**datasets, "val": val}
    trainer = TorchTrainer(
        train_loop, train_loop_config=dataclasses.asdict(cfg), datasets=datasets,
        dataset_config=ray.train.DataConfig(datasets_to_split=["train"]),
        scaling_config=ray.train.ScalingConfig(num_workers=cfg.num_workers, use_gpu=cfg.use_gpu,
                                               resources_per_worker={"CPU": cfg.cpus_per_worker}),
        run_config=ray.train.RunConfig(name=cfg.name, storage_path=storage_uri(cfg.storage_path),
                                       failure_config=ray.train.FailureConfig(max_failures=cfg.max_failures),
                                       checkpoint_config=ray.train.CheckpointConfig(num_to_keep=2),
                                       callbacks=callbacks or []),
    )
    return trainer.fit()
