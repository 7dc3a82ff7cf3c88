"""Opt-in experiment tracking, for people who follow their runs in TensorBoard or MLflow rather than in
``RUN/curves.png``: every checkpoint's report written as it arrives.

- ``tensorboard: true``: scalars in ``RUN/tensorboard`` with tensorboardX (what Ray Tune's own
  ``TBXLoggerCallback`` writes with).
- ``mlflow: true`` (or a tracking URI): one MLflow run per training run in a local file store,
  ``file:RUN/mlruns`` (no server), experiment = the run's name; the run's config as params, each report's numbers
  as metrics by step or epoch. A rerun with the same name (a resume) continues the same MLflow run.

Both are Ray Train callbacks, so they run once, on the controller, whatever the number of workers; the training
loop knows nothing of them. Sweeps use Ray Tune's own ``MLflowLoggerCallback`` (``fas.tune.sweep``).
"""

from __future__ import annotations

import importlib.util
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Mapping

import ray.train

TENSORBOARD_DIR = "tensorboard"
MLFLOW_DIR = "mlruns"
FALSE, TRUE = ("false", "0", "no", "off", ""), ("true", "1", "yes", "on")


def report_scalars(metrics: list[dict], unit: str) -> tuple[int, dict[str, float]] | None:
    """Rank 0's report as (index in the run's unit, its other numbers); None when nothing was reported."""
    if not metrics:
        return None
    report = metrics[0]
    index = int(report.get(unit, report.get("step", 0)))
    return index, {name: float(value) for name, value in report.items()
                   if isinstance(value, (int, float)) and not isinstance(value, bool) and name != unit}


class TensorBoardCallback(ray.train.UserCallback):
    """Rank 0's reported numbers as scalars, indexed by the run's unit (step or epoch) at the checkpoint."""

    def __init__(self, run_dir: str | Path, unit: str):
        self.folder, self.unit, self.writer = Path(run_dir) / TENSORBOARD_DIR, unit, None

    def after_report(self, run_context, metrics, checkpoint) -> None:
        from tensorboardX import SummaryWriter

        scalars = report_scalars(metrics, self.unit)
        if scalars is None:
            return
        if self.writer is None:
            self.writer = SummaryWriter(str(self.folder))
        index, values = scalars
        for name, value in values.items():
            self.writer.add_scalar(f"train/{name}", value, index)
        self.writer.flush()

    def after_exception(self, run_context, worker_exceptions) -> None:
        if self.writer is not None:
            self.writer.flush()


def mlflow_uri(setting: bool | str, run_dir: str | Path) -> str | None:
    """The tracking URI an engine's ``mlflow`` setting means: off (None), ``file:RUN/mlruns``, or the URI given."""
    if isinstance(setting, str) and setting.strip().lower() in FALSE + TRUE:
        setting = setting.strip().lower() in TRUE
    if setting is False or setting is None:
        return None
    if setting is True:
        if "://" in str(run_dir):
            raise ValueError(f"mlflow: true keeps a file store in the run folder, but the run is stored at {run_dir}: "
                             "give mlflow a tracking URI (a local file:/... folder or an MLflow server) instead")
        return (Path(run_dir).resolve() / MLFLOW_DIR).as_uri()
    if not isinstance(setting, str) or ":" not in setting:
        raise ValueError(f"mlflow must be true, false or a tracking URI (file:/..., http://...), got {setting!r}")
    return setting


def allow_file_store(uri: str) -> None:
    """MLflow 3 refuses its file store (kept, "in maintenance mode") unless told otherwise; skinny MLflow has no
    SQL store to use instead, and a file store is what a local run without a server needs."""
    if uri.startswith("file:"):
        os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"


def flat_params(config: Mapping, prefix: str = "") -> dict[str, str]:
    """A nested config as MLflow params: dotted keys (``engine.num_workers``), values as text."""
    out = {}
    for key, value in config.items():
        if isinstance(value, Mapping):
            out.update(flat_params(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = str(value)
    return out


class MLflowCallback(ray.train.UserCallback):
    """Rank 0's reported numbers as MLflow metrics, indexed by the run's unit (step or epoch) at the checkpoint."""

    def __init__(self, uri: str, name: str, unit: str, params: Mapping):
        self.uri, self.name, self.unit, self.params = uri, name, unit, flat_params(params)
        self.client, self.run_id = None, None

    def _open(self) -> None:
        """The experiment and the run named after the training run: found (a resume) or made, with its params."""
        from mlflow.tracking import MlflowClient

        allow_file_store(self.uri)  # in this (the controller's) process
        self.client = MlflowClient(tracking_uri=self.uri)
        experiment = self.client.get_experiment_by_name(self.name)
        experiment_id = experiment.experiment_id if experiment else self.client.create_experiment(self.name)
        runs = self.client.search_runs([experiment_id], filter_string=f"attributes.run_name = '{self.name}'",
                                       max_results=1)
        if runs:
            self.run_id = runs[0].info.run_id
            self.client.update_run(self.run_id, status="RUNNING")
            return
        self.run_id = self.client.create_run(experiment_id, run_name=self.name).info.run_id
        from mlflow.entities import Param

        self.client.log_batch(self.run_id, params=[Param(k, v) for k, v in self.params.items()])

    def after_report(self, run_context, metrics, checkpoint) -> None:
        from mlflow.entities import Metric

        scalars = report_scalars(metrics, self.unit)
        if scalars is None:
            return
        if self.client is None:
            self._open()
        index, values = scalars
        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(k, v, now, index) for k, v in values.items()])

    def end(self, failed: bool) -> None:
        """Close the MLflow run; the driver calls it after ``fit`` (Ray Train has no end-of-run callback, and the
        controller holds its own copy of this object)."""
        if self.client is None:
            self._open()
        self.client.set_terminated(self.run_id, status="FAILED" if failed else "FINISHED")


def tracking_callbacks(cfg, run_dir: str | Path) -> list:
    """The callbacks a run's config asks for (``tensorboard``, ``mlflow``); errors before any worker starts."""
    import dataclasses

    run, callbacks = cfg.engine, []
    if run.tensorboard:
        callbacks.append(TensorBoardCallback(run_dir, run.unit))
    uri = mlflow_uri(run.mlflow, run_dir)
    if uri is not None:
        if importlib.util.find_spec("mlflow") is None:
            raise ValueError("mlflow: true needs MLflow installed: pip install 'fas[mlflow]' (mlflow-skinny)")
        callbacks.append(MLflowCallback(uri, run.name, run.unit, dataclasses.asdict(cfg)))
    return callbacks


@contextmanager
def ending_runs(callbacks: list):
    """Around ``fit``: the MLflow run among ``callbacks`` closed as finished, or as failed when ``fit`` raises."""
    ending = [c for c in callbacks if isinstance(c, MLflowCallback)]
    try:
        yield
    except BaseException:
        for callback in ending:
            callback.end(failed=True)
        raise
    for callback in ending:
        callback.end(failed=False)
