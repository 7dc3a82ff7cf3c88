"""The one training loop, run on every Ray Train worker for every method.

It builds the method's task, wraps ``task.module`` in DeepSpeed or DDP, resumes from the last checkpoint, runs
epochs or steps (stepping the task's LR scheduler per epoch or per step), and at every checkpoint validates on
rank 0, saves every rank's engine shard plus rank 0's portable model folder and ``train_state.json``, and makes
one Ray Train report. A method's files never see any of this.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import tempfile
import time
from collections import defaultdict
from contextlib import contextmanager, nullcontext
from pathlib import Path

import numpy as np
import torch
from ray.data.collate_fn import NumpyBatchCollateFn

from fas.engine.speed import apply_memory_options, counted, mfu, peak_tflops, set_worker_threads
from fas.integrity import storage_errors, write_text
from fas.methods.base import StepInfo, WorkerContext, resolve
from fas.ray_utils import quiet_train_worker, say

STATE_FILE = "train_state.json"
DS_TAG = "engine_state"  # not "latest": DeepSpeed writes a file of that name beside its tag


class Run:
    """One worker's run: the task, its wrapped engine, the position in the run and the loss window."""

    def __init__(self, method, cfg, local_shuffle: int = 0, resume_from: str | None = None):
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
        if self.run.init_from:  # a resumed run's checkpoint replaces these weights below
            load_initial_weights(self.task.module, self.run.init_from)
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
        self.saved = self._restore(resume_from)
        self.step, self.epoch, self.epoch_batches = resume_position(self.saved, self.run.unit)
        self.history = self.saved.get("history", [])
        self.start = self.epoch if self.run.unit == "epoch" else self.step  # where this attempt began
        self.local_shuffle = local_shuffle  # batches of this worker's shuffle buffer (``train_order``)
        self._replay_schedule()
        if self.rank == 0:
            log_attempt({"resumed_from": self.start, "unit": self.run.unit, "step": self.step, "epoch": self.epoch,
                         "epoch_batches": self.epoch_batches, "lr": self.task.optimizer.param_groups[0]["lr"]})
        self._new_window()

    @staticmethod
    def _open_stream(name: str, batch_size: int):
        import ray.train

        return iter(ray.train.get_dataset_shard(name).iter_batches(batch_size=batch_size, batch_format="numpy"))

    def _restore(self, resume_from: str | None = None) -> dict:
        """The engine state and ``train_state.json`` of Ray Train's latest checkpoint, else of ``resume_from`` (a
        checkpoint folder the launcher found when the controller's own record was unreadable), else nothing."""
        import ray.train

        checkpoint = ray.train.get_checkpoint()
        if checkpoint is None and resume_from is None:
            return {}
        with (checkpoint.as_directory() if checkpoint is not None else nullcontext(resume_from)) as folder:
            self.engine.load_checkpoint(folder, tag=DS_TAG)
            return json.loads((Path(folder) / STATE_FILE).read_text())

    def _replay_schedule(self) -> None:
        """The LR schedule where the run stopped: the restored optimizer holds the checkpoint's LR, and a chainable
        scheduler (ExponentialLR, StepLR) would multiply that again; so start from the initial LR and step the fresh
        scheduler as many times as the run had (the fault drill found the double step: PDLE's LR one decay ahead)."""
        if self.task.scheduler is None or not self.start:
            return
        for group in self.task.optimizer.param_groups:
            group["lr"] = group.get("initial_lr", group["lr"])
        for _ in range(self.start):
            self._step_scheduler()

    def _step_scheduler(self) -> None:
        if self.task.scheduler is not None:
            self.task.scheduler.step()

    def _new_window(self) -> None:
        self.window, self.tick = defaultdict(float), time.perf_counter()

    def batches(self):
        """One pass over this worker's shard of the training rows."""
        import ray.train

        shuffle = {}
        if self.local_shuffle:  # seeded by the epoch's first step: a resumed epoch shuffles as it began
            shuffle = {"local_shuffle_buffer_size": self.local_shuffle * self.task.batch_size,
                       "local_shuffle_seed": self.step - self.epoch_batches}
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
        if self.run.drill_kill_at_step == self.step + 1 and self.rank == self.world - 1:
            drill_kill(self.step + 1, reported=min(len(self.history), self.run.keep_checkpoints))
        self.engine.step()
        self.step += 1
        self.epoch_batches += 1
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
            with storage_errors(folder):  # a full disk or a read-only folder: an error naming the checkpoint
                self.engine.save_checkpoint(str(folder), tag=DS_TAG)
                if self.rank == 0:
                    self.task.portable(folder)
                    record_crop(folder, self.cfg.cache)
                    state = {"epoch": self.epoch, "epoch_batches": self.epoch_batches, **metrics,
                             "history": self.history}
                    write_text(folder / STATE_FILE, json.dumps(state))
            report({**metrics, "epoch": self.epoch})
        self._new_window()


def record_crop(folder: Path, cache: str) -> None:
    """Add to the model folder's config how its training frames were cropped (``face``: whole frame or face crop,
    from the cache's preparation), unless the method recorded it: inference then crops new images the same way
    (a CLIPC8 model trained on whole CLASS-8 frames must not be shown face crops)."""
    from fas.data.cache import crop_record
    from fas.integrity import recorded_checksums, write_checksums
    from fas.methods.base import MODEL_CONFIG_FILE

    path, crop = Path(folder) / MODEL_CONFIG_FILE, crop_record(cache) if cache else None
    meta = json.loads(path.read_text()) if path.is_file() else None
    if meta is None or crop is None or "face" in meta:
        return
    write_text(path, json.dumps({**meta, "face": crop}, indent=2))
    write_checksums(folder, recorded_checksums(folder) or (MODEL_CONFIG_FILE,))


def resume_position(saved: dict, unit: str) -> tuple[int, int, int]:
    """(step, epoch, batches already taken in that epoch) where an attempt resumes. An epoch run checkpoints at
    epoch ends, so it starts the next epoch; a step run resumes inside the epoch it stopped in, after the batches
    that epoch had already given it (so no epoch gives a worker more rows than one pass)."""
    if not saved:
        return 0, 0, 0
    if unit == "epoch":
        return saved["step"], saved["epoch"] + 1, 0
    return saved["step"], saved["epoch"], saved.get("epoch_batches", 0)


def local_run_dir() -> Path | None:
    """The run's folder when the storage is local (or a mount every node shares); None for cloud storage."""
    import pyarrow.fs
    import ray.train

    storage = ray.train.get_context().get_storage()
    if not isinstance(storage.storage_filesystem, pyarrow.fs.LocalFileSystem):
        return None
    return Path(storage.experiment_fs_path)


ATTEMPTS_FILE = "attempts.jsonl"


def log_attempt(position: dict) -> None:
    """One line per attempt in ``RUN/attempts.jsonl`` (rank 0): when it started and where it resumed from, so a
    user (and ``fas drill``) can see every restart and what it cost."""
    folder = local_run_dir()
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / ATTEMPTS_FILE, "a") as out:
            out.write(json.dumps({"started_at": time.time(), **position}) + "\n")


DRILL_FILE = "drill_kill.json"
SNAPSHOT_FILE = "checkpoint_manager_snapshot.json"  # Ray Train's controller: the checkpoints it would resume from


def recover_snapshot(run_dir: Path) -> str | None:
    """Ray Train's controller rewrites ``checkpoint_manager_snapshot.json`` in place: a disk that fills while it does
    leaves it empty, and the controller of the rerun then refuses to start (the disk-full drill found this). Set
    such a file aside and name the newest complete checkpoint folder (its ``train_state.json``, written last, and
    its model files' checksums) to resume from instead. None when the record is readable or absent."""
    snapshot = Path(run_dir) / SNAPSHOT_FILE
    try:
        json.loads(snapshot.read_text())
        return None
    except FileNotFoundError:
        return None
    except ValueError:
        aside = snapshot.with_name(f"{SNAPSHOT_FILE}.unreadable-{int(time.time())}")
        snapshot.rename(aside)
    complete = complete_checkpoints(run_dir)
    found = str(complete[-1]) if complete else None
    say(f"[{Path(run_dir).name}] Ray Train's checkpoint record {snapshot} was unreadable (set aside as {aside.name}); "
        + (f"resuming from {found}" if found else "no complete checkpoint: starting over"))
    return found


def complete_checkpoints(run_dir: Path) -> list[Path]:
    """A run's checkpoint folders that were written whole (``train_state.json``, written last, and the engine state)
    and whose files match their checksums, oldest first."""
    from fas.integrity import IntegrityError, verify_folder

    complete = []
    for folder in sorted(Path(run_dir).glob("checkpoint_*")):
        try:
            if (folder / STATE_FILE).is_file() and (folder / DS_TAG).exists():
                verify_folder(folder)  # a folder from before checksums passes, with a warning naming it
                complete.append(folder)
        except IntegrityError:
            continue
    return complete


def init_folder(init_from: str, method: str) -> Path:
    """The model folder ``init_from`` names (a model folder, or a run folder: its newest complete checkpoint), after
    checking that it holds a ``method`` model."""
    from fas.methods import read_model_meta
    from fas.methods.base import WEIGHTS_FILE

    folder = Path(init_from)
    if not (folder / WEIGHTS_FILE).is_file():
        complete = complete_checkpoints(folder) if folder.is_dir() else []
        if not complete:
            raise ValueError(f"init_from {init_from}: neither a model folder (no {WEIGHTS_FILE}) nor a run folder with "
                             "a complete checkpoint; give the previous run's folder (storage_path/name) or its model")
        folder = complete[-1]
    found = read_model_meta(folder)["method"]
    if found != method:
        raise ValueError(f"init_from {folder} holds a {found} model; this run trains {method}")
    return folder.resolve()


def load_initial_weights(module: torch.nn.Module, folder: str) -> None:
    """``folder``'s weights into the freshly built module, before the engine wraps it (every rank loads the same)."""
    from fas.integrity import load_state
    from fas.methods.base import WEIGHTS_FILE

    result = module.load_state_dict(load_state(Path(folder) / WEIGHTS_FILE), strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise ValueError(f"init_from {folder}: its weights do not fit this run's model (missing {len(result.missing_keys)}"
                         f", e.g. {result.missing_keys[:2]}; unexpected {len(result.unexpected_keys)}, e.g. "
                         f"{result.unexpected_keys[:2]}): the same method and architecture are needed")


def registered_checkpoints(run_dir: Path) -> int:
    try:
        return len(json.loads((run_dir / SNAPSHOT_FILE).read_text())["checkpoint_results"])
    except (OSError, ValueError, KeyError):
        return 0


def drill_kill(step: int, reported: int, wait_s: float = 60.0) -> None:
    """``engine.drill_kill_at_step`` (``fas drill``): this worker dies by SIGKILL in the middle of ``step``, after
    its backward and before its optimizer step, as a crashed or preempted worker would; once per run (it records
    when, first). It waits for the controller to register the ``reported`` checkpoints so far: one written but
    not yet registered is not one a restart resumes from, and the drill measures the engine, not that race."""
    import signal

    folder = local_run_dir()
    if folder is None or (folder / DRILL_FILE).exists():
        return
    deadline = time.monotonic() + wait_s
    while registered_checkpoints(folder) < reported and time.monotonic() < deadline:
        time.sleep(0.1)
    (folder / DRILL_FILE).write_text(json.dumps({"step": step, "killed_at": time.time(), "pid": os.getpid()}))
    os.kill(os.getpid(), signal.SIGKILL)


@contextmanager
def checkpoint_folder(name: str, rank: int):
    """Where a checkpoint is written, and the report that registers it.

    On a local (or mounted, shared) storage path every rank writes straight into the run's folder and the report
    uploads nothing: a paper-size checkpoint (SD-1.5 UNet with Adam: ~14 GB) is written once, not written to /tmp
    and then copied, which doubled both its disk and its time. Other storage (``s3://``, ``gs://``) gets a local
    temporary folder that Ray Train uploads."""
    import ray.train
    from ray.train import CheckpointUploadMode

    run_dir = local_run_dir()
    if run_dir is None:
        with tempfile.TemporaryDirectory() as temporary:
            yield Path(temporary), lambda metrics: ray.train.report(
                metrics, checkpoint=ray.train.Checkpoint.from_directory(temporary), checkpoint_dir_name=name)
        return
    storage = ray.train.get_context().get_storage()
    folder = run_dir / name
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
        run.epoch_batches = 0
        if (run.epoch + 1) % cfg.checkpoint_every == 0 or run.epoch + 1 == cfg.total:
            run.checkpoint()
        run.epoch += 1


def run_steps(run: Run) -> None:
    cfg = run.run
    run.ctx.rng = np.random.default_rng([cfg.seed, run.rank, run.step])
    run.engine.train()
    while run.step < cfg.total:
        run.task.start_epoch(run.epoch)
        pulled, skip = run.epoch_batches, run.epoch_batches  # a resumed epoch: the batches it already gave
        for batch in itertools.islice(run.batches(), skip, None):
            run.train_step(batch)
            pulled += 1
            if run.step % cfg.checkpoint_every == 0 or run.step >= cfg.total:
                run.checkpoint()
            if run.step >= cfg.total:
                break
        if pulled == 0:
            raise ValueError(f"worker {run.rank} got no training rows from {run.cfg.cache}: the training rows "
                             f"hold too few rows for {run.world} workers")
        run.epoch, run.epoch_batches = run.epoch + 1, 0


def worker_loop(config: dict) -> None:
    """Ray Train's ``train_loop_per_worker``: ``config`` holds the method record and the config as a dict."""
    from fas.config import from_dict

    quiet_train_worker()
    method = config["method"]
    cfg = from_dict(method.config, config["config"])
    run = Run(method, cfg, config.get("local_shuffle", 0), config.get("resume_from"))
    (run_steps if cfg.engine.unit == "step" else run_epochs)(run)
