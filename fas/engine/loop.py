"""The one training loop, run on every Ray Train worker for every method.

It builds the method's task, wraps ``task.module`` in DeepSpeed or DDP, resumes from the last checkpoint, runs
epochs or steps (stepping the task's LR scheduler per epoch or per step), and at every checkpoint validates on
rank 0, saves every rank's engine shard plus rank 0's portable model folder and ``train_state.json``, and makes
one Ray Train report. A method's files never see any of this.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from fas.methods.base import StepInfo, WorkerContext, resolve

STATE_FILE = "train_state.json"
DS_TAG = "engine_state"  # not "latest": DeepSpeed writes a file of that name beside its tag


class Run:
    """One worker's run: the task, its wrapped engine, the position in the run and the loss window."""

    def __init__(self, method, cfg):
        import ray.train
        import ray.train.torch

        from fas.engine.backends import wrap_engine

        self.cfg, self.run = cfg, cfg.engine
        context = ray.train.get_context()
        self.rank, self.world = context.get_world_rank(), context.get_world_size()
        half = {"fp16": torch.half, "bf16": torch.bfloat16}.get(self.run.half, torch.float)
        self.ctx = WorkerContext(rank=self.rank, world_size=self.world, device=ray.train.torch.get_device(),
                                 dtype=half, rng=np.random.default_rng([self.run.seed, self.rank]),
                                 open_stream=self._open_stream)
        torch.manual_seed(self.run.seed)  # every rank builds the same initial weights
        self.task = resolve(method.task)(cfg, self.ctx)
        self.engine = wrap_engine(self.run.backend, self.task.module, self.task.optimizer,
                                  batch_size=self.task.batch_size, zero_stage=self.run.zero_stage, half=self.run.half,
                                  grad_clip=self.task.grad_clip)
        self.saved = self._restore()
        self.step, self.epoch = self.saved.get("step", 0), self.saved.get("epoch", -1) + 1
        self.history = self.saved.get("history", [])
        self.start = self.epoch if self.run.unit == "epoch" else self.step  # where this attempt began
        self.local_shuffle = resolve(method.data)(cfg).local_shuffle if self.run.unit == "step" else 0
        for _ in range(self.start):  # the LR schedule where the run stopped
            self._step_scheduler()
        self._new_window()

    @staticmethod
    def _open_stream(name: str, batch_size: int):
        import ray.train

        return iter(ray.train.get_dataset_shard(name).iter_batches(batch_size=batch_size, batch_format="numpy"))

    def _restore(self) -> dict:
        import ray.train

        checkpoint = ray.train.get_checkpoint()
        if checkpoint is None:
            return {}
        with checkpoint.as_directory() as folder:
            self.engine.load_checkpoint(folder, tag=DS_TAG)
            return json.loads((Path(folder) / STATE_FILE).read_text())

    def _step_scheduler(self) -> None:
        if self.task.scheduler is not None:
            self.task.scheduler.step()

    def _new_window(self) -> None:
        self.window, self.tick = defaultdict(float), time.perf_counter()

    def batches(self):
        """One pass over this worker's shard of the training rows."""
        import ray.train

        shuffle = {}
        if self.local_shuffle:
            shuffle = {"local_shuffle_buffer_size": self.local_shuffle * self.task.batch_size,
                       "local_shuffle_seed": self.step}
        shard = ray.train.get_dataset_shard("train")
        return shard.iter_batches(batch_size=self.task.batch_size, batch_format="numpy", **shuffle)

    def train_step(self, batch: dict) -> None:
        info = StepInfo(step=self.step, epoch=self.epoch, progress=self.progress)
        losses = self.task.train_step(self.engine, batch, info)
        self.engine.backward(losses["loss"])
        self.engine.step()
        self.step += 1
        for key, value in losses.items():
            self.window[key] += float(value.detach().float())
        self.window["_steps"] += 1
        self.window["_rows"] += len(next(iter(batch.values())))
        if self.run.unit == "step":
            self._step_scheduler()
        if self.rank == 0 and self.run.log_every and self.step % self.run.log_every == 0:
            print(f"[{self.run.name}] step {self.step} loss {self.window['loss'] / self.window['_steps']:.4f}",
                  flush=True)

    @property
    def progress(self) -> float:
        done = self.step if self.run.unit == "step" else self.epoch
        return min(1.0, done / self.run.total)

    def metrics(self) -> dict:
        steps = max(1.0, self.window["_steps"])
        out = {k: v / steps for k, v in self.window.items() if not k.startswith("_")}
        out.update(step=self.step, lr=self.task.optimizer.param_groups[0]["lr"],
                   images_per_s=self.world * self.window["_rows"] / (time.perf_counter() - self.tick))
        predictor = self.task.predictor() if self.run.validate and self.rank == 0 else None
        if predictor is not None:
            from fas.engine.validation import validate

            self.engine.eval()
            out.update(validate(predictor, self._open_stream("val", 64)))
            self.engine.train()
        return out

    def checkpoint(self) -> None:
        """Every rank saves its engine shard; rank 0 adds the portable model folder and the state; one report."""
        import ray.train

        metrics = self.metrics()
        index = self.epoch if self.run.unit == "epoch" else self.step
        self.history.append({self.run.unit: index, "loss": metrics.get("loss"), "resumed_from": self.start})
        with tempfile.TemporaryDirectory() as folder:
            self.engine.save_checkpoint(folder, tag=DS_TAG)
            if self.rank == 0:
                self.task.portable(Path(folder))
                state = {"epoch": self.epoch, **metrics, "history": self.history}
                (Path(folder) / STATE_FILE).write_text(json.dumps(state))
            ray.train.report({**metrics, "epoch": self.epoch},
                             checkpoint=ray.train.Checkpoint.from_directory(folder))
        self._new_window()


def run_epochs(run: Run) -> None:
    cfg = run.run
    while run.epoch < cfg.total:
        run.ctx.rng = np.random.default_rng([cfg.seed, run.rank, run.epoch])
        run.task.start_epoch(run.epoch)
        run.engine.train()
        for batch in run.batches():
            run.train_step(batch)
        run._step_scheduler()
        if (run.epoch + 1) % cfg.checkpoint_every == 0 or run.epoch + 1 == cfg.total:
            run.checkpoint()
        run.epoch += 1


def run_steps(run: Run) -> None:
    cfg = run.run
    run.ctx.rng = np.random.default_rng([cfg.seed, run.rank, run.step])
    run.engine.train()
    while run.step < cfg.total:
        run.task.start_epoch(run.epoch)
        pulled = 0
        for batch in run.batches():
            run.train_step(batch)
            pulled += 1
            if run.step % cfg.checkpoint_every == 0 or run.step >= cfg.total:
                run.checkpoint()
            if run.step >= cfg.total:
                break
        if pulled == 0:
            raise ValueError(f"worker {run.rank} got no training rows from {run.cfg.cache}: the training rows "
                             f"hold too few rows for {run.world} workers")
        run.epoch += 1


def worker_loop(config: dict) -> None:
    """Ray Train's ``train_loop_per_worker``: ``config`` holds the method record and the config as a dict."""
    from fas.config import from_dict

    method = config["method"]
    cfg = from_dict(method.config, config["config"])
    run = Run(method, cfg)
    (run_steps if cfg.engine.unit == "step" else run_epochs)(run)
