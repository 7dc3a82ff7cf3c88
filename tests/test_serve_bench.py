"""``fas.serve.bench.serve_bench`` at its smallest size: it builds its own models, serves them, and counts every
request of both sides. Behaviour only: no figure here is compared with a speed."""

from __future__ import annotations

import math

import pytest


def test_serve_bench_smallest_counts_every_request(ray_local, tmp_path):
    from fas.serve.bench import SIZES, serve_bench

    size = SIZES["smallest"]
    report = serve_bench(tmp_path, "smallest")
    assert report["models"] == ["clipc8", "pdle"] and report["cpus"] == 2
    assert (tmp_path / "models" / "clipc8" / "model.pt").is_file() and (tmp_path / "models" / "pdle").is_dir()
    assert report["errors"] == 0 and report["c1_serve_failed"] == report["c8_serve_failed"] == 0
    assert report["c1_serve_requests"] == size.rounds * size.c1 and report["c8_serve_requests"] == size.rounds * size.c8
    assert report["requests"] == report["c1_serve_requests"] + report["c8_serve_requests"]
    assert report["c1_in_process_requests"] == report["c8_in_process_requests"] == size.rounds * size.loop
    # each side's figures follow from its own counts, wall seconds and CPU seconds
    concurrency = {"c1_serve": 1, "c8_serve": 8, "c1_in_process": 1, "c8_in_process": 1}  # the loops run one by one
    for side, clients in concurrency.items():
        ok = report[f"{side}_requests"] - report[f"{side}_failed"]
        wall_s, cpu_s = report[f"{side}_wall_s"], report[f"{side}_cpu_s"]
        assert report[f"{side}_rps"] == pytest.approx(ok / wall_s), side
        assert report[f"{side}_cpu_ms_per_request"] * ok / 1000 == pytest.approx(cpu_s), side
        # at least half the requests took p50 or longer, and each client sends its requests one after another
        # inside the timed phases: their latencies add up to at most clients x wall time
        assert report[f"{side}_p50_ms"] * math.ceil(ok / 2) <= clients * wall_s * 1000, side
    assert report["c8_ratio"] == pytest.approx(report["c8_serve_rps"] / report["c8_in_process_rps"])
    assert report["bound"].startswith("CPU on 2 cores")
    from ray.serve.context import _get_global_client

    # it took down the Serve it started: a later serve.start(port) in this cluster gets its own port
    assert _get_global_client(raise_if_no_controller_running=False) is None


def test_serve_bench_refuses_an_unknown_size(tmp_path):
    from fas.serve.bench import serve_bench

    with pytest.raises(ValueError, match="smallest"):
        serve_bench(tmp_path, "huge")


def test_replicas_take_as_many_torch_threads_as_reserved_cpus(ray_local):
    """What ``ModelServer`` and ``CueServer`` run at startup: a fraction of a CPU gets one thread, two CPUs two."""
    from fas.serve.deployments import match_torch_threads

    threads = ray_local.remote(match_torch_threads)
    assert ray_local.get(threads.options(num_cpus=0.5).remote(), timeout=120) == 1
    assert ray_local.get(threads.options(num_cpus=2).remote(), timeout=120) == 2
