"""``fas doctor``: what a run needs, found or missing, before it starts on a cluster.

Python, torch, CUDA and the GPUs; for each config every pretrained file it needs (the same ``WeightRef``s the
model code resolves, so a file the doctor finds is the file training loads) and its frame cache; the Ray cluster
when an address is given. Each missing thing comes with the command or path that supplies it; the exit status is
non-zero while anything is missing.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import socket
from pathlib import Path

import yaml


@dataclasses.dataclass
class Check:
    what: str
    ok: bool
    detail: str  # where it was found, or how to supply it

    def line(self) -> str:
        return f"  {'ok     ' if self.ok else 'MISSING'}  {self.what}: {self.detail}"


def method_for_config(spec: str):
    """``(method, path)`` for ``METHOD=FILE`` or a FILE whose method is plain from its file or run name (a
    method's own default or tiny config, ``name: clipc8``) or from which method's config alone accepts it."""
    from fas.config import ConfigError, load_config, resolve_config_path
    from fas.methods import get_method, method_names

    name, sep, path = spec.partition("=")
    if sep:
        return get_method(name), path
    path, data = spec, yaml.safe_load(resolve_config_path(spec).read_text()) or {}
    methods = [get_method(n) for n in method_names(with_aliases=False)]
    for method in methods:
        names = {method.name, *method.aliases}
        if Path(path).name in (method.default_config, method.tiny_config) or data.get("name") in names:
            return method, path
    fits = []
    for method in methods:
        try:
            load_config(method.config, path)
            fits.append(method)
        except ConfigError:
            continue
    if len(fits) != 1:
        raise ValueError(f"cannot tell which method {path} configures ({[m.name for m in fits] or 'none fits'}); "
                         f"write METHOD={path} with METHOD one of {method_names(with_aliases=False)}")
    return fits[0], path


def config_checks(spec: str) -> tuple[str, list[Check]]:
    """The pretrained files and the frame cache one config needs."""
    from fas.methods.base import resolve

    method, path = method_for_config(spec)
    cfg = method.load_config(path)
    checks = []
    for ref in resolve(method.weights)(cfg):
        found = ref.locate()
        checks.append(Check(f"{ref.what} ({ref.source})", bool(found), found or f"supply it: {ref.supply()}"))
    checks.append(cache_check(cfg.cache))
    return f"{method.name} ({path})", checks


def cache_check(cache: str) -> Check:
    root = Path(cache)
    if not cache:
        return Check("frame cache", False, "the config names none: set cache: to a folder `fas prepare` wrote")
    shards = sorted(root.glob("**/*.parquet")) if root.is_dir() else []
    readable = bool(shards) and all(os.access(p, os.R_OK) for p in shards)
    detail = (f"{root.resolve()} ({len(shards)} Parquet files)" if readable else
              f"{root} holds no readable Parquet files: write it with `fas prepare MANIFEST --out {cache}` (frames; "
              "a manifest from `fas manifest DATASET ROOT`) or jobs/make_cues.py (AG-FAS cues), or set cache:")
    return Check(f"frame cache {cache}", readable, detail)


def runtime_lines() -> list[str]:
    import torch

    lines = [f"python {platform.python_version()}, torch {torch.__version__}, CUDA "
             f"{torch.version.cuda or 'none (CPU build)'}"]
    for i in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(i)
        lines.append(f"GPU {i}: {props.name}, {props.total_memory / 2**30:.1f} GiB")
    if not torch.cuda.is_available():
        lines.append("no GPU visible to torch here (configs with use_gpu: true need GPUs on the cluster's workers)")
    return lines


def cluster_check(address: str | None, timeout: float = 3.0) -> Check:
    """Connect to the Ray cluster at ``address`` (host:port of its GCS) and list the GPUs it schedules."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout).close()
    except (OSError, ValueError) as error:
        return Check(f"Ray cluster {address}", False, f"not reachable ({error}); start it with `ray start --head` "
                     "or `ray up cluster.yaml`, or fix RAY_ADDRESS / --address")
    import ray

    ray.init(address=address, log_to_driver=False, logging_level="ERROR")
    try:
        resources = ray.cluster_resources()
        nodes = sum(1 for n in ray.nodes() if n["Alive"])
    finally:
        ray.shutdown()
    return Check(f"Ray cluster {address}", True, f"{nodes} nodes, {resources.get('CPU', 0):g} CPUs, "
                 f"{resources.get('GPU', 0):g} GPUs")


def run_doctor(configs: list[str], address: str | None = None, out=print) -> int:
    """Print every check; 0 when nothing is missing, 1 with the list of what is missing otherwise."""
    from fas.methods import get_method, method_names

    configs = configs or [get_method(n).default_config for n in method_names(with_aliases=False)]
    for line in runtime_lines():
        out(line)
    missing = []
    for spec in configs:
        title, checks = config_checks(spec)
        out(title)
        for check in checks:
            out(check.line())
        missing += [f"{title}: {c.what}" for c in checks if not c.ok]
    address = address or os.environ.get("RAY_ADDRESS")
    if address and address != "auto":
        check = cluster_check(address)
        out(check.line())
        missing += [] if check.ok else [check.what]
    else:
        out("  Ray cluster: no address given (--address or RAY_ADDRESS): jobs start an embedded cluster")
    if missing:
        out(f"\n{len(missing)} missing:")
        for item in missing:
            out(f"  - {item}")
        return 1
    out("\nnothing missing")
    return 0
