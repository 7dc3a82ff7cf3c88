"""Launch any method's training as one Ray Train ``TorchTrainer``: scaling, storage, retries and checkpoints
come from the config's engine section; the method's record says what data it reads and how to prepare."""

from __future__ import annotations

import dataclasses
from contextlib import contextmanager
from pathlib import Path

from fas.methods.base import resolve


@dataclasses.dataclass
class TrainRun:
    """A finished run: Ray Train's ``Result`` and the config the workers ran (after the method's ``prepare``)."""

    result: object
    config: object

    @property
    def checkpoint(self):
        return self.result.checkpoint

    @property
    def metrics(self) -> dict:
        return self.result.metrics

    @property
    def path(self) -> str:
        return self.result.path


def validation_columns(method, cfg) -> tuple[str, ...] | None:
    """The cache columns the run's validation scores: what its trained folder's predictor will read; None when
    the run does not validate or the method gives no score."""
    if not cfg.engine.validate or method.predictor is None:
        return None
    return tuple(method.inputs(resolve(method.model_meta)(cfg)))


def train(cfg, callbacks: list | None = None) -> TrainRun:
    """Train ``cfg``'s method (looked up by its config class) on the rows of ``cfg.cache`` that it selects."""
    import ray.train
    from ray.train.torch import TorchTrainer

    from fas.engine.data import train_order, training_datasets
    from fas.engine.loop import init_folder, recover_snapshot, worker_loop
    from fas.engine.tracking import ending_runs, tracking_callbacks
    from fas.methods import method_of_config
    from fas.provenance import write_run_config
    from fas.ray_utils import init_ray, storage_uri

    method = method_of_config(cfg)
    cfg.engine.check()
    run = cfg.engine
    init_ray(run.address)
    if method.prepare is not None:
        cfg = resolve(method.prepare)(cfg)
    needs = resolve(method.data)(cfg)
    if run.init_from:  # a wrong folder fails here, not on every worker
        run = dataclasses.replace(run, init_from=str(init_folder(run.init_from, method.name)))
        cfg = dataclasses.replace(cfg, engine=run)
    run_dir = Path(storage_uri(run.storage_path)) / run.name
    tracking = tracking_callbacks(cfg, run_dir)  # opt-in TensorBoard / MLflow; a bad setting fails here
    write_run_config(run_dir, cfg, method)
    resume_from = recover_snapshot(run_dir) if "://" not in str(run_dir) else None
    datasets = training_datasets(cfg, needs, validation_columns(method, cfg))
    resources = {"CPU": run.cpus_per_worker, **({"GPU": run.gpus_per_worker} if run.use_gpu else {})}
    trainer = TorchTrainer(
        worker_loop, train_loop_config={"method": method, "config": dataclasses.asdict(cfg),
                                        "local_shuffle": train_order(cfg, needs)[1],
                                        "resume_from": resume_from}, datasets=datasets,
        dataset_config=ray.train.DataConfig(datasets_to_split=["train"]),
        scaling_config=ray.train.ScalingConfig(num_workers=run.num_workers, use_gpu=run.use_gpu,
                                               resources_per_worker=resources),
        run_config=ray.train.RunConfig(name=run.name, storage_path=storage_uri(run.storage_path),
                                       failure_config=ray.train.FailureConfig(max_failures=run.max_failures),
                                       checkpoint_config=ray.train.CheckpointConfig(num_to_keep=run.keep_checkpoints),
                                       callbacks=[*(callbacks or []), *tracking]),
    )
    with ending_runs(tracking), full_disk_named(run_dir):
        result = trainer.fit()
    write_curves(result, run)
    return TrainRun(result, cfg)


@contextmanager
def full_disk_named(run_dir: Path):
    """A run that failed because its storage filled up or turned read-only, as an error naming the run folder: Ray
    Train's controller reports its own failed write without the path (the worker's error names the checkpoint)."""
    import errno
    import os

    from fas.integrity import storage_error

    try:
        yield
    except Exception as exc:
        texts = " ".join(str(e) for e in (exc, exc.__cause__, exc.__context__) if e is not None)
        for code in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
            if os.strerror(code) in texts:
                raise storage_error(run_dir, OSError(code, os.strerror(code))) from exc
        raise


def write_curves(result, run) -> Path | None:
    """``RUN/curves.png`` from the last checkpoint's history (local storage; remote runs keep the history only)."""
    import json

    from fas.eval.plots import plot_training_curves

    checkpoint = getattr(result, "checkpoint", None)
    if checkpoint is None or "://" in checkpoint.path:
        return None
    state = Path(checkpoint.path) / "train_state.json"
    if not state.is_file():
        return None
    history = json.loads(state.read_text()).get("history", [])
    if not history:
        return None
    return plot_training_curves(history, run.unit, Path(checkpoint.path).parent / "curves.png", title=run.name)
