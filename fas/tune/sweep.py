"""Hyperparameter sweeps: a Ray Tune ``Tuner`` whose trials each run one method's ``TorchTrainer``.

A search space is a YAML file (``tune_spaces/*.yaml``)::

    method: pdle                  # a registered method (fas.methods): clipc8, pdle, oanet, ...
    base_config: pdle_tiny.yaml   # the method's config every trial starts from
    metric: val_auc               # reported by the training loop on the source-side validation rows
    mode: max
    params:                       # config fields -> one of grid / choice / uniform / loguniform / randint
      k: {grid: [2, 3, 4]}
    fixed:                        # optional: config fields every trial sets (e.g. the generator of the cues)
      alpha: 0.5

A space may train an ``upstream`` run first in every trial and hand its checkpoint to the trial's config, so that
a parameter of the upstream method is swept end to end (AG-FAS's real-face fraction: generator -> cues -> OA-Net)::

    upstream:
      method: dfg                   # trained first, in the trial's folder
      base_config: dfg.yaml
      params: [real_face_fraction]  # the trial parameters that configure it (not the main method)
      fixed: {cache: cache/real_faces}
      into: generator               # the main config's field that receives the upstream run

Trials report ``val_auc`` / ``val_hter`` every epoch (``fas.engine.validation``): the protocol's threshold rows,
never its test domain. ``asha: true`` stops weak trials early. A sweep whose folder exists is resumed with
``Tuner.restore``: finished trials are kept, unfinished ones continue from their last checkpoint.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import yaml

SAMPLERS = ("grid", "choice", "uniform", "loguniform", "randint")


@dataclasses.dataclass
class SweepConfig:
    space: str = "tune_spaces/pdle_k.yaml"
    name: str | None = None  # default: the space file's stem
    storage_path: str = "runs/sweeps"
    cache: str | None = None  # overrides the base config's cache
    protocol: str | None = None  # overrides the base config's protocol
    epochs: int | None = None
    num_samples: int = 1  # repeats of the grid (or samples of the random parameters)
    asha: bool = False
    grace_period: int = 1
    max_concurrent_trials: int = 1
    trial_workers: int | None = None  # Ray Train workers per trial (default: the base config's)
    trial_cpus_per_worker: float | None = None  # default: the base config's
    address: str | None = None
    # log every trial's reports and params to MLflow with Ray Tune's MLflowLoggerCallback: true = a file store in
    # SWEEP/mlruns (experiment = the sweep's name, one MLflow run per trial), or a tracking URI; needs fas[mlflow]
    mlflow: bool | str = False


def read_space(path: str | Path) -> dict:
    from fas.methods import method_names

    space = yaml.safe_load(Path(path).read_text())
    if not isinstance(space, dict) or space.get("method") not in method_names():
        raise ValueError(f"{path}: 'method' must be one of {method_names()}")
    for key in ("base_config", "metric", "mode", "params"):
        if key not in space:
            raise ValueError(f"{path}: missing '{key}'")
    if space["mode"] not in ("min", "max"):
        raise ValueError(f"{path}: mode must be min or max")
    for name, spec in space["params"].items():
        if not isinstance(spec, dict) or len(spec) != 1 or next(iter(spec)) not in SAMPLERS:
            raise ValueError(f"{path}: params.{name} must be one of {{{', '.join(SAMPLERS)}: ...}}")
    upstream = space.get("upstream")
    if upstream is not None:
        missing = [k for k in ("method", "base_config", "into") if k not in upstream]
        if missing or upstream["method"] not in method_names():
            raise ValueError(f"{path}: upstream needs method (one of {method_names()}), base_config and into; "
                             f"missing {missing}")
        strays = sorted(set(upstream.get("params", [])) - set(space["params"]))
        if strays:
            raise ValueError(f"{path}: upstream.params {strays} are not among the swept params")
    return space


def param_space(params: dict) -> dict:
    from ray import tune

    out = {}
    for name, spec in params.items():
        (kind, value), = spec.items()
        out[name] = {"grid": tune.grid_search, "choice": tune.choice}[kind](list(value)) if kind in ("grid", "choice") \
            else getattr(tune, kind)(*value)
    return out


def trial_overrides(space: dict, cfg: SweepConfig) -> dict:
    """What every trial sets on top of the base config: the space's ``fixed`` block, then the sweep's flags."""
    given = {"cache": cfg.cache, "protocol": cfg.protocol, "epochs": cfg.epochs,
             "num_workers": cfg.trial_workers, "cpus_per_worker": cfg.trial_cpus_per_worker}
    return {**space.get("fixed", {}), **{k: v for k, v in given.items() if v is not None}}


def make_trial(space: dict, cfg: SweepConfig, trial_storage: str):
    """The per-trial driver: the method's config plus the trial's parameters, trained as one TorchTrainer."""
    from fas.methods import get_method

    method, base = get_method(space["method"]), space["base_config"]  # the record travels with the driver
    overrides = trial_overrides(space, cfg)
    upstream = space.get("upstream")
    upstream_method = get_method(upstream["method"]) if upstream else None

    def run_trial(params: dict) -> None:
        import ray.tune
        from ray.tune.integration.ray_train import TuneReportCallback

        from fas.config import replace
        from fas.engine import train

        trial_id, params = ray.tune.get_context().get_trial_id(), dict(params)
        if upstream:  # e.g. the generator whose cues this trial's OA-Net reads, trained with the trial's values
            mine = {k: params.pop(k) for k in upstream.get("params", [])}
            first = upstream_method.load_config(upstream["base_config"], {**upstream.get("fixed", {}), **mine})
            first = replace(first, name=f"{trial_id}_{upstream['method']}", storage_path=trial_storage,
                            max_failures=0)
            params[upstream["into"]] = train(first).checkpoint.path
        trial_cfg = method.load_config(base, {**overrides, **params})
        trial_cfg = replace(trial_cfg, name=trial_id, storage_path=trial_storage, validate=True, max_failures=0)
        train(trial_cfg, callbacks=[TuneReportCallback()])

    return run_trial


def run_sweep(cfg: SweepConfig):
    """Run (or resume) the sweep; write its results table and plot. Returns the ``ResultGrid``."""
    from ray import tune

    from fas.ray_utils import init_ray, storage_uri

    space = read_space(cfg.space)
    name = cfg.name or Path(cfg.space).stem
    storage = storage_uri(cfg.storage_path)
    init_ray(cfg.address)
    # the trial driver only waits on its TorchTrainer, so it holds almost no CPU; leave whole CPUs for the data
    # stages (a read or shuffle task takes one) when sizing trial_cpus_per_worker
    trainable = tune.with_resources(make_trial(space, cfg, f"{storage}/{name}_trials"), {"CPU": 0.01})
    experiment = f"{storage}/{name}"
    callbacks = mlflow_callbacks(cfg.mlflow, experiment, name)
    if tune.Tuner.can_restore(experiment):
        print(f"resuming sweep {experiment} (finished trials are kept)")
        tuner = tune.Tuner.restore(experiment, trainable=trainable, resume_errored=True)
    else:
        scheduler = None
        if cfg.asha:
            from ray.tune.schedulers import ASHAScheduler

            scheduler = ASHAScheduler(time_attr="training_iteration", grace_period=cfg.grace_period)
        tuner = tune.Tuner(
            trainable, param_space=param_space(space["params"]),
            tune_config=tune.TuneConfig(metric=space["metric"], mode=space["mode"], num_samples=cfg.num_samples,
                                        scheduler=scheduler, max_concurrent_trials=cfg.max_concurrent_trials),
            run_config=tune.RunConfig(name=name, storage_path=storage, callbacks=callbacks))
    results = tuner.fit()
    write_sweep_report(results, space, Path(cfg.storage_path) / name if "://" not in storage else Path(name))
    return results


def mlflow_callbacks(setting: bool | str, experiment: str, name: str) -> list:
    """Ray Tune's own ``MLflowLoggerCallback`` when the sweep asks for MLflow (one MLflow run per trial: its config
    as params, each report as metrics by training iteration); none otherwise."""
    from fas.engine.tracking import allow_file_store, mlflow_uri

    uri = mlflow_uri(setting, experiment)
    if uri is None:
        return []
    from ray.air.integrations.mlflow import MLflowLoggerCallback

    allow_file_store(uri)  # Tune's logger callbacks run here, in the driver
    return [MLflowLoggerCallback(tracking_uri=uri, experiment_name=name)]


def error_line(error) -> str:
    """The last line of a trial's error (the exception itself, below Ray's traceback), short enough for a table."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return (lines[-1] if lines else type(error).__name__)[:200]


def results_table(results, space: dict):
    """One row per trial: its parameters, its best epoch's metric and the last epoch's validation numbers; when a
    trial errored, an ``error`` column with what went wrong."""
    import pandas as pd

    metric, rows = space["metric"], []
    for result in results:
        metrics, history = result.metrics or {}, result.metrics_dataframe
        column = history[metric] if history is not None and metric in history else pd.Series(dtype=float)
        row = {name: result.config.get(name) for name in space["params"]}
        row.update({f"best_{metric}": column.max() if space["mode"] == "max" else column.min(),
                    "epochs": int(metrics.get("epoch", -1)) + 1,
                    **{k: metrics.get(k) for k in ("val_auc", "val_hter", "loss")},
                    "status": "error" if result.error else "done", "error": error_line(result.error) if result.error
                    else ""})
        rows.append(row)
    table = pd.DataFrame(rows).sort_values(list(space["params"])).reset_index(drop=True)
    return table if (table["status"] == "error").any() else table.drop(columns="error")


def best_trial(table, space: dict) -> int | None:
    """Row index of the best trial by the sweep's metric and mode (errored trials never win); None when no trial
    finished with the metric."""
    metric = table[f"best_{space['metric']}"].where(table["status"] == "done")
    if metric.isna().all():
        return None
    return int(metric.idxmax() if space["mode"] == "max" else metric.idxmin())


def sweep_markdown(table, space: dict) -> str:
    """Every trial, one row each, the best one marked (or, when none finished, said so); the swept values first."""
    best = best_trial(table, space)
    header = ["best"] + list(table.columns)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(["**best**" if i == best else ""] +
                                [f"{v:.4f}" if isinstance(v, float) else str(v).replace("|", "\\|") for v in row])
              + " |" for i, row in enumerate(table.itertuples(index=False))]
    if best is None:
        summary = (f"No trial finished (none completed with a {space['metric']}): "
                   f"{(table['status'] == 'error').sum()} of {len(table)} trials errored.")
    else:
        params = ", ".join(f"{p} = {table.loc[best, p]}" for p in space["params"])
        summary = (f"Best trial: {params} ({space['metric']} {table.loc[best, f'best_' + space['metric']]:.4f}); "
                   f"{len(table)} trials.")
    return (f"# Sweep: {space['method']} ({space['metric']}, {space['mode']})\n\n{summary}\n\n"
            + "\n".join(lines) + "\n")


def write_sweep_report(results, space: dict, folder: Path) -> dict[str, Path]:
    """``results.csv``, ``results.md`` and ``<metric>_vs_<param>.png`` (like PDLE's Fig. 3 for K, AG-FAS's
    Table VI for the noising depth): every trial listed, the best marked."""
    from fas.eval.plots import plot_sweep

    folder.mkdir(parents=True, exist_ok=True)
    table = results_table(results, space)
    paths = {"csv": folder / "results.csv", "md": folder / "results.md"}
    table.to_csv(paths["csv"], index=False)
    paths["md"].write_text(sweep_markdown(table, space))
    param, best = next(iter(space["params"])), best_trial(table, space)
    if best is not None:  # nothing to plot when no trial finished
        paths["plot"] = plot_sweep(table, param, space["metric"], best, folder / f"{space['metric']}_vs_{param}.png",
                                   title=space["method"])
    return paths
