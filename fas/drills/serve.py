"""Serve drills: replicas killed during a burst, a slow client, an overload, a model that cannot answer.

Each drill runs against a running application (``app=RunningApp(...)``, so that the fault suite deploys one for
all of them) or, standalone, deploys its own: one tiny untrained CLIP-C8 model, the face stage as a deployment of
its own, and small queues so that an overload is shed (``fault_app_args``). Everything is on 127.0.0.1.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from fas.drills import DrillResult, Stopwatch
from fas.serve.bench import free_port

TINY_CPU = {"ray_actor_options": {"num_cpus": 0.05}}
# the ingress takes 8 requests at a time and queues 16 more; every stage behind it queues 8 per caller
INGRESS = {**TINY_CPU, "max_ongoing_requests": 8, "max_queued_requests": 16}


@dataclasses.dataclass
class RunningApp:
    """A deployed liveness application: its base URL (``http://127.0.0.1:PORT/prefix``), name, and one model."""

    base_url: str
    name: str
    model: str
    face_deployment: str | None = "FaceStage"  # None: the face stage runs inside the ingress

    @property
    def liveness(self) -> str:
        return f"{self.base_url}/v1/liveness"


@dataclasses.dataclass
class Answer:
    """One HTTP request as the client saw it."""

    status: int | str  # the HTTP status, or the exception's name when none came
    seconds: float
    retry_after: str | None = None
    error: str | None = None  # the JSON body's "error" (None: not a JSON error body)
    done_at: float = dataclasses.field(default_factory=time.monotonic)  # when the answer (or the error) came


def build_tiny_model(folder: Path, seed: int = 0) -> Path:
    """An untrained clipc8-tiny model folder with a threshold: enough for the served graph to answer."""
    import json

    import torch

    from fas.methods.base import write_model_folder
    from fas.methods.clipc8.config import CLIPC8Config
    from fas.methods.clipc8.model import create_clipc8
    from fas.methods.clipc8.task import portable_meta

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model, pre = create_clipc8("clipc8-tiny", None)
    write_model_folder(folder, model.state_dict(), portable_meta(CLIPC8Config(model="clipc8-tiny"), pre))
    (folder / "metrics.json").write_text(json.dumps({"threshold": 0.5, "threshold_rule": "dev_eer"}))
    return folder


def fault_app_args(model_folder: Path, model: str = "tiny") -> dict:
    """One model, the face stage on its own deployment, small queues (``INGRESS``, ``overload``)."""
    return {"models": [{"name": model, "path": str(model_folder), "input": "face", "max_batch_size": 4,
                        "batch_wait_timeout_s": 0.05, "deployment": TINY_CPU}],
            "face": {"detector": "haar", "size": 128, "deployment": TINY_CPU},
            "ingress_deployment": INGRESS, "overload": {"max_queued_requests": 8, "retry_after_s": 1}}



@contextmanager
def deployed(workdir: Path, app: RunningApp | None, name: str = "drill"):
    """``app`` as given, or a fault app of its own on a local cluster (deleted afterwards)."""
    if app is not None:
        yield app
        return
    from ray import serve

    from fas.ray_utils import init_ray
    from fas.serve.app import build_app
    from fas.serve.load import serving_port

    init_ray()
    port = serving_port(free_port())
    args = fault_app_args(build_tiny_model(Path(workdir) / "model"))
    serve.run(build_app(args), name=name, route_prefix=f"/{name}", logging_config={"log_level": "WARNING"})
    try:
        yield RunningApp(f"http://127.0.0.1:{port}/{name}", name, "tiny")
    finally:
        serve.delete(name)


def post(url: str, image: bytes, timeout_s: float = 60.0) -> Answer:
    import requests

    start = time.perf_counter()
    try:
        r = requests.post(url, files={"image": ("capture.jpg", image, "image/jpeg")}, timeout=timeout_s)
    except requests.RequestException as exc:
        return Answer(type(exc).__name__, time.perf_counter() - start)
    error = r.json().get("error") if r.headers.get("content-type", "").startswith("application/json") else None
    return Answer(r.status_code, time.perf_counter() - start, r.headers.get("Retry-After"), error)


def burst(url: str, image: bytes, requests: int, concurrency: int, hook=None, hook_at: int = 0,
          timeout_s: float = 60.0) -> list[Answer]:
    """``requests`` POSTs from ``concurrency`` threads; ``hook`` runs once when ``hook_at`` answers are in."""
    from fas.serve.load import RequestSlots

    slots = RequestSlots(requests, time.monotonic() + timeout_s, hook, hook_at)

    def client(_) -> list[Answer]:
        out = []
        while slots.take():
            out.append(post(url, image, timeout_s))
            slots.finish()
        return out

    with ThreadPoolExecutor(concurrency) as pool:
        return [a for part in pool.map(client, range(concurrency)) for a in part]


def clear_refusal(answer: Answer) -> bool:
    """A 503 the client can act on: a Retry-After header (JSON ``{"error", "detail"}`` from the ingress, or
    Serve's own plain-text 503 when the ingress's queue at the proxy is full)."""
    return answer.status == 503 and answer.retry_after is not None


def status_counts(answers: list[Answer]) -> dict[str, int]:
    statuses = [str(a.status) for a in answers]
    return {s: statuses.count(s) for s in sorted(set(statuses))}


def image() -> bytes:
    from fas.serve.load import default_image

    return default_image()


def warm(app: RunningApp, data: bytes, n: int = 4) -> float:
    """Answer ``n`` requests one by one (loads what loads lazily); the median seconds of one."""
    answers = [post(app.liveness, data) for _ in range(n)]
    if any(a.status != 200 for a in answers):
        raise RuntimeError(f"{app.liveness} does not answer: {status_counts(answers)}")
    return float(np.median([a.seconds for a in answers]))


# ---------------------------------------------------------------- replicas killed during a burst
def serve_replica_killed(workdir: Path, *, app: RunningApp | None = None, requests: int = 30,
                         concurrency: int = 4) -> DrillResult:
    """The load job's kill phase: a model replica SIGKILLed after 30% of a burst; every request is still answered
    (the ingress re-sends a call whose replica died) and Serve starts a replacement."""
    from fas.serve.load import LoadConfig, kill_phase

    with deployed(workdir, app) as app:
        data = image()
        warm(app, data)
        cfg = LoadConfig(requests=requests, concurrency=concurrency, max_seconds=120, kill=app.model, kill_at=0.3,
                         app_name=app.name, recovery_timeout_s=120)
        kill = kill_phase(app.liveness, data, cfg)
    load = kill["load"]
    figures = {"sent": load["sent"], "ok": load["ok"], "failed": load["failed"], "failures": load["failures"],
               "killed_replica": kill["killed_replica"], "replaced_after_s": kill["replaced_after_s"],
               "answers_after_kill": kill["answers_after_kill"]}
    passed = load["sent"] == requests and load["failed"] == 0 and kill["replaced_after_s"] is not None \
        and kill["answers_after_kill"]
    return DrillResult("serve_replica_killed", f"{kill['deployment']} replica SIGKILLed during {requests} requests",
                       f"{load['ok']}/{load['sent']} answered 200 ({load['failed']} failed), "
                       + replaced(kill["replaced_after_s"]),
                       "none", "none", _round(kill["replaced_after_s"]), passed, figures)


def serve_face_killed(workdir: Path, *, app: RunningApp | None = None, requests: int = 30,
                      concurrency: int = 4) -> DrillResult:
    """The face stage's replica SIGKILLed during a burst: answers keep coming (or are 503s with Retry-After and a
    JSON reason), and Serve replaces the replica."""
    from fas.serve.load import ReplicaKiller

    with deployed(workdir, app) as app:
        if app.face_deployment is None:
            raise ValueError(f"application {app.name!r} runs its face stage in the ingress: nothing to kill")
        data = image()
        warm(app, data)
        killer = ReplicaKiller(app.name, app.face_deployment, 120)
        answers = burst(app.liveness, data, requests, concurrency, hook=killer, hook_at=max(1, int(requests * 0.3)))
        if killer.killed is None:
            raise RuntimeError("the kill never ran: the burst ended before 30% of its requests were answered")
        killer.watcher.join(120)
        after = post(app.liveness, data)
    unclear = [a for a in answers if a.status != 200 and not (clear_refusal(a) and a.error)]
    figures = {"sent": len(answers), "statuses": status_counts(answers), "unclear": len(unclear),
               "killed_replica": killer.killed, "replaced_after_s": _round(killer.replaced_after_s),
               "after_status": after.status}
    passed = len(answers) == requests and not unclear and killer.replaced_after_s is not None and after.status == 200
    return DrillResult("serve_face_killed", f"{app.face_deployment} replica SIGKILLed during {requests} requests",
                       f"answers {figures['statuses']} ({len(unclear)} unclear), " + replaced(killer.replaced_after_s),
                       "none", "none",
                       _round(killer.replaced_after_s), passed, figures)


def replaced(seconds: float | None) -> str:
    return "replica replaced" if seconds is not None else "replica NOT replaced within 120 s"


def _round(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 2)


# ---------------------------------------------------------------- a client that trickles its body
def raw_request(url: str, data: bytes) -> tuple[bytes, bytes, tuple[str, int]]:
    """The HTTP/1.1 head and the multipart body of an image POST to ``url``, and where to send them."""
    from urllib.parse import urlsplit

    import requests

    prepared = requests.Request("POST", url, files={"image": ("capture.jpg", data, "image/jpeg")}).prepare()
    parts = urlsplit(url)
    head = [f"POST {parts.path} HTTP/1.1", f"Host: {parts.netloc}", "Connection: close",
            *(f"{k}: {v}" for k, v in prepared.headers.items())]
    return ("\r\n".join(head) + "\r\n\r\n").encode(), prepared.body, (parts.hostname, parts.port)


def trickle(url: str, data: bytes, seconds: float, chunks: int = 24, timeout_s: float = 60.0) -> dict:
    """Send the head at once, then the body in ``chunks`` pieces spread over ``seconds``; the status answered and
    when the body was complete (``time.monotonic``)."""
    head, body, address = raw_request(url, data)
    with socket.create_connection(address, timeout=timeout_s) as sock:
        sock.sendall(head)
        step = -(-len(body) // chunks)
        status = None
        try:
            for i in range(0, len(body), step):
                sock.sendall(body[i:i + step])
                time.sleep(seconds / chunks)
        except OSError as exc:  # the server may answer (408/4xx) and close before the body is complete
            status = type(exc).__name__
        sent_at = time.monotonic()
        reply = sock.makefile("rb").readline()
    if reply.startswith(b"HTTP/"):
        status = int(reply.split()[1])
    return {"status": status, "body_done_at": sent_at}


def serve_slow_client(workdir: Path, *, app: RunningApp | None = None, seconds: float = 6.0,
                      tricklers: int = 2) -> DrillResult:
    """``tricklers`` clients send their body over ``seconds``; meanwhile ordinary requests, one by one, are answered
    in about their usual time, and each trickler gets an answer (or a 4xx) once its body is complete."""
    with deployed(workdir, app) as app:
        data = image()
        usual = warm(app, data)
        with ThreadPoolExecutor(tricklers) as pool:
            end = time.monotonic() + seconds - 0.5  # ordinary requests start while every trickler is mid-body
            slow = [pool.submit(trickle, app.liveness, data, seconds) for _ in range(tricklers)]
            time.sleep(min(1.0, seconds / 4))
            answers = []
            while time.monotonic() < end:
                answers.append(post(app.liveness, data))
            slow = [f.result() for f in slow]
    bound = 4 * usual + 1.0  # a loaded 2-core CI machine: a generous multiple of the usual latency, not a hang
    figures = {"usual_s": round(usual, 3), "max_s": round(max(a.seconds for a in answers), 3),
               "statuses": status_counts(answers), "trickler_statuses": [s["status"] for s in slow],
               "answered_while_trickling": sum(a.done_at < min(s["body_done_at"] for s in slow) for a in answers),
               "bound_s": round(bound, 3)}
    requests = len(answers)
    passed = (requests >= 2 and figures["statuses"] == {"200": requests} and figures["max_s"] <= bound
              and figures["answered_while_trickling"] >= requests - 1  # the last may end after the bodies
              and all(isinstance(s, int) and (s == 200 or 400 <= s < 500) for s in figures["trickler_statuses"]))
    return DrillResult("serve_slow_client", f"{tricklers} clients trickle their body over {seconds:.0f} s",
                       f"{requests} other requests answered in <= {figures['max_s']:.2f} s (usual "
                       f"{usual:.2f} s); tricklers got {figures['trickler_statuses']}", "none", "none", None,
                       passed, figures)


# ---------------------------------------------------------------- more requests at once than it can take
def serve_overload(workdir: Path, *, app: RunningApp | None = None, requests: int = 200,
                   bound_s: float = 60.0) -> DrillResult:
    """``requests`` requests at once, beyond the ingress's queue: each is served or refused at once with a 503 +
    Retry-After, none hangs, all are answered within ``bound_s``; the service answers again afterwards."""
    with deployed(workdir, app) as app:
        data = image()
        warm(app, data, 2)
        watch = Stopwatch()
        answers = burst(app.liveness, data, requests, requests, timeout_s=bound_s)
        watch.mark()
        after = post(app.liveness, data)
        recovery = watch.recovered()
    served = [a for a in answers if a.status == 200]
    refused = [a for a in answers if clear_refusal(a)]
    figures = {"sent": len(answers), "served": len(served), "refused": len(refused),
               "json_refusals": sum(a.error == "overloaded" for a in refused),
               "unclear": len(answers) - len(served) - len(refused), "statuses": status_counts(answers),
               "max_s": round(max(a.seconds for a in answers), 3), "after_status": after.status}
    passed = (figures["sent"] == requests and figures["unclear"] == 0 and figures["max_s"] < bound_s
              and after.status == 200)
    return DrillResult("serve_overload", f"{requests} concurrent requests",
                       f"{len(served)} served, {len(refused)} refused with 503 + Retry-After "
                       f"({figures['json_refusals']} JSON), {figures['unclear']} other, "
                       f"slowest {figures['max_s']:.1f} s",
                       "none", "none", recovery, passed,
                       figures)


# ---------------------------------------------------------------- a model replica that cannot answer
def replica_processes(app_name: str, deployment: str) -> list:
    """This process's own Ray workers (the embedded cluster runs under it) that host ``deployment``'s replicas."""
    import psutil

    title = f"ServeReplica:{app_name}:{deployment}"
    found = []
    for proc in psutil.Process(os.getpid()).children(recursive=True):
        try:
            if any(title in part for part in proc.cmdline()[:1]):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def healthz(app: RunningApp, timeout_s: float = 30.0) -> tuple[int | str, dict, float]:
    import requests

    start = time.perf_counter()
    try:
        r = requests.get(f"{app.base_url}/healthz", timeout=timeout_s)
    except requests.RequestException as exc:
        return type(exc).__name__, {}, time.perf_counter() - start
    return r.status_code, r.json(), time.perf_counter() - start


def wait_healthy(app: RunningApp, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if healthz(app)[0] == 200:
            return True
        time.sleep(0.5)
    return False


def serve_unhealthy_model(workdir: Path, *, app: RunningApp | None = None) -> DrillResult:
    """Every replica of the model frozen (SIGSTOP: alive, but it cannot answer): ``/healthz`` answers 503 within its
    per-deployment timeout and names the model; after SIGCONT it says 200 again."""
    with deployed(workdir, app) as app:
        deployment = f"Model_{app.model}"
        frozen = replica_processes(app.name, deployment)
        if not frozen:
            raise RuntimeError(f"no replica process of {app.name}/{deployment} under this process: the drill needs "
                               "the embedded local cluster")
        before = healthz(app)[0]
        watch = Stopwatch()
        try:
            for proc in frozen:
                proc.send_signal(signal.SIGSTOP)
            watch.mark()
            status, body, seconds = healthz(app)
        finally:
            for proc in frozen:
                proc.send_signal(signal.SIGCONT)
        healthy = wait_healthy(app, 120)
        recovery = watch.recovered() if healthy else None
    states = body.get("deployments", {})
    others = {k: v for k, v in states.items() if k != f"model:{app.model}"}
    figures = {"before": before, "status": status, "deployments": states, "healthz_s": round(seconds, 2),
               "frozen": len(frozen), "healthy_again": healthy}
    passed = (before == 200 and status == 503 and states.get(f"model:{app.model}") is False
              and all(others.values()) and healthy)
    return DrillResult("serve_unhealthy_model", f"{deployment}'s {len(frozen)} replica(s) frozen (SIGSTOP)",
                       f"/healthz {status} naming model:{app.model} in {seconds:.1f} s; 200 again after SIGCONT",
                       "none", "none", recovery, passed, figures)
