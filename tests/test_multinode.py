"""A multi-node Ray cluster on this machine (head + two worker nodes on 127.0.0.1) runs the quickstart's CLIPC8
training submitted with the real `ray job submit` command line."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def three_node_cluster():
    from ray.cluster_utils import Cluster

    port = _free_port()
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "node_ip_address": "127.0.0.1", "include_dashboard": True, "dashboard_host": "127.0.0.1",
        "dashboard_port": port, "dashboard_agent_listen_port": _free_port()})
    # each node's dashboard agent on its own port (the default one may be taken by another local Ray instance)
    workers = [cluster.add_node(num_cpus=2, node_ip_address="127.0.0.1", resources={"worker_node": 1},
                                dashboard_agent_listen_port=_free_port()) for _ in range(2)]
    cluster.wait_for_nodes()
    yield f"http://127.0.0.1:{port}", [w.node_id for w in workers]
    cluster.shutdown()


@pytest.mark.slow
def test_ray_job_submit_trains_on_two_nodes(three_node_cluster, class8_cache, tmp_path):
    address, worker_nodes = three_node_cluster
    storage = tmp_path / "shared_storage"  # one folder every node of this machine can read
    env = {**os.environ, "RAY_ADDRESS": address, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    # No --working-dir here: the three nodes of this one machine share one session folder, and each node's agent
    # unpacks the working dir into it, so the driver can catch a node rewriting it. The code is installed on every
    # node (as cluster.yaml does), so the job runs the repo's script by path; on a real cluster use --working-dir.
    cmd = [sys.executable, "-m", "ray.scripts.scripts", "job", "submit", "--address", address,
           "--", sys.executable, str(REPO / "jobs" / "train.py"), "clipc8", "--config", "clipc8_tiny.yaml",
           "--cache", str(class8_cache / "cache"), "--storage-path", str(storage), "--name", "multinode",
           "--epochs", "1", "--num-workers", "2", "--cpus-per-worker", "1.5"]  # 1.5 CPUs: one worker per 2-CPU node
    for _ in range(12):  # the head's job agent takes a few seconds to come up after the nodes do
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900, cwd=REPO)
        if "No available agent" not in proc.stderr:
            break
        time.sleep(5)
    assert proc.returncode == 0 and "succeeded" in proc.stdout, (proc.stdout + proc.stderr)[-4000:]

    from ray.util.state import list_actors

    actors = list_actors(address=address, filters=[("class_name", "=", "RayTrainWorker")], limit=100)
    nodes = {a.node_id for a in actors}
    assert len(nodes) >= 2 and nodes <= set(worker_nodes), nodes

    from fas.methods import load_predictor

    checkpoints = sorted(p for p in (storage / "multinode").glob("checkpoint_*") if p.is_dir())
    assert checkpoints, list(storage.rglob("*"))[:20]
    state = json.loads((checkpoints[-1] / "train_state.json").read_text())
    assert state["epoch"] == 0 and 0 <= state["val_auc"] <= 1
    predictor = load_predictor(checkpoints[-1])
    assert predictor.categories[0] == "real"
