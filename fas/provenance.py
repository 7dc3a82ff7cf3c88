"""What a run was: its full config and the package versions, written into its folder when it starts, and read back
by evaluation, so a report says which training (method, engine, DeepSpeed stage, precision, length, data) it
evaluated and with which libraries.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import platform
import time
from pathlib import Path
from typing import Sequence

import yaml

RUN_CONFIG = "config.yaml"
VERSION_PACKAGES = ("fas", "torch", "ray", "deepspeed", "open_clip_torch", "timm", "diffusers", "onnxruntime",
                    "numpy", "scikit-learn", "pandas")


def package_versions(packages: Sequence[str] = VERSION_PACKAGES) -> dict[str, str]:
    """Installed versions (read from package metadata, so torch and ray are not imported); absent ones omitted."""
    out = {"python": platform.python_version()}
    for name in packages:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


def run_record(cfg, method) -> dict:
    """Every field of the run's config (engine included), the DeepSpeed config its workers build, the versions."""
    from fas.engine.backends import deepspeed_config, effective_zero_stage

    run = cfg.engine
    record = {"method": method.name, "config": dataclasses.asdict(cfg)}
    if run.backend == "deepspeed":
        batch = getattr(cfg, method.batch_field, None)
        stage = effective_zero_stage(run.zero_stage, run.num_workers)
        record["deepspeed"] = deepspeed_config(batch, stage, run.half, getattr(cfg, "grad_clip", None))
    record["package_versions"] = package_versions()
    return json.loads(json.dumps(record, default=str))  # plain YAML types (tuples, paths, enums) for safe_dump


def write_run_config(run_dir: str | Path, cfg, method) -> Path | None:
    """``RUN_DIR/config.yaml`` at the start of a run; a resume with another config keeps the earlier one beside it
    (``config.<time>.yaml``). Remote storage (a URI) is left to Ray: nothing is written, None is returned."""
    if "://" in str(run_dir):
        return None
    path = Path(run_dir) / RUN_CONFIG
    path.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(run_record(cfg, method), sort_keys=False)
    if path.exists() and path.read_text() != text:
        stamp = time.strftime("%Y%m%dT%H%M%S", time.localtime(path.stat().st_mtime))
        path.replace(path.with_name(f"config.{stamp}.yaml"))
    path.write_text(text)
    return path


def training_record(checkpoint: str | Path) -> dict | None:
    """The ``config.yaml`` of the run a checkpoint folder came from (the folder itself or a parent, as Ray Train
    lays out ``RUN/checkpoint_*``); None for a folder published without its run."""
    folder = Path(checkpoint).resolve()
    for candidate in (folder, *list(folder.parents)[:2]):
        path = candidate / RUN_CONFIG
        if path.is_file():
            record = yaml.safe_load(path.read_text())
            if isinstance(record, dict) and "config" in record and "method" in record:
                return {"path": str(path), **record}
    return None


def training_summary(record: dict | None) -> str | None:
    """One line for a report's header: what training the evaluated checkpoint came from."""
    if not record:
        return None
    cfg, engine = record["config"], record["config"].get("engine", {})
    length = f"{engine['steps']} steps" if engine.get("steps") is not None else f"{engine.get('epochs')} epochs"
    stage = f", ZeRO-{engine.get('zero_stage')}" if engine.get("backend") == "deepspeed" else ""
    return (f"{record['method']} ({cfg.get('model', '')}), {engine.get('backend')}{stage}, "
            f"precision {engine.get('precision')}, {length} on {engine.get('num_workers')} workers, cache "
            f"{cfg.get('cache')}, protocol {cfg.get('protocol') or 'train split'}")
