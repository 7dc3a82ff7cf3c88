"""Serve against the in-process loop on the fused graph, with nothing trained: what ``fas bench`` reports.

``serve_bench`` writes untrained tiny model folders through the methods' own code (CLIPC8's zero-shot export of
its tiny config, PDLE's tiny config), serves them fused on an embedded Ray cluster, and times concurrency 1 and
concurrency 8 over loopback HTTP beside the same work in a plain loop in this process (``fas.serve.load``), with
the same CPUs: the replicas reserve the cluster's CPUs on this machine and the loop's torch and OpenCV threads
are set to that count. The phases alternate in rounds, so that load from other processes on the machine falls on
both sides alike, and the CPU time of this process and its children (the embedded cluster) is counted per
request: it says what bounds the figures when the wall clock is noisy.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from pathlib import Path

APP_NAME, ROUTE = "fas_bench", "/fas_bench"
METRICS = {"threshold": 0.5, "threshold_rule": "untrained bench model: fixed 0.5"}


@dataclasses.dataclass(frozen=True)
class BenchSize:
    """Requests per round: Serve at concurrency 1 and 8, and the in-process loop beside each."""

    rounds: int
    c1: int
    c8: int
    loop: int  # in-process requests beside each Serve phase
    max_seconds: float = 60.0  # cap per phase


SIZES = {"smallest": BenchSize(rounds=1, c1=3, c8=8, loop=3), "full": BenchSize(rounds=4, c1=30, c8=120, loop=30)}


def build_model_folders(root: Path) -> dict[str, Path]:
    """Untrained CLIPC8 (scores the whole frame) and PDLE (scores the face crop) folders, written by the methods'
    own export code from their tiny configs: the serving cost of the fused graph does not depend on training."""
    import torch

    from fas.methods import get_method
    from fas.methods.base import write_model_folder
    from fas.methods.clipc8.task import export_zero_shot
    from fas.methods.pdle.model import create_pdle
    from fas.methods.pdle.task import portable_meta

    torch.manual_seed(0)
    clipc8, pdle = get_method("clipc8"), get_method("pdle")
    folders = {"clipc8": root / "clipc8", "pdle": root / "pdle"}
    export_zero_shot(clipc8.load_config(clipc8.tiny_config, {"pretrained": None}), folders["clipc8"])
    cfg = pdle.load_config(pdle.tiny_config)
    write_model_folder(folders["pdle"], create_pdle(cfg.model, None, cfg.num_levels).state_dict(), portable_meta(cfg))
    for folder in folders.values():
        (folder / "metrics.json").write_text(json.dumps(METRICS))
    return folders


def fused_args(folders: dict[str, Path], cpus: float) -> dict:
    """serve/config_fused.yaml's graph with fixed replicas: half the CPUs to the ingress (validation + face
    detection, the heaviest step), the rest shared by the model replicas."""
    per_model = {"num_replicas": 1, "ray_actor_options": {"num_cpus": cpus / 2 / len(folders)}}
    inputs = {"clipc8": "frame", "pdle": "face"}
    models = [{"name": n, "path": str(p), "input": inputs[n], "max_batch_size": 8, "batch_wait_timeout_s": 0.01,
               "deployment": per_model} for n, p in folders.items()]
    return {"models": models, "face": {"detector": "haar", "size": 128},
            "ingress_deployment": {"num_replicas": 1, "ray_actor_options": {"num_cpus": cpus / 2},
                                   "max_ongoing_requests": 32}}


class CpuMeter:
    """CPU seconds of this process and its children (the embedded cluster's raylet, GCS, Serve replicas and
    proxy), which other processes' load does not inflate the way it inflates the wall clock."""

    def __init__(self):
        import psutil

        self.root = psutil.Process()
        self.seen: dict[int, float] = {}

    def total(self) -> float:
        import psutil

        for proc in [self.root, *self.root.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                times = proc.cpu_times()
                self.seen[proc.pid] = times.user + times.system + times.children_user + times.children_system
        return sum(self.seen.values())


class Rounds:
    """Alternating Serve and in-process phases; keeps each side's latencies, wall time and CPU time."""

    def __init__(self, url: str, image: bytes, pipeline, cpus: int, size: BenchSize):
        self.url, self.image, self.pipeline, self.cpus, self.size = url, image, pipeline, cpus, size
        self.meter = CpuMeter()
        self.sides = {key: {"lat": [], "wall": 0.0, "cpu": 0.0, "failed": 0}
                      for key in ("c1_serve", "c1_loop", "c8_serve", "c8_loop")}

    def _add(self, key: str, latencies: list[float], failed: int, wall_s: float, cpu_s: float) -> None:
        side = self.sides[key]
        side["lat"] += latencies
        side["failed"] += failed
        side["wall"] += wall_s
        side["cpu"] += cpu_s

    def serve(self, key: str, requests: int, concurrency: int) -> None:
        from fas.serve.load import http_requests

        cpu = self.meter.total()
        results, wall = http_requests(self.url, self.image, requests, concurrency, self.size.max_seconds)
        ok = [t for t, status in results if status == 200]
        self._add(key, ok, len(results) - len(ok), wall, self.meter.total() - cpu)

    def loop(self, key: str) -> None:
        from fas.serve.load import loop_latencies

        cpu = self.meter.total()
        latencies, wall = loop_latencies(self.pipeline, self.image, self.size.loop, self.size.max_seconds, self.cpus)
        self._add(key, latencies, 0, wall, self.meter.total() - cpu)

    def run(self) -> "Rounds":
        for _ in range(self.size.rounds):
            self.serve("c1_serve", self.size.c1, 1)
            self.loop("c1_loop")
            self.serve("c8_serve", self.size.c8, 8)
            self.loop("c8_loop")
        return self


def summary(rounds: Rounds) -> dict:
    """The flat figures: p50 and req/s of each side, requests sent and failed, CPU ms per request, and the wall
    and CPU seconds of all the side's phases together (what req/s and CPU ms per request are computed from)."""
    import numpy as np

    out = {}
    for key, side in rounds.sides.items():
        n = len(side["lat"])
        out[f"{key}_requests"] = n + side["failed"]
        out[f"{key}_failed"] = side["failed"]
        out[f"{key}_p50_ms"] = float(np.percentile(side["lat"], 50) * 1000) if n else None
        out[f"{key}_rps"] = n / side["wall"] if side["wall"] else 0.0
        out[f"{key}_cpu_ms_per_request"] = side["cpu"] * 1000 / n if n else None
        out[f"{key}_wall_s"] = side["wall"]
        out[f"{key}_cpu_s"] = side["cpu"]
    return {k.replace("_loop", "_in_process"): v for k, v in out.items()}


def bound(figures: dict, cpus: int) -> str:
    """One sentence on what limits the concurrency-8 figure, from the CPU each side spent per request."""
    import os

    serve_cpu, loop_cpu = figures["c8_serve_cpu_ms_per_request"], figures["c8_in_process_cpu_ms_per_request"]
    if not serve_cpu or not loop_cpu:
        return "no successful requests to measure"
    ceiling = cpus * 1000 / serve_cpu
    load = os.getloadavg()[0]
    return (f"CPU on {cpus} cores: Serve spends {serve_cpu:.0f} ms of CPU per request (HTTP client, proxy, ingress "
            f"with the face detector, model replicas, Ray) against {loop_cpu:.0f} ms in-process, so at most "
            f"{ceiling:.1f} req/s on an idle machine; load average {load:.1f} during the run"
            + (" (other processes took CPU from both sides)" if load > cpus else ""))


@contextlib.contextmanager
def fused_app(work_dir: Path, address: str | None, port: int):
    """The fused application on Ray (embedded unless ``address``); yields (app args, URL, CPUs); takes down what
    it started."""
    import ray
    from ray import serve

    from fas.ray_utils import init_ray
    from fas.serve.load import LoadConfig, deploy, local_cpus

    from ray.serve.context import _get_global_client

    started_ray = not ray.is_initialized()
    init_ray(address)
    started_serve = _get_global_client(raise_if_no_controller_running=False) is None
    try:
        cpus = local_cpus()
        free = min(cpus, ray.available_resources().get("CPU", cpus))
        args = fused_args(build_model_folders(work_dir / "models"), free)
        url = deploy(args, LoadConfig(app_name=APP_NAME, route_prefix=ROUTE), port)
        try:
            yield args, url, cpus
        finally:
            serve.delete(APP_NAME)
            if started_serve:  # a later serve.start elsewhere in this cluster must get the port it asks for
                serve.shutdown()
    finally:
        if started_ray:
            ray.shutdown()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_bench(work_dir: Path, size: str = "full", address: str | None = None) -> dict:
    """Concurrency 1 and 8 through Serve beside the in-process loop, same CPUs, fused CLIPC8 + PDLE, untrained.

    ``size``: ``smallest`` (a handful of requests, for a test) or ``full`` (about 3 minutes on 2 cores).
    """
    from fas.serve.load import InProcessPipeline, default_image, http_load

    if size not in SIZES:
        raise ValueError(f"size {size!r} is not one of {list(SIZES)}")
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    image = default_image()
    with fused_app(work_dir, address, free_port()) as (args, url, cpus):
        pipeline = InProcessPipeline(args)
        pipeline(image)  # warm-up of both sides
        http_load(url, image, 16, 8, SIZES[size].max_seconds)
        figures = summary(Rounds(url, image, pipeline, cpus, SIZES[size]).run())
    loop_rps = figures["c8_in_process_rps"]
    return {"models": [m["name"] for m in args["models"]], "cpus": cpus,
            "requests": figures["c1_serve_requests"] + figures["c8_serve_requests"], **figures,
            "c8_ratio": figures["c8_serve_rps"] / loop_rps if loop_rps else 0.0,
            "errors": figures["c1_serve_failed"] + figures["c8_serve_failed"], "bound": bound(figures, cpus)}
