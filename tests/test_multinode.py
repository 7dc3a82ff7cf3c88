"""A multi-node Ray cluster on this machine (head + two worker nodes on 127.0.0.1) runs the quickstart's CLIPC8
training submitted with the real `ray job submit` command line, and loses a worker node in the middle of it
(issue 22, drill 4: fas.drills.cluster)."""

from __future__ import annotations

import pytest


@pytest.fixture
def three_node_cluster():
    from fas.drills.cluster import loopback_cluster

    with loopback_cluster() as cluster:
        yield cluster


@pytest.mark.slow
def test_ray_job_submit_trains_on_two_nodes_and_survives_losing_one(three_node_cluster, class8_cache, tmp_path):
    from ray.util.state import list_actors

    from fas.drills.cluster import node_removed

    address, _, workers = three_node_cluster
    drill = node_removed(tmp_path, cache=class8_cache / "cache", cluster=three_node_cluster)
    f = drill.figures
    assert f["status"] == "SUCCEEDED" and f["waited_while_small"], f  # it waited for the node, then finished
    assert f["attempts"] >= 2 and f["resumed_from"] >= 1, f  # resumed from a checkpoint, not from scratch
    assert f["reported"] == [0, 1, 2] and f["final_epoch"] == 2, f  # the shape of an uninterrupted run
    assert f["model_loads"] and drill.passed
    # the training workers ran on the worker nodes (both, and the one added back), never on the head
    actors = list_actors(address=address, filters=[("class_name", "=", "RayTrainWorker")], limit=100)
    nodes = {a.node_id for a in actors}
    assert len(nodes) >= 2 and nodes <= {w.node_id for w in workers} | set(f["removed_nodes"]), nodes
