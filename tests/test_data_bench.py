"""The data-plane benchmark: both paths do the same work on the same generated workload (never timed here)."""

from __future__ import annotations

import cv2

from fas.data.bench import WORKLOADS, make_workload, run_benchmark
from fas.data.cache import read_cache_table
from fas.data.manifest import read_manifest

KEYS = {"videos", "frames", "single_process_frames_per_s", "ray_data_frames_per_s", "ray_startup_s",
        "ratio_ray_over_single", "single_process_s", "ray_s", "bound"}


def test_smallest_benchmark_runs_both_paths_on_the_same_frames(ray_local, tmp_path):
    threads = cv2.getNumThreads()
    result = run_benchmark(tmp_path, frames=4, detector="haar", size="smallest")
    assert KEYS <= set(result) and all(not isinstance(v, (dict, list)) for v in result.values())
    wl = WORKLOADS["smallest"]
    assert result["videos"] == wl.videos + 1 and result["skipped_files"] == 1  # the corrupt video is counted
    assert result["frames"] == 4 * wl.videos
    assert result["single_process_s"] > 0 and result["ray_s"] > 0 and isinstance(result["bound"], str)
    assert cv2.getNumThreads() == threads  # the single-threaded baseline leaves OpenCV as it found it

    single, ray = read_cache_table(tmp_path / "single"), read_cache_table(tmp_path / "ray")
    assert single.num_rows == ray.num_rows == result["frames"]
    assert sorted(single["frame_id"].to_pylist()) == sorted(ray["frame_id"].to_pylist())
    assert set(single["sample_id"].to_pylist()) == set(read_manifest(make_workload(tmp_path / "data", "smallest"))
                                                        ["sample_id"].to_pylist()) - {"corrupt"}
    assert single.schema == ray.schema
