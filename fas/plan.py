"""``fas plan``: what one GPU holds under a config, whether it fits, and how long the run takes, before it starts.

Model states follow the ZeRO paper's accounting (Rajbhandari et al. 2020) for mixed-precision Adam: per trainable
parameter 2 bytes of half weights, 2 of half gradients and 12 of fp32 optimizer state (master weights and two
moments); ZeRO-1 partitions the optimizer state over the ranks, ZeRO-2 the gradients too, ZeRO-3 the weights too.
In fp32 a parameter holds 4 + 4 + 8 bytes (+4 for ZeRO's flat fp32 partition); DDP adds a 4-byte gradient bucket.
Frozen parameters (a VAE, a text tower) hold their weights only. Activations are measured, not guessed: the
method's own training step runs on the CPU at batch scales 1 and 2 (random weights of the real architecture) and
every tensor autograd saves for backward is counted; the per-sample part scales to the config's batch (half
precision halves it). FLOPs of the same steps are counted analytically (``FlopCounterMode``).
"""

from __future__ import annotations

import dataclasses
import math
import re
import tempfile
from pathlib import Path

import numpy as np
import torch

GIB = 2**30
# name fragment -> memory in GiB as the driver reports it (the papers' T4: 16 GB, 15 GiB); peaks: PEAK_TFLOPS
GPU_MEMORY_GIB = {"T4": 15.0, "V100": 15.8, "A10G": 22.5, "L4": 22.5, "A100": 40.0, "H100": 79.6, "H200": 139.8}
CONTEXT_GIB = 1.0  # the CUDA context, cuDNN/cuBLAS workspaces and allocator fragmentation, per GPU


@dataclasses.dataclass
class Probe:
    """What one measured training step of the config's architecture says: parameters, activations, FLOPs."""

    trainable: int
    frozen: int
    batch_field: str  # the config field that scales a step (batch_size; OA-Net: per_group)
    activations: tuple[float, float]  # bytes saved for backward in fp32: (fixed, per unit of batch_field)
    flops: tuple[float, float]  # forward + backward FLOPs per step: (fixed, per unit of batch_field)


def synthetic_rows(columns, n: int, domains: list[str], size: int = 256, seed: int = 0) -> dict[str, np.ndarray]:
    """``n`` training rows of the cache's columns: generated face JPEGs, cues, both labels in every domain."""
    from fas.bench.gpu import faces
    from fas.cues import encode_cue

    rng = np.random.default_rng(seed)
    rows = {}
    for column in columns:
        if column == "image":
            rows[column] = faces(n, size, seed)
        elif column == "cue":
            rows[column] = np.array([encode_cue(rng.standard_normal((3, size, size))) for _ in range(n)],
                                    dtype=object)
        elif column == "label":
            rows[column] = np.arange(n) % 2
        elif column == "attack":
            rows[column] = np.array(["real"] * n, dtype=object)
        else:  # a domain column
            rows[column] = np.array([domains[(i // 2) % len(domains)] for i in range(n)], dtype=object)
    return rows


def source_domains(cfg) -> list[str]:
    """Stand-in names for the training domains: as many as the protocol's sources (``O&C&I->M``: 3), else 3."""
    sources = (cfg.protocol or "").split("->")[0]
    return [f"domain{i}" for i in range(len(sources.split("&")) if "->" in (cfg.protocol or "") else 3)]


def measure_step(method, cfg, scale: int, domains: list[str]) -> tuple[float, float, int, int]:
    """(bytes saved for backward, FLOPs, trainable, frozen parameters) of one CPU training step at ``scale``."""
    from fas.engine.speed import apply_memory_options, counted
    from fas.methods.balanced import EXTRA_STREAM
    from fas.methods.base import StepInfo, WorkerContext, resolve

    cfg = dataclasses.replace(cfg, **{method.batch_field: scale})
    needs = resolve(method.data)(cfg)
    streams = {**needs.streams, **({EXTRA_STREAM: ("image",)} if needs.extra_real else {})}
    ctx = WorkerContext(rank=0, world_size=1, device=torch.device("cpu"), dtype=torch.float,
                        rng=np.random.default_rng(0), open_stream=lambda name, size: iter(
                            [synthetic_rows(streams[name], max(size, 2 * len(domains)), domains)] * 4))
    torch.manual_seed(0)
    task = resolve(method.task)(cfg, ctx)
    apply_memory_options(task.module, grad_checkpointing=cfg.engine.grad_checkpointing, channels_last=False)
    rows = scale if method.batch_field == "batch_size" else scale * 2 * len(domains)  # every group's rows
    batch = task.prepare_batch(synthetic_rows(needs.columns, rows, domains))
    params = {p.untyped_storage().data_ptr() for p in task.module.parameters()}
    saved: dict[int, int] = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in params and storage.device.type != "meta":
            saved[storage.data_ptr()] = storage.nbytes()
        return tensor

    def step():
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            losses = task.train_step(task.module, batch, StepInfo(step=0, epoch=0, progress=0.5))
        losses["loss"].backward()

    _, flops = counted(step)
    trainable = sum(p.numel() for p in task.module.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in all_parameters(task)) - trainable
    return float(sum(saved.values())), float(flops), trainable, frozen


def all_parameters(task) -> list[torch.nn.Parameter]:
    """The module's parameters and those of frozen networks the task holds beside it (DFG's VAE, identity)."""
    seen, out = set(), []
    holders = [task.module] + [v for v in vars(task).values() if isinstance(v, torch.nn.Module)]
    holders += [v for m in list(holders) for v in vars(m).values() if isinstance(v, torch.nn.Module)]
    for holder in holders:
        for p in holder.parameters():
            if id(p) not in seen:
                seen.add(id(p))
                out.append(p)
    return out


def probe(method, cfg) -> Probe:
    """Measure the config's architecture (random weights, nothing loaded) at batch scales 1 and 2 on the CPU."""
    from fas.methods.base import resolve

    domains = source_domains(cfg)
    with tempfile.TemporaryDirectory() as folder:
        cfg = resolve(method.weightless)(cfg, Path(folder))
        if hasattr(cfg, "domains"):
            cfg = dataclasses.replace(cfg, domains=domains)
        one, two = (measure_step(method, cfg, scale, domains) for scale in (1, 2))
    per_unit = (two[0] - one[0], two[1] - one[1])
    return Probe(trainable=one[2], frozen=one[3], batch_field=method.batch_field,
                 activations=(one[0] - per_unit[0], per_unit[0]), flops=(one[1] - per_unit[1], per_unit[1]))


def model_state_bytes(probe: Probe, backend: str, zero_stage: int, half: bool, world: int) -> dict[str, float]:
    """Per-GPU bytes of weights, gradients and optimizer state (see the module docstring)."""
    from fas.engine.backends import effective_zero_stage

    psi, n = probe.trainable, world
    if backend == "ddp":
        return {"weights": 4.0 * (psi + probe.frozen), "gradients": 8.0 * psi, "optimizer": 8.0 * psi}
    stage = effective_zero_stage(zero_stage, world)
    weight, grad, optim = (2, 2, 12) if half else (4, 4, 8 + (4 if stage else 0))
    return {"weights": weight * psi / (n if stage >= 3 else 1) + weight * probe.frozen,
            "gradients": grad * psi / (n if stage >= 2 else 1),
            "optimizer": optim * psi / (n if stage >= 1 else 1)}


@dataclasses.dataclass
class Plan:
    config: str
    gpu: str
    gpus: int
    gpu_memory_gib: float
    batch: int  # the config's value of the probe's batch field
    precision: str
    memory_gib: dict[str, float]  # per GPU
    fits: bool
    steps: int | None
    hours: float | None
    assumed_mfu: float
    flops_per_step: float


def gpu_spec(name: str) -> tuple[float, float, float]:
    """(memory GiB, dense fp16 TFLOP/s, fp32 TFLOP/s) of a GPU model, by name fragment."""
    from fas.engine.speed import PEAK_TFLOPS

    for fragment, memory in GPU_MEMORY_GIB.items():
        if fragment.lower() in name.lower():
            return (memory, *PEAK_TFLOPS[fragment])
    raise ValueError(f"unknown GPU {name!r}; known: {list(GPU_MEMORY_GIB)} (or give --gpu-memory and --peak-tflops)")


def parse_gib(text: str | float) -> float:
    match = re.fullmatch(r"\s*([\d.]+)\s*(GiB|GB|G)?\s*", str(text), re.IGNORECASE)
    if not match:
        raise ValueError(f"cannot read a memory size from {text!r} (e.g. 16GiB)")
    value = float(match.group(1))
    return value * 1e9 / GIB if (match.group(2) or "").upper() == "GB" else value


def plan_run(method, cfg, probe: Probe, *, gpus: int, gpu: str = "T4", gpu_memory: float | None = None,
             peak_tflops: float | None = None, mfu: float = 0.3, rows: int | None = None, config: str = "") -> Plan:
    """The per-GPU memory plan and the run's estimated wall time on ``gpus`` GPUs (one rank per GPU)."""
    run = cfg.engine
    half = run.backend == "deepspeed" and run.precision != "fp32"  # the engine trains fp16/bf16 on GPUs
    memory, fp16_peak, fp32_peak = gpu_spec(gpu)
    memory = gpu_memory or memory
    peak = peak_tflops or (fp16_peak if half else fp32_peak)
    batch = getattr(cfg, probe.batch_field)
    states = model_state_bytes(probe, run.backend, run.zero_stage, half, gpus)
    activation = (probe.activations[0] + batch * probe.activations[1]) * (0.5 if half else 1.0)
    used = {**{k: v / GIB for k, v in states.items()}, "activations": activation / GIB, "context": CONTEXT_GIB}
    used["total"] = sum(used.values())
    flops = probe.flops[0] + batch * probe.flops[1]
    steps = run.steps
    if steps is None and rows:
        steps = run.epochs * math.ceil(rows / (batch * gpus))
    hours = steps * flops / (peak * 1e12 * mfu) / 3600 if steps else None
    return Plan(config=config, gpu=gpu, gpus=gpus, gpu_memory_gib=memory, batch=batch,
                precision=("fp16" if half else "fp32") + (f" ZeRO-{run.zero_stage}" if run.backend == "deepspeed"
                                                          else " DDP"),
                memory_gib={k: round(v, 2) for k, v in used.items()}, fits=used["total"] <= memory, steps=steps,
                hours=hours, assumed_mfu=mfu, flops_per_step=flops)


def format_plan(plan: Plan, probe: Probe) -> str:
    m = plan.memory_gib
    lines = [f"{plan.config}: {probe.trainable / 1e6:.1f}M trainable + {probe.frozen / 1e6:.1f}M frozen parameters, "
             f"{plan.precision}, {plan.gpus} x {plan.gpu} ({plan.gpu_memory_gib:g} GiB), {probe.batch_field} "
             f"{plan.batch} per GPU",
             f"  per GPU: weights {m['weights']:.2f} GiB, gradients {m['gradients']:.2f}, optimizer "
             f"{m['optimizer']:.2f}, activations {m['activations']:.2f}, CUDA context {m['context']:.2f} "
             f"= {m['total']:.2f} GiB: {'fits' if plan.fits else 'DOES NOT FIT'}",
             f"  per step per GPU: {plan.flops_per_step / 1e12:.2f} TFLOP (forward + backward)"]
    if plan.hours is not None:
        lines.append(f"  {plan.steps:,} steps: about {plan.hours:.1f} h of wall time at an assumed "
                     f"{plan.assumed_mfu:.0%} MFU (--mfu)")
    else:
        lines.append("  wall time: an epoch run; give --rows (training rows per epoch) or a readable cache")
    return "\n".join(lines)


def cache_rows(cfg) -> int | None:
    """Training rows of the config's cache, where it is readable here."""
    from fas.data.selection import selected_ids

    if not Path(cfg.cache).is_dir():
        return None
    return len(selected_ids(cfg.cache, "train", cfg.protocol, cfg.fold))


def run_plan(config: str, gpus: int, gpu: str = "T4", gpu_memory: str | None = None,
             peak_tflops: float | None = None, mfu: float = 0.3, rows: int | None = None, out=print) -> int:
    """Print the plan of ``config`` ([METHOD=]FILE); exit status 1 when it does not fit."""
    from fas.doctor import method_for_config

    method, path = method_for_config(config)
    cfg = method.load_config(path)
    found = probe(method, cfg)
    plan = plan_run(method, cfg, found, gpus=gpus, gpu=gpu, gpu_memory=parse_gib(gpu_memory) if gpu_memory else None,
                    peak_tflops=peak_tflops, mfu=mfu, rows=rows or cache_rows(cfg), config=f"{method.name} ({path})")
    out(format_plan(plan, found))
    return 0 if plan.fits else 1
