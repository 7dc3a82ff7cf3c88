"""Issue 22, item 7: the liveness service under faults, every drill against ONE deployed application (one tiny
model, the face stage on a deployment of its own, small queues: ``fas.drills.serve.fault_app_args``)."""

from __future__ import annotations

import pytest

from fas.drills.serve import INGRESS, RunningApp


@pytest.fixture(scope="module")
def app(ray_local, tmp_path_factory):
    from ray import serve

    from fas.drills.serve import build_tiny_model, fault_app_args, free_port
    from fas.serve.app import build_app
    from fas.serve.load import serving_port

    port = serving_port(free_port())
    args = fault_app_args(build_tiny_model(tmp_path_factory.mktemp("fault_model") / "tiny"))
    serve.run(build_app(args), name="faults", route_prefix="/faults", logging_config={"log_level": "WARNING"})
    yield RunningApp(f"http://127.0.0.1:{port}/faults", "faults", "tiny")
    serve.shutdown()  # the next module starts Serve on a port of its own


def test_overload_is_served_or_refused_with_retry_after(app, tmp_path):
    from fas.drills.serve import serve_overload

    result = serve_overload(tmp_path, app=app, requests=200, bound_s=60)
    f = result.figures
    assert f["sent"] == 200 and f["served"] + f["refused"] == 200 and f["unclear"] == 0, f
    # more than the ingress takes at once and queues was sent: some were refused, and some served
    assert f["refused"] > 0 and f["served"] >= INGRESS["max_ongoing_requests"], f
    assert f["max_s"] < 60 and f["after_status"] == 200 and result.passed


def test_slow_client_does_not_hold_up_the_others(app, tmp_path):
    from fas.drills.serve import serve_slow_client

    result = serve_slow_client(tmp_path, app=app, seconds=6, tricklers=2)
    f = result.figures
    sent = sum(f["statuses"].values())
    assert sent >= 2 and f["statuses"] == {"200": sent} and f["max_s"] <= f["bound_s"], f
    assert f["answered_while_trickling"] >= sent - 1, f  # answered while both tricklers were still sending
    assert f["trickler_statuses"] == [200, 200], f  # a complete body, however slow, gets its answer
    assert result.passed


def test_healthz_names_a_model_that_cannot_answer(app, tmp_path):
    from fas.drills.serve import serve_unhealthy_model
    from fas.serve.ingress import READY_TIMEOUT_S

    result = serve_unhealthy_model(tmp_path, app=app)
    f = result.figures
    assert f["before"] == 200 and f["status"] == 503, f
    assert f["deployments"] == {"face": True, "model:tiny": False}, f
    assert f["healthz_s"] < READY_TIMEOUT_S + 5, f  # answered after the per-deployment timeout, not hung
    assert f["healthy_again"] and result.passed


def test_face_replica_killed_during_a_burst(app, tmp_path):
    from fas.drills.serve import serve_face_killed

    result = serve_face_killed(tmp_path, app=app, requests=30, concurrency=4)
    f = result.figures
    assert f["sent"] == 30 and f["unclear"] == 0, f
    assert f["killed_replica"].startswith("SERVE_REPLICA::faults#FaceStage#"), f
    assert f["replaced_after_s"] is not None and f["after_status"] == 200 and result.passed



# a model replica killed during a burst: tests/test_serve.py::test_load_job_survives_a_replica_kill runs the
# serve_replica_killed drill on the load job's application
