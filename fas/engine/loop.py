"""The one training loop, run on every Ray Train worker for every method.

It builds the method's task, wraps ``task.module`` in DeepSpeed or DDP, resumes from the last checkpoint, runs
epochs or steps (stepping the task's LR scheduler per epoch or per step), and at every checkpoint validates on
rank 0, saves every rank's engine shard plus rank 0's portable model folder and ``train_state.json``, and makes
one Ray Train report. A method's files never see any of this.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from ray.data.collate_fn import NumpyBatchCollateFn

from fas.engine.speed import apply_memory_options, counted, mfu, peak_tflops, set_worker_threads
from fas.methods.base import StepInfo, WorkerContext, resolve
from fas.ray_utils import quiet_train_worker, say

STATE_FILE = "train_state.json"
DS_TAG = "engine_state"  # not "latest": DeepSpeed writes a file of that name beside its tag


class Run:
    """One worker's run: the task, its wrapped engine, the position in the run and the loss window."""

    def __init__(self, method, cfg, local_shuffle: int = 0):
        import ray.train
        import ray.train.torch

        from fas.engine.backends import effective_zero_stage, wrap_engine

        self.cfg, self.run = cfg, cfg.engine
        context = ray.train.get_context()
        self.rank, self.world = context.get_world_rank(), context.get_world_size()
        half = {"fp16": torch.half, "bf16": torch.bfloat16}.get(self.run.half, torch.float)
        self.ctx = WorkerContext(rank=self.rank, world_size=self.world, device=ray.train.torch.get_device(),
                                 dtype=half, rng=np.random.default_rng([self.run.seed, self.rank]),
                                 open_stream=self._open_stream)
        self.threads = set_worker_threads(self.run.cpus_per_worker)
        torch.manual_seed(self.run.seed)  # every rank builds the same initial weights
        self.task = resolve(method.task)(cfg, self.ctx)
        apply_memory_options(self.task.module, grad_checkpointing=self.run.grad_checkpointing,
                             channels_last=self.run.channels_last)
        self.zero_stage = effective_zero_stage(self.run.zero_stage, self.world)
        if self.rank == 0 and self.run.backend == "deepspeed" and self.zero_stage != self.run.zero_stage:
            say(f"[{self.run.name}] one worker: ZeRO-{self.run.zero_stage} has nothing to partition, running ZeRO-0")
        self.engine = wrap_engine(self.run.backend, self.task.module, self.task.optimizer,
                                  batch_size=self.task.batch_size, zero_stage=self.zero_stage, half=self.run.half,
                                  grad_clip=self.task.grad_clip, compile=self.run.compile)
        self.flops_per_row = None  # counted on this attempt's first step
        self.peak = peak_tflops(self.ctx.device, self.run.half, self.run.peak_tflops)
        self.saved = self._restore()
        self.step, self.epoch = self.saved.get("step", 0), self.saved.get("epoch", -1) + 1
        self.history = self.saved.get("history", [])
        self.start = self.epoch if self.run.unit == "epoch" else self.step  # where this attempt began
        self.local_shuffle = local_shuffle  # batches of this worker's shuffle buffer (``train_order``)
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
        on_gpu = self.ctx.device.type == "cuda"
        return shard.iter_torch_batches(batch_size=self.task.batch_size, collate_fn=PreparedBatches(self.task),
                                        prefetch_batches=self.run.prefetch_batches, device=self.ctx.device,
                                        pin_memory=on_gpu, **shuffle)

    def train_step(self, batch: dict) -> None:
        info = StepInfo(step=self.step, epoch=self.epoch, progress=self.progress)
        if self.flops_per_row is None:  # one analytic count per attempt: the MFU of every report
            losses, flops = counted(lambda: self._forward_backward(batch, info))
            self.flops_per_row = flops / len(next(iter(batch.values())))
        else:
            losses = self._forward_backward(batch, info)
        self.engine.step()
        self.step += 1
        for key, value in losses.items():
            self.window[key] += float(value.detach().float())
        self.window["_steps"] += 1
        self.window["_rows"] += len(next(iter(batch.values())))
        if self.run.unit == "step":
            self._step_scheduler()
        if self.rank == 0 and self.run.log_every and self.step % self.run.log_every == 0:
            say(f"[{self.run.name}] step {self.step} loss {self.window['loss'] / self.window['_steps']:.4f}")

    def _forward_backward(self, batch: dict, info: StepInfo) -> dict:
        losses = self.task.train_step(self.engine, batch, info)
        self.engine.backward(losses["loss"])
        return losses

    @property
    def progress(self) -> float:
        done = self.step if self.run.unit == "step" else self.epoch
        return min(1.0, done / self.run.total)

    def metrics(self) -> dict:
        steps = max(1.0, self.window["_steps"])
        out = {k: v / steps for k, v in self.window.items() if not k.startswith("_")}
        rows_per_s = self.window["_rows"] / (time.perf_counter() - self.tick)  # this worker's
        out.update(step=self.step, lr=self.task.optimizer.param_groups[0]["lr"], images_per_s=self.world * rows_per_s,
                   model_tflops_per_s=(self.flops_per_row or 0.0) * rows_per_s / 1e12, torch_threads=self.threads)
        utilisation = mfu(self.flops_per_row, rows_per_s, self.peak)
        if utilisation is not None:
            out["mfu"] = utilisation
        predictor = self.task.predictor() if self.run.validate and self.rank == 0 else None
        if predictor is not None:
            from fas.engine.validation import validate

            self.engine.eval()
            out.update(validate(predictor, self._open_stream("val", 64)))
            self.engine.train()
        return out

    def checkpoint(self) -> None:
        """Every rank saves its engine shard; rank 0 adds the portable model folder and the state; one report."""
        metrics = self.metrics()
        index = self.epoch if self.run.unit == "epoch" else self.step
        curves = {k: v for k, v in metrics.items() if k in ("loss", "lr") or k.startswith("val_")}
        self.history.append({self.run.unit: index, **curves, "resumed_from": self.start})  # the training curves
        if self.rank == 0:
            say(progress_line(self.run, index, metrics))
        with checkpoint_folder(f"checkpoint_{self.run.unit}_{index:06d}", self.rank) as (folder, report):
            self.engine.save_checkpoint(str(folder), tag=DS_TAG)
            if self.rank == 0:
                self.task.portable(folder)
                state = {"epoch": self.epoch, **metrics, "history": self.history}
                (folder / STATE_FILE).write_text(json.dumps(state))
            report({**metrics, "epoch": self.epoch})
        self._new_window()


@contextmanager
def checkpoint_folder(name: str, rank: int):
    """Where a checkpoint is written, and the report that registers it.

    On a local (or mounted, shared) storage path every rank writes straight into the run's folder and the report
    uploads nothing: a paper-size checkpoint (SD-1.5 UNet with Adam: ~14 GB) is written once, not written to /tmp
    and then copied, which doubled both its disk and its time. Other storage (``s3://``, ``gs://``) gets a local
    temporary folder that Ray Train uploads."""
    import pyarrow.fs
    import ray.train
    from ray.train import CheckpointUploadMode

    storage = ray.train.get_context().get_storage()
    if not isinstance(storage.storage_filesystem, pyarrow.fs.LocalFileSystem):
        with tempfile.TemporaryDirectory() as temporary:
            yield Path(temporary), lambda metrics: ray.train.report(
                metrics, checkpoint=ray.train.Checkpoint.from_directory(temporary), checkpoint_dir_name=name)
        return
    folder = Path(storage.experiment_fs_path) / name
    if rank == 0 and folder.exists():  # left by an attempt that died while saving it: never registered
        shutil.rmtree(folder)
    barrier()
    folder.mkdir(parents=True, exist_ok=True)
    checkpoint = ray.train.Checkpoint(folder.as_posix(), filesystem=storage.storage_filesystem)
    yield folder, lambda metrics: ray.train.report(metrics, checkpoint=checkpoint, checkpoint_dir_name=name,
                                                   checkpoint_upload_mode=CheckpointUploadMode.NO_UPLOAD)


def barrier() -> None:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()


def progress_line(run, index: int, metrics: dict) -> str:
    """One plain line per report (rank 0): where the run is, its loss, speed and validation."""
    done = index + 1 if run.unit == "epoch" else index
    parts = [f"[{run.name}] {run.unit} {done}/{run.total}", f"loss {metrics.get('loss', float('nan')):.4f}",
             f"{metrics['images_per_s']:.1f} img/s"]
    if "mfu" in metrics:
        parts.append(f"MFU {metrics['mfu']:.1%}")
    parts += [f"{key} {metrics[key]:.4f}" for key in ("val_auc", "val_hter") if key in metrics]
    return "  ".join(parts)


class PreparedBatches(NumpyBatchCollateFn):
    """Ray Data's collate step: the task's ``prepare_batch`` (decoding), run ahead of the step in Ray Data's
    prefetch thread; tensors it returns are then pinned and copied to the worker's device there too."""

    def __init__(self, task):
        self.task = task

    def __call__(self, batch: dict):
        return self.task.prepare_batch(batch)


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

    quiet_train_worker()
    method = config["method"]
    cfg = from_dict(method.config, config["config"])
    run = Run(method, cfg, config.get("local_shuffle", 0))
    (run_steps if cfg.engine.unit == "step" else run_epochs)(run)
