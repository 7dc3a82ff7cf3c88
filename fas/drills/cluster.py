"""The multi-node drill: a worker node of a 3-node loopback cluster removed during a submitted training job.

The cluster is ``ray.cluster_utils.Cluster`` on 127.0.0.1 (a head and two 2-CPU worker nodes); the job is the
quickstart's tiny CLIPC8 training, submitted with the real ``ray job submit`` command line and sized so that its
two workers need both worker nodes (1.5 CPUs each). Once the controller has registered a checkpoint, one worker
node is removed: the job must wait (the controller retries the worker group's start while the cluster is too
small), resume from that checkpoint when a node is added back, finish, and hold the same epochs and reports as a
run that was never interrupted.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from fas.drills import DrillResult
from fas.serve.bench import free_port

REPO = Path(__file__).resolve().parents[2]
WORKER_NODE = dict(num_cpus=2, node_ip_address="127.0.0.1", resources={"worker_node": 1})



@contextmanager
def loopback_cluster(worker_nodes: int = 2):
    """(dashboard address, cluster, worker nodes): a head (1 CPU) and ``worker_nodes`` 2-CPU nodes, all on
    127.0.0.1, each node's dashboard agent on its own free port (another local Ray may hold the default)."""
    from ray.cluster_utils import Cluster

    port = free_port()
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "node_ip_address": "127.0.0.1", "include_dashboard": True, "dashboard_host": "127.0.0.1",
        "dashboard_port": port, "dashboard_agent_listen_port": free_port()})
    try:
        workers = [add_worker_node(cluster) for _ in range(worker_nodes)]
        cluster.wait_for_nodes()
        yield f"http://127.0.0.1:{port}", cluster, workers
    finally:
        cluster.shutdown()


def add_worker_node(cluster):
    return cluster.add_node(**WORKER_NODE, dashboard_agent_listen_port=free_port())


def submit(address: str, entrypoint: list[str], wait: bool) -> subprocess.CompletedProcess:
    """``ray job submit`` (retried while the head's job agent comes up, a few seconds after the nodes)."""
    env = {**os.environ, "RAY_ADDRESS": address, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    cmd = [sys.executable, "-m", "ray.scripts.scripts", "job", "submit", "--address", address,
           *([] if wait else ["--no-wait"]), "--", *entrypoint]
    for _ in range(12):
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900, cwd=REPO)
        if "No available agent" not in proc.stderr:
            return proc
        time.sleep(5)
    return proc


def clipc8_job(cache: Path, storage: Path, name: str, epochs: int) -> list[str]:
    """The tiny CLIPC8 training as a job entrypoint: two workers of 1.5 CPUs, one per 2-CPU worker node. No
    --working-dir: the nodes of one machine share a session folder; the code is installed (as cluster.yaml does)."""
    return [sys.executable, str(REPO / "jobs" / "train.py"), "clipc8", "--config", "clipc8_tiny.yaml",
            "--cache", str(cache), "--storage-path", str(storage), "--name", name, "--epochs", str(epochs),
            "--num-workers", "2", "--cpus-per-worker", "1.5", "--max-failures", "3"]


def wait_for(predicate, timeout_s: float, what: str, poll_s: float = 0.2):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll_s)
    raise TimeoutError(f"gave up after {timeout_s:.0f} s waiting for {what}")


def node_removed(workdir: Path, cache: Path | None = None, cluster=None, wait_s: float = 8.0) -> DrillResult:
    """Remove a worker node after the first registered checkpoint, keep it away ``wait_s`` seconds, add one back.
    ``cluster``: a running ``loopback_cluster()`` (address, cluster, workers) to use instead of a new one."""
    if cluster is None:
        with loopback_cluster() as running:
            return node_removed(workdir, cache, running, wait_s)
    from ray.job_submission import JobStatus, JobSubmissionClient

    from fas.drills.fixtures import generated_cache
    from fas.engine.loop import ATTEMPTS_FILE, STATE_FILE, registered_checkpoints

    address, nodes, workers = cluster
    cache = cache or generated_cache(workdir)
    storage, epochs = Path(workdir) / "shared_storage", 3  # one folder every node of this machine reads
    proc = submit(address, clipc8_job(cache, storage, "multinode", epochs), wait=False)
    found = re.search(r"raysubmit_[A-Za-z0-9]+", proc.stdout) if proc.returncode == 0 else None  # (colour codes)
    job_id = found.group(0) if found else None
    if job_id is None:
        raise RuntimeError(f"ray job submit failed: {(proc.stdout + proc.stderr)[-2000:]}")
    client, run_dir = JobSubmissionClient(address), storage / "multinode"
    wait_for(lambda: registered_checkpoints(run_dir) >= 1, 600, "the job's first registered checkpoint")
    removed_at, removed = time.time(), workers[1].node_id
    nodes.remove_node(workers[1])
    time.sleep(wait_s)
    waited = client.get_job_status(job_id) == JobStatus.RUNNING  # too small a cluster: the job waits
    added_at = time.time()
    workers[1] = add_worker_node(nodes)
    status = wait_for(lambda: (s := client.get_job_status(job_id)) in (JobStatus.SUCCEEDED, JobStatus.FAILED,
                                                                       JobStatus.STOPPED) and s, 900, "the job's end")
    attempts = [json.loads(line) for line in (run_dir / ATTEMPTS_FILE).read_text().splitlines()]
    checkpoint = sorted(p for p in run_dir.glob("checkpoint_*") if p.is_dir())[-1]
    state = json.loads((checkpoint / STATE_FILE).read_text())
    from fas.methods import load_predictor

    loads = load_predictor(checkpoint).categories[0] == "real"
    reported = [h["epoch"] for h in state["history"]]
    figures = {"status": getattr(status, "value", str(status)), "removed_nodes": [removed],
               "waited_while_small": waited, "attempts": len(attempts),
               "resumed_from": attempts[-1]["resumed_from"], "reported": reported, "final_epoch": state["epoch"],
               "model_loads": loads, "waited_s": round(added_at - removed_at, 2),
               "resumed_after_node_added_s": round(attempts[-1]["started_at"] - added_at, 2)}
    passed = (status == JobStatus.SUCCEEDED and waited and len(attempts) >= 2 and attempts[-1]["resumed_from"] >= 1
              and reported == list(range(epochs)) and loads)
    outcome = f"the job waited, resumed from epoch {attempts[-1]['resumed_from']} on the new node, finished"
    fault = f"a worker node of 3 removed mid-job, added back after {added_at - removed_at:.0f} s"
    return DrillResult("node_removed", fault, outcome, "the epoch in progress", "none",
                       round(attempts[-1]["started_at"] - removed_at, 2), passed, figures)
