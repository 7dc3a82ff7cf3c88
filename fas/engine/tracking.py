"""Opt-in TensorBoard logging (``tensorboard: true`` in a run's config): every checkpoint's report written as
scalars to ``RUN/tensorboard`` with tensorboardX (what Ray Tune's own ``TBXLoggerCallback`` writes with), for
people who follow their runs there. A Ray Train callback, so it runs once, on the controller, whatever the
number of workers; the training loop knows nothing of it."""

from __future__ import annotations

from pathlib import Path

import ray.train

TENSORBOARD_DIR = "tensorboard"


class TensorBoardCallback(ray.train.UserCallback):
    """Rank 0's reported numbers as scalars, indexed by the run's unit (step or epoch) at the checkpoint."""

    def __init__(self, run_dir: str | Path, unit: str):
        self.folder, self.unit, self.writer = Path(run_dir) / TENSORBOARD_DIR, unit, None

    def after_report(self, run_context, metrics, checkpoint) -> None:
        from tensorboardX import SummaryWriter

        if not metrics:
            return
        if self.writer is None:
            self.writer = SummaryWriter(str(self.folder))
        report = metrics[0]
        index = int(report.get(self.unit, report.get("step", 0)))
        for name, value in report.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and name != self.unit:
                self.writer.add_scalar(f"train/{name}", float(value), index)
        self.writer.flush()

    def after_exception(self, run_context, worker_exceptions) -> None:
        if self.writer is not None:
            self.writer.flush()
