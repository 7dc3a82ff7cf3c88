"""The data, cue and Serve pairs of ``fas bench``: each distributed path beside the plain loop it replaces.

The data and Serve pairs are measured by their own modules (``fas.data.bench``, ``fas.serve.bench``); the cue
pair is here: the cue job (Ray Data, one generator actor holding every core) against a bare loop of the same cue
maker over the same frames with the same torch threads.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import torch

from fas.bench import pair

CUE_SIZES = {"full": {"rows": 96, "ddim_steps": 50, "batch": 8}, "smallest": {"rows": 4, "ddim_steps": 4, "batch": 2}}


def data_section(work: Path, size: str = "full") -> list[dict]:
    from fas.data.bench import run_benchmark

    r = run_benchmark(work, size=size)
    what = (f"fas prepare: {r['videos']} videos, {r['frames']} frames (decode, detect, crop, encode, Parquet); Ray "
            f"start-up {r.get('ray_startup_s')} s apart")
    return [pair("data", what, r["single_process_frames_per_s"], r["ray_data_frames_per_s"], "frames/s", ">= 1.6",
                 r.get("bound", ""))]


def serve_section(work: Path, size: str = "full") -> list[dict]:
    from fas.serve.bench import serve_bench

    r = serve_bench(work, size=size)
    models = "+".join(r["models"])
    c8 = pair("serve", f"fused graph ({models}), concurrency 8, {r['requests']} requests, {r['errors']} errors",
              r["c8_in_process_rps"], r["c8_serve_rps"], "req/s", ">= 0.85, 0 errors", r.get("bound", ""))
    c1 = pair("serve", f"fused graph ({models}), concurrency 1, p50", r["c1_in_process_p50_ms"], r["c1_serve_p50_ms"],
              "ms", "<= +15 ms (ratio: the difference)", "HTTP, the ingress and one replica hop per model")
    c1["ratio"] = round(c1["distributed"] - c1["plain"], 1)
    return [c8, c1]


def untrained_generator(folder: Path, model: str = "dfg-tiny") -> Path:
    """A generator folder of ``model``'s architecture with random weights: the cue work does not depend on them."""
    from fas.methods.dfg.config import DFGConfig
    from fas.methods.dfg.generator import save_generator
    from fas.methods.dfg.model import create_generator

    if not (folder / "generator_config.json").is_file():
        torch.manual_seed(0)
        save_generator(create_generator(model), DFGConfig(model=model), folder)
    return folder


def bare_cues(generator: Path, cache: Path, spec: dict, threads: int) -> tuple[float, float, int]:
    """(frames/s of the second half, start-up s, frames) of the cue maker in a plain loop over the cache's
    frames: the reconstruction's own rate, with the generator's load left to the start-up figure."""
    from fas.cues import load_cue_maker
    from fas.data.cache import read_cache_table

    torch.set_num_threads(threads)
    table = read_cache_table(cache, columns=["image", "frame_id"])
    images, ids = table["image"].to_pylist(), table["frame_id"].to_pylist()
    start = time.perf_counter()
    maker = load_cue_maker(generator, "cpu", ddim_steps=spec["ddim_steps"])
    half = len(images) // 2 // spec["batch"] * spec["batch"]  # a batch boundary
    for i in range(0, len(images), spec["batch"]):
        if i == half:
            halfway = time.perf_counter()
        maker(images[i:i + spec["batch"]], ids[i:i + spec["batch"]])
    rate = (len(images) - half) / (time.perf_counter() - halfway)
    return rate, halfway - start - half / rate, len(images)


def job_cues(generator: Path, caches: tuple[Path, Path], work: Path, spec: dict, threads: int):
    """(marginal frames/s, start-up s, the larger run's summary) of the cue job, run on half the frames and on
    all of them: the difference is the frames' own work, the rest the job's start (actor, imports, load)."""
    from fas.cues import CueConfig, make_cues

    runs = [make_cues(CueConfig(generator=str(generator), cache=str(cache), out=str(work / f"cues_{time.time()}"),
                                batch_size=spec["batch"], ddim_steps=spec["ddim_steps"], actors=1,
                                cpus_per_actor=float(threads))) for cache in caches]
    (small, large) = runs
    rate = (large["frames_written"] - small["frames_written"]) / (large["seconds"] - small["seconds"])
    return rate, small["seconds"] - small["frames_written"] / rate, large


def cue_section(work: Path, size: str = "full") -> list[dict]:
    from fas.bench.train import SIZES, class8_cache, tiled_cache
    from fas.ray_utils import init_ray

    spec = CUE_SIZES[size]
    work.mkdir(parents=True, exist_ok=True)
    init_ray(num_cpus=2 * (os.cpu_count() or 2))  # a CPU for the read tasks beside the actor holding every core
    source = class8_cache(work.parent / "train", SIZES[size]["synth"])
    caches = tuple(tiled_cache(source, work / f"frames_{rows}", rows) for rows in (spec["rows"] // 2, spec["rows"]))
    generator = untrained_generator(work / "generator")
    threads = min(2, os.cpu_count() or 2)
    bare, bare_start, frames = bare_cues(generator, caches[1], spec, threads)
    rate, job_start, summary = job_cues(generator, caches, work, spec, threads)
    steps = spec["ddim_steps"] * 801 // 1000 + 1
    what = (f"AG-FAS cue job, 1 actor x {threads} CPUs vs bare loop {threads} threads: {frames} frames, about "
            f"{steps} DDIM steps each (tiny generator), frames/s once started (job: {frames // 2} more frames' "
            f"time; bare: the second half); start-up apart: job {job_start:.1f} s (actor, imports, generator "
            f"load, read), bare {bare_start:.1f} s (generator load); whole job "
            f"{summary['frames_with_cue'] / summary['seconds']:.2f} frames/s")
    return [pair("cues", what, bare, rate, "frames/s", ">= 0.90",
                 "the UNet's DDIM steps on the CPU; the job adds the read tasks and Parquet writes beside the actor, "
                 "and two torch threads scale a little worse in a Ray actor than in a plain process", 2)]
