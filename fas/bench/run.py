"""``fas bench [--only train,data,cues,serve] [--gpu] [--size full|smallest] [--json FILE]``.

Each CPU section runs a distributed path and the plain single-process loop it replaces side by side, on the same
model, data, batch and total CPUs, and prints their rates, the ratio and the ratio it should reach; ``--gpu`` adds the
paper-size steps of ``fas.bench.gpu`` (img/s, MFU, peak memory). A benchmark, not a test: nothing here asserts a
speed. Sizes: ``full`` (the whole CPU run about 15 minutes on 2 cores), ``smallest`` (seconds per section, for the
test that keeps it working).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

CPU_SECTIONS = ("train", "data", "cues", "serve")


def run_section(name: str, work: Path, size: str) -> list[dict]:
    """The rows of one section; each row names what ran, its plain and distributed rates, ratio and target."""
    from fas.methods.base import resolve

    runner = {"train": "fas.bench.train:train_section", "data": "fas.bench.pairs:data_section",
              "cues": "fas.bench.pairs:cue_section", "serve": "fas.bench.pairs:serve_section",
              "gpu": "fas.bench.gpu:gpu_section"}[name]
    try:
        return resolve(runner)(work / name, size)
    finally:
        shutdown_ray()  # each section starts its own cluster, sized for its pair


def shutdown_ray() -> None:
    import sys

    ray = sys.modules.get("ray")  # the GPU section runs where Ray may not be installed
    if ray is not None and ray.is_initialized():
        ray.shutdown()


def machine() -> dict:
    import os

    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
            "torch": torch.__version__, "gpu": gpu}


def fmt(value) -> str:
    if value is None:
        return ""
    return f"{value:.2f}" if isinstance(value, float) and abs(value) < 10 else str(value)


def table(rows: list[dict]) -> str:
    """Markdown: one line per pair (plain | distributed | ratio | target) or per GPU measurement."""
    lines = ["| section | what | plain | distributed | unit | ratio | target | bound |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r["section"] == "gpu":
            extra = ", ".join(f"{k} {fmt(r[k])}" for k in ("mfu", "peak_mem_gib", "gflops_per_img") if r.get(k))
            lines.append(f"| gpu ({r['device']}) | {r['what']} | | {fmt(r['rate'])} | {r['unit']} | | | {extra} |")
            continue
        lines.append(f"| {r['section']} | {r['what']} | {fmt(r.get('plain'))} | {fmt(r.get('distributed'))} | "
                     f"{r['unit']} | {fmt(r.get('ratio'))} | {r.get('target', '')} | {r.get('bound', '')} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fas bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default=",".join(CPU_SECTIONS),
                        help=f"comma-separated sections of {list(CPU_SECTIONS)} (default: all)")
    parser.add_argument("--gpu", action="store_true", help="add the GPU section (paper-size steps)")
    parser.add_argument("--size", choices=("full", "smallest"), default="full")
    parser.add_argument("--work", default="runs/bench", help="folder for generated data, caches and runs")
    parser.add_argument("--json", help="write the rows and the machine to this file")
    args = parser.parse_args(argv)
    sections = [s for s in args.only.split(",") if s] + (["gpu"] if args.gpu else [])
    unknown = sorted(set(sections) - set(CPU_SECTIONS) - {"gpu"})
    if unknown:
        parser.error(f"unknown section(s) {unknown}; choose from {list(CPU_SECTIONS)} or --gpu")
    rows, started = [], time.perf_counter()
    for name in sections:
        tick = time.perf_counter()
        rows += run_section(name, Path(args.work), args.size)
        print(f"[bench] {name} done in {time.perf_counter() - tick:.0f} s", flush=True)
    report = {"machine": machine(), "size": args.size, "seconds": round(time.perf_counter() - started, 1),
              "rows": rows}
    print(table(rows))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
