"""A bounded load test of the liveness endpoint, beside the same work done in-process without Serve.

Phases: (1) ``requests`` POSTs from ``concurrency`` client threads over loopback HTTP; (2) the same validation,
face stage, predictors and fusion called in a plain loop in this process, its torch and OpenCV threads set to the
CPUs the Serve cluster has on this machine (the same CPUs for both); (3) optionally the HTTP load again while one
replica of a model deployment is killed, counting the requests that failed while Serve replaced it. Every phase
stops after ``requests`` or ``max_seconds``, whichever comes first.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import yaml

from fas.data.faces import encode_image


@dataclasses.dataclass
class LoadConfig:
    """``jobs/serve_load.py`` options; every field is also a flag."""

    serve_config: str = "serve/config.yaml"  # Serve config file; the application below is built from its args
    application: str | None = None  # name of the application in the config (default: the first)
    requests: int = 200
    concurrency: int = 8
    max_seconds: float = 120.0  # cap per phase
    image: str | None = None  # JPEG/PNG to send; default: a generated selfie with one face (fas.data.synth)
    baseline: bool = True  # phase 2: in-process loop
    kill: str | None = None  # phase 3: name of the model whose replica is killed mid-load
    kill_at: float = 0.3  # fraction of phase 3's requests answered before the kill
    recovery_timeout_s: float = 120.0
    port: int | None = None  # HTTP port; default: the config's http_options.port
    app_name: str = "liveness_load"
    route_prefix: str = "/load"
    address: str | None = None  # Ray cluster; default: a local one on 127.0.0.1
    cpus: int | None = None  # threads of the in-process loop; default: the Ray cluster's CPUs on this machine
    serve_log_level: str = "WARNING"  # INFO logs every call in every replica and streams it to this driver
    keep: bool = False  # leave the application running afterwards


def read_serve_config(path: str, application: str | None) -> tuple[dict, int]:
    """The builder args of one application of a Serve config file, and its HTTP port."""
    doc = yaml.safe_load(Path(path).read_text())
    apps = doc.get("applications") or []
    chosen = [a for a in apps if application in (None, a.get("name"))]
    if not chosen:
        raise ValueError(f"{path}: no application {application!r}; it has {[a.get('name') for a in apps]}")
    return chosen[0].get("args") or {}, int((doc.get("http_options") or {}).get("port", 8000))


def default_image(size: int = 480, seed: int = 0) -> bytes:
    """A bona fide synthetic selfie whose face the Haar detector finds (no data files needed)."""
    from fas.data.synth import make_subject, real_scene, to_uint8

    rgb, _ = real_scene(np.random.default_rng(seed), make_subject(seed, 0), size)
    return encode_image(to_uint8(rgb), "jpg")


def latency_stats(latencies_s: list[float], wall_s: float) -> dict:
    ms = np.array(latencies_s) * 1000
    if not len(ms):
        return {"p50_ms": None, "p99_ms": None, "mean_ms": None, "req_per_s": 0.0, "wall_s": wall_s}
    return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
            "mean_ms": float(ms.mean()), "req_per_s": len(ms) / wall_s, "wall_s": wall_s}


class RequestSlots:
    """Hands out request slots to client threads and fires ``hook`` once when ``hook_at`` answers are in."""

    def __init__(self, total: int, deadline: float, hook=None, hook_at: int = 0):
        self.lock = threading.Lock()
        self.total, self.deadline, self.hook, self.hook_at = total, deadline, hook, hook_at
        self.sent = self.done = 0

    def take(self) -> bool:
        with self.lock:
            if self.sent >= self.total or time.monotonic() > self.deadline:
                return False
            self.sent += 1
            return True

    def finish(self) -> None:
        with self.lock:
            self.done += 1
            fire = self.hook is not None and self.done == self.hook_at
        if fire:
            self.hook()


def _client(url: str, image: bytes, counter: RequestSlots, timeout_s: float) -> list[tuple[float, int | str]]:
    import requests

    out = []
    with requests.Session() as session:
        while counter.take():
            start = time.perf_counter()
            try:
                status = session.post(url, files={"image": ("capture.jpg", image, "image/jpeg")},
                                      timeout=timeout_s).status_code
            except requests.RequestException as exc:
                status = type(exc).__name__
            out.append((time.perf_counter() - start, status))
            counter.finish()
    return out


def http_requests(url: str, image: bytes, requests: int, concurrency: int, max_seconds: float,
                  hook=None, hook_at: int = 0) -> tuple[list[tuple[float, int | str]], float]:
    """``requests`` POSTs from ``concurrency`` threads: (seconds, status) of each, and the wall time of all."""
    counter = RequestSlots(requests, time.monotonic() + max_seconds, hook, hook_at)
    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        results = [r for part in pool.map(lambda _: _client(url, image, counter, max_seconds),
                                          range(concurrency)) for r in part]
    return results, time.perf_counter() - start


def http_load(url: str, image: bytes, requests: int, concurrency: int, max_seconds: float,
              hook=None, hook_at: int = 0) -> dict:
    """``requests`` POSTs from ``concurrency`` threads; latency of the successful ones, count of the others."""
    results, wall = http_requests(url, image, requests, concurrency, max_seconds, hook, hook_at)
    failed = [str(s) for _, s in results if s != 200]
    return {"sent": len(results), "ok": len(results) - len(failed), "failed": len(failed),
            "failures": {s: failed.count(s) for s in sorted(set(failed))}, "concurrency": concurrency,
            **latency_stats([t for t, s in results if s == 200], wall)}


class LocalModel:
    """One served model in this process: its predictor and, for a model that reads cues (AG-FAS), the generator
    that makes them, masked as its cue cache was (DFG†). The in-process baseline and ``fas predict`` both score
    with it, so they compute what a Serve model deployment computes."""

    def __init__(self, card, margin: float, predictor=None, device: str | None = None):
        from fas.cues import CueGenerator
        from fas.methods import load_predictor

        self.card, self.margin = card, margin
        self.predictor = predictor if predictor is not None else load_predictor(card.weights, device)
        self.cue_maker = CueGenerator(card.generator, card.cue, device) if card.generator else None

    def cues(self, crops: list[bytes], faces: list[dict]) -> list[bytes]:
        """The cues of ``crops``; where each face lies in its crop comes from the face stage's answer (box, and
        landmarks where it gives them) and the face stage's margin."""
        from fas.methods.dfg.mask import geometry_from_face

        if (self.card.cue or {}).get("mask", "none") == "none":
            return self.cue_maker(crops)
        return self.cue_maker(crops, [geometry_from_face(face, self.margin, self.card.input) for face in faces])

    def inputs(self, crops: list[bytes], faces: list[dict]) -> list[list[bytes]]:
        """The predictor's columns for ``crops`` (the card's input kind): the crops, and their cues if it reads
        them; ``faces``: the face stage's answers."""
        return [crops, self.cues(crops, faces)] if self.cue_maker else [crops]

    def predict(self, crops: list[bytes], faces: list[dict]) -> dict:
        return self.predictor.predict(*self.inputs(crops, faces))


class InProcessPipeline:
    """The served computation without Serve: validation, face stage, each predictor, fusion, in one process."""

    def __init__(self, app_args: dict):
        from fas.serve.config import load_model_card, parse_app_config
        from fas.serve.pipeline import FacePipeline

        self.cfg = parse_app_config(app_args)
        self.cards = {m.name: load_model_card(m) for m in self.cfg.models}
        self.face = FacePipeline(self.cfg.face, {m.input for m in self.cfg.models}, self.cfg.quality)
        self.models = {name: LocalModel(card, self.cfg.face.margin) for name, card in self.cards.items()}

    def __call__(self, data: bytes) -> dict:
        from fas.serve.pipeline import fuse, present
        from fas.serve.validation import check_image

        check_image(data, self.cfg.limits)
        face = self.face(data)
        results = {}
        for name, model in self.models.items():
            out = model.predict([face["inputs"][model.card.input]], [face])
            results[name] = present(out, 0, getattr(model.predictor, "categories", None) or model.card.categories)
        return fuse(results, self.cards, self.cfg.fusion)


def local_cpus() -> int:
    """The CPUs the Ray cluster has on this machine (all of them when Ray is not initialised): what the Serve
    replicas share, so what the in-process loop gets too."""
    import os

    import ray

    cores = os.cpu_count() or 1
    if not ray.is_initialized():
        return cores
    return max(1, min(cores, int(ray.cluster_resources().get("CPU", cores))))


class CpuThreads:
    """Torch and OpenCV intra-op threads set to ``cpus`` inside the block and restored after it."""

    def __init__(self, cpus: int):
        self.cpus = cpus

    def __enter__(self):
        import cv2
        import torch

        self.saved = torch.get_num_threads(), cv2.getNumThreads()
        torch.set_num_threads(self.cpus)
        cv2.setNumThreads(self.cpus)
        return self

    def __exit__(self, *exc):
        import cv2
        import torch

        torch.set_num_threads(self.saved[0])
        cv2.setNumThreads(self.saved[1])


def loop_latencies(pipeline, image: bytes, requests: int, max_seconds: float, cpus: int) -> tuple[list[float], float]:
    """``requests`` sequential calls of ``pipeline`` with ``cpus`` threads (the in-process reference): the seconds
    of each, and the wall time of all."""
    latencies, deadline = [], time.monotonic() + max_seconds
    with CpuThreads(cpus):
        start = time.perf_counter()
        while len(latencies) < requests and time.monotonic() < deadline:
            tick = time.perf_counter()
            pipeline(image)
            latencies.append(time.perf_counter() - tick)
    return latencies, time.perf_counter() - start


def in_process_load(app_args: dict, image: bytes, requests: int, max_seconds: float, cpus: int | None = None) -> dict:
    pipeline = InProcessPipeline(app_args)
    pipeline(image)  # warm-up, as the Serve phase had
    cpus = cpus or local_cpus()
    latencies, wall = loop_latencies(pipeline, image, requests, max_seconds, cpus)
    return {"sent": len(latencies), "ok": len(latencies), "failed": 0, "concurrency": 1, "cpus": cpus,
            **latency_stats(latencies, wall)}


def replica_names(app_name: str, deployment: str) -> set[str]:
    """Live replica actors of a deployment, from the GCS's named actors (works without the dashboard)."""
    import ray

    prefix = f"SERVE_REPLICA::{app_name}#{deployment}#"
    return {a["name"] for a in ray.util.list_named_actors(all_namespaces=True) if a["name"].startswith(prefix)}


def kill_replica(app_name: str, deployment: str) -> str:
    import ray

    names = sorted(replica_names(app_name, deployment))
    if not names:
        raise ValueError(f"no running replica of {app_name}/{deployment} to kill")
    ray.kill(ray.get_actor(names[0], namespace="serve"), no_restart=True)
    return names[0]


def running_replicas(app_name: str, deployment: str) -> int:
    from ray import serve

    app = serve.status().applications.get(app_name)
    return app.deployments[deployment].replica_states.get("RUNNING", 0) if app else 0


def wait_replaced(app_name: str, deployment: str, before: set[str], target: int, timeout_s: float) -> bool:
    """Wait until a replica that did not exist before the kill runs and the replica count is back."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if replica_names(app_name, deployment) - before and running_replicas(app_name, deployment) >= target:
            return True
        time.sleep(0.25)
    return False


class ReplicaKiller:
    """Kills one replica when called (from the load's hook), then times Serve's replacement in the background."""

    def __init__(self, app_name: str, deployment: str, timeout_s: float):
        self.app_name, self.deployment, self.timeout_s = app_name, deployment, timeout_s
        self.before = replica_names(app_name, deployment)
        self.target = running_replicas(app_name, deployment)
        self.killed: str | None = None
        self.replaced_after_s: float | None = None
        self.watcher = threading.Thread(target=self._watch, daemon=True)

    def __call__(self) -> None:
        self.killed = kill_replica(self.app_name, self.deployment)
        self.watcher.start()

    def _watch(self) -> None:
        start = time.monotonic()
        if wait_replaced(self.app_name, self.deployment, self.before, self.target, self.timeout_s):
            self.replaced_after_s = time.monotonic() - start


def kill_phase(url: str, image: bytes, cfg: LoadConfig, deployment: str | None = None) -> dict:
    """HTTP load with one replica of ``deployment`` (default ``Model_<kill>``) killed after ``kill_at`` of the
    requests were answered."""
    killer = ReplicaKiller(cfg.app_name, deployment or f"Model_{cfg.kill}", cfg.recovery_timeout_s)
    load = http_load(url, image, cfg.requests, cfg.concurrency, cfg.max_seconds,
                     hook=killer, hook_at=max(1, int(cfg.requests * cfg.kill_at)))
    if killer.killed is None:
        raise RuntimeError("the kill never ran: the load ended before kill_at of its requests were answered")
    killer.watcher.join(cfg.recovery_timeout_s)
    after = http_load(url, image, 1, 1, 60)
    return {"deployment": killer.deployment, "killed_replica": killer.killed, "load": load,
            "failed_during_kill": load["failed"], "replaced_after_s": killer.replaced_after_s,
            "answers_after_kill": after["ok"] == 1}


def serving_port(port: int) -> int:
    """Start Serve on loopback at ``port``; when Serve runs already, ``serve.start`` keeps its HTTP options, so the
    running proxy's port is the one to send to (read from the controller: Serve has no public getter for it)."""
    import ray
    from ray import serve
    from ray.serve.context import _get_global_client

    client = _get_global_client(raise_if_no_controller_running=False)
    if client is None:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        return port
    return int(ray.get(client._controller.get_http_config.remote()).port)


def deploy(app_args: dict, cfg: LoadConfig, port: int) -> str:
    """Start Serve on loopback (or use the running one) and deploy the application; returns its URL."""
    from ray import serve

    from fas.serve.app import build_app

    port = serving_port(port)
    serve.run(build_app(app_args), name=cfg.app_name, route_prefix=cfg.route_prefix,
              logging_config={"log_level": cfg.serve_log_level})
    return f"http://127.0.0.1:{port}{cfg.route_prefix.rstrip('/')}/v1/liveness"


def figure(value: float | None, width: int, digits: int) -> str:
    """A table figure; ``-`` where a phase answered nothing."""
    return f"{value:{width}.{digits}f}" if value is not None else "-".rjust(width)


def compare(serve_stats: dict, local: dict) -> dict:
    """Serve over the in-process loop: throughput > 1 means more req/s with Serve, p50 latency > 1 slower answers."""
    def ratio(key: str) -> float | None:  # None when a phase answered nothing (its figure is None or 0)
        return serve_stats[key] / local[key] if serve_stats.get(key) and local.get(key) else None

    return {"throughput_ratio": ratio("req_per_s"), "p50_latency_ratio": ratio("p50_ms")}


def run_load(cfg: LoadConfig, app_args: dict | None = None) -> dict:
    """All phases against an application built from ``app_args`` (default: read from ``cfg.serve_config``)."""
    from ray import serve

    from fas.ray_utils import init_ray

    port = 8000
    if app_args is None:
        app_args, port = read_serve_config(cfg.serve_config, cfg.application)
    image = Path(cfg.image).read_bytes() if cfg.image else default_image()
    init_ray(cfg.address)
    url = deploy(app_args, cfg, cfg.port or port)
    try:
        http_load(url, image, 2 * cfg.concurrency, cfg.concurrency, cfg.max_seconds)  # warm-up
        report = {"url": url, "image_bytes": len(image), "serve": http_load(url, image, cfg.requests,
                                                                             cfg.concurrency, cfg.max_seconds)}
        if cfg.baseline:
            report["in_process"] = in_process_load(app_args, image, cfg.requests, cfg.max_seconds, cfg.cpus)
            report["serve_vs_in_process"] = compare(report["serve"], report["in_process"])
        if cfg.kill:
            report["kill"] = kill_phase(url, image, cfg)
    finally:
        if not cfg.keep:
            serve.delete(cfg.app_name)
    return report


def format_report(report: dict) -> str:
    """The figures side by side, for a terminal."""
    rows = [("serve (HTTP)", report["serve"]), ("in-process", report.get("in_process"))]
    if "kill" in report:
        rows.append((f"serve, {report['kill']['deployment']} replica killed", report["kill"]["load"]))
    lines = [f"{'':34} {'ok':>5} {'failed':>6} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>7}"]
    for name, s in rows:
        if s:
            lines.append(f"{name:34} {s['ok']:5d} {s['failed']:6d} {figure(s['p50_ms'], 8, 1)} "
                         f"{figure(s['p99_ms'], 8, 1)} {figure(s['req_per_s'], 7, 2)}")
    if "serve_vs_in_process" in report:
        ratio = report["serve_vs_in_process"]
        lines.append(f"serve / in-process: throughput x{figure(ratio['throughput_ratio'], 0, 2)}, "
                     f"p50 latency x{figure(ratio['p50_latency_ratio'], 0, 2)}")
    if "kill" in report:
        kill = report["kill"]
        replaced = kill["replaced_after_s"]
        lines.append(f"replica kill: {kill['failed_during_kill']} failed requests; replaced after "
                     + (f"{replaced:.1f} s" if replaced is not None else "(not within the timeout)")
                     + f"; answers afterwards: {kill['answers_after_kill']}")
    return "\n".join(lines)
