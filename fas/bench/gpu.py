"""The GPU section of ``fas bench``: paper-size steps through the engine's own pieces on one device.

The method's own task (CLIPC8 ViT-L/14, the De-fake Face Generator with an SD-1.5-sized UNet and VAE), wrapped by
the engine's ``wrap_engine`` in DeepSpeed ZeRO-2 (fp16 on a GPU), the cue maker the cue job runs and the predictor
a Serve replica runs, in one process without Ray (one rank), so it runs where only torch and DeepSpeed are
installed. Weights are random tensors of the real architectures (speed does not depend on their values); batches
are decoded once ahead of the timed steps, as the engine's prefetch does. ``size="smallest"`` runs the same code
on the tiny configs on CPU (the test of this section).
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from fas.engine.speed import apply_memory_options, counted, mfu, peak_tflops

@dataclasses.dataclass(frozen=True)
class GpuSpec:
    clip_model: str = "ViT-L-14"
    clip_batches: tuple[int, ...] = (16, 64)  # 16: the paper's per-GPU batch
    dfg_model: str = "dfg-sd15"
    dfg_batch: int = 32  # the paper's per-GPU batch
    cue_batch: int = 16
    ddim_steps: int = 50
    warmup: int = 3
    steps: int = 10
    latency_calls: int = 50
    other_zero_stages: tuple[int, ...] = (0, 1)  # CLIPC8 at the paper batch under these stages too
    profile: bool = True  # torch.profiler tables of one CLIPC8 and one DFG step, written beside the results
    paper_configs: bool = True  # also clipc8.yaml and dfg.yaml as users run them, from fabricated weight stores


SIZES = {"full": GpuSpec(),
         "smallest": GpuSpec(clip_model="clipc8-tiny", clip_batches=(4,), dfg_model="dfg-tiny", dfg_batch=4,
                             cue_batch=2, ddim_steps=10, warmup=1, steps=2, latency_calls=3,
                             other_zero_stages=(0,), profile=False, paper_configs=False)}


def one_rank_group(device: torch.device) -> None:
    """A world of one process (nccl on a GPU, gloo on CPU), which DeepSpeed reuses."""
    import deepspeed

    for key, value in {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1"}.items():
        os.environ.setdefault(key, value)
    os.environ.setdefault("MASTER_PORT", str(29500 + os.getpid() % 1000))
    if not torch.distributed.is_initialized():
        deepspeed.init_distributed(dist_backend="nccl" if device.type == "cuda" else "gloo")


def faces(n: int, size: int, seed: int = 0) -> np.ndarray:
    """``n`` encoded synthetic selfies (JPEG bytes) at ``size`` px."""
    from fas.data.faces import encode_image
    from fas.data.synth import make_subject, real_scene, to_uint8

    rng = np.random.default_rng(seed)
    return np.array([encode_image(to_uint8(real_scene(rng, make_subject(seed, i), size)[0]))
                     for i in range(n)], dtype=object)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def memory_reset(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_gib(device: torch.device) -> float | None:
    return round(torch.cuda.max_memory_allocated(device) / 2**30, 2) if device.type == "cuda" else None


def timed_training(task, engine, batch: dict, spec: GpuSpec, device: torch.device, half: str | None) -> dict:
    """img/s of ``spec.steps`` engine steps after ``spec.warmup``, the analytic FLOPs of one, MFU, peak memory."""
    from fas.methods.base import StepInfo

    def step():
        losses = task.train_step(engine, batch, StepInfo(step=0, epoch=0, progress=0.0))
        engine.backward(losses["loss"])
        engine.step()
        return losses

    memory_reset(device)
    _, flops = counted(step)
    for _ in range(spec.warmup - 1):
        step()
    sync(device)
    start = time.perf_counter()
    for _ in range(spec.steps):
        step()
    sync(device)
    rows = len(next(iter(batch.values())))
    rate = rows * spec.steps / (time.perf_counter() - start)
    utilisation = mfu(flops / rows, rate, peak_tflops(device, half))
    return {"rate": round(rate, 1), "unit": "img/s", "gflops_per_img": round(flops / rows / 1e9, 1),
            "mfu": None if utilisation is None else round(utilisation, 3), "peak_mem_gib": peak_gib(device)}


def on_device(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


def context(device: torch.device, half: str | None, seed: int = 0):
    from fas.methods.base import WorkerContext

    dtype = {"fp16": torch.half, "bf16": torch.bfloat16}.get(half, torch.float)
    return WorkerContext(rank=0, world_size=1, device=device, dtype=dtype, rng=np.random.default_rng(seed),
                         open_stream=lambda name, size: iter(()))


def engine_of(task, half: str | None, zero_stage: int = 2):
    from fas.engine.backends import wrap_engine

    return wrap_engine("deepspeed", task.module, task.optimizer, batch_size=task.batch_size, zero_stage=zero_stage,
                       half=half, grad_clip=task.grad_clip)


def profile_steps(task, engine, batch: dict, out: Path, steps: int = 2) -> None:
    """torch.profiler tables (by self CPU time and by device time) of ``steps`` training steps: where a step's
    time goes when the device waits."""
    from torch.profiler import ProfilerActivity, profile

    from fas.methods.base import StepInfo

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    with profile(activities=activities) as prof:
        for _ in range(steps):
            losses = task.train_step(engine, batch, StepInfo(step=0, epoch=0, progress=0.0))
            engine.backward(losses["loss"])
            engine.step()
        sync(batch_device(batch))
    events = prof.key_averages()
    tables = [events.table(sort_by="self_cpu_time_total", row_limit=25)]
    if torch.cuda.is_available():
        tables.append(events.table(sort_by="self_cuda_time_total", row_limit=15))
    out.write_text("\n\n".join(tables))


def batch_device(batch: dict) -> torch.device:
    return next(v.device for v in batch.values() if torch.is_tensor(v))


def clipc8_rows(spec: GpuSpec, work: Path, device: torch.device, half: str | None) -> tuple[list[dict], object]:
    """CLIPC8 training steps: the paper batch under other ZeRO stages, then ZeRO-2 at each batch size and the
    paper batch with gradient checkpointing."""
    rows = [bare_clipc8_row(spec, device)]
    for stage in spec.other_zero_stages:  # what ZeRO's partitioning costs on one device
        task, engine, encoded = clipc8_engine(spec, device, half, stage)
        batch = clipc8_batch(task, encoded, spec.clip_batches[0], device)
        rows.append({"what": clipc8_what(spec, task, half, stage, spec.clip_batches[0]),
                     **timed_training(task, engine, batch, spec, device, half)})
        del task, engine
    if device.type == "cuda" and torch.cuda.is_bf16_supported():  # no loss scaling: no overflow checks per step
        task, engine, encoded = clipc8_engine(spec, device, "bf16", 2)
        batch = clipc8_batch(task, encoded, spec.clip_batches[0], device)
        rows.append({"what": clipc8_what(spec, task, "bf16", 2, spec.clip_batches[0]) + " (not on T4)",
                     **timed_training(task, engine, batch, spec, device, "bf16")})
        del task, engine
    task, engine, encoded = clipc8_engine(spec, device, half, 2)
    for batch_size, checkpointing in [(b, False) for b in spec.clip_batches] + [(spec.clip_batches[0], True)]:
        apply_memory_options(task.module, grad_checkpointing=checkpointing, channels_last=False)
        batch = clipc8_batch(task, encoded, batch_size, device)
        what = clipc8_what(spec, task, half, 2, batch_size)
        rows.append({"what": what + (", grad checkpointing" if checkpointing else ""),
                     **timed_training(task, engine, batch, spec, device, half)})
    task.module.set_grad_checkpointing(False)
    if spec.profile:
        profile_steps(task, engine, clipc8_batch(task, encoded, spec.clip_batches[0], device),
                      work / "profile_clipc8.txt")
    return rows, task


class BareEngine:
    """The plain PyTorch step DeepSpeed replaces, behind the same calls: fp16 autocast + GradScaler on a GPU."""

    def __init__(self, module: torch.nn.Module, optimizer, device: torch.device):
        self.module, self.optimizer, self.device = module.to(device), optimizer, device
        self.scaler = torch.amp.GradScaler(device.type, enabled=device.type == "cuda")

    def __call__(self, *args, **kwargs):
        with torch.autocast(self.device.type, dtype=torch.half, enabled=self.device.type == "cuda"):
            return self.module(*args, **kwargs)

    def backward(self, loss: torch.Tensor) -> None:
        self.scaler.scale(loss).backward()

    def step(self) -> None:
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)


def bare_clipc8_row(spec: GpuSpec, device: torch.device) -> dict:
    """CLIPC8 at the paper batch without DeepSpeed: what the engine's wrapping costs."""
    from fas.methods.clipc8.config import CLIPC8Config
    from fas.methods.clipc8.task import CLIPC8Task

    torch.manual_seed(0)
    cfg = CLIPC8Config(model=spec.clip_model, pretrained=None, batch_size=spec.clip_batches[0])
    task = CLIPC8Task(cfg, context(device, None))
    engine = BareEngine(task.module, task.optimizer, device)
    batch = clipc8_batch(task, faces(spec.clip_batches[0], task.transform.image_size), spec.clip_batches[0], device)
    amp = "fp16 autocast" if device.type == "cuda" else "fp32"
    return {"what": f"CLIPC8 {spec.clip_model} train step, bare PyTorch ({amp}, no DeepSpeed), batch "
                    f"{spec.clip_batches[0]}, {task.transform.image_size} px",
            **timed_training(task, engine, batch, spec, device, "fp16" if device.type == "cuda" else None)}


def clipc8_engine(spec: GpuSpec, device: torch.device, half: str | None, stage: int):
    from fas.methods.clipc8.config import CLIPC8Config
    from fas.methods.clipc8.task import CLIPC8Task

    torch.manual_seed(0)
    cfg = CLIPC8Config(model=spec.clip_model, pretrained=None, batch_size=spec.clip_batches[0])
    task = CLIPC8Task(cfg, context(device, half))
    return task, engine_of(task, half, stage), faces(max(spec.clip_batches), task.transform.image_size)


def clipc8_batch(task, encoded: np.ndarray, batch_size: int, device: torch.device) -> dict:
    attacks = np.array(["real"] * batch_size, dtype=object)
    return on_device(task.prepare_batch({"image": encoded[:batch_size], "attack": attacks}), device)


def clipc8_what(spec: GpuSpec, task, half: str | None, stage: int, batch_size: int) -> str:
    return (f"CLIPC8 {spec.clip_model} train step, {half or 'fp32'} ZeRO-{stage}, batch {batch_size}, "
            f"{task.transform.image_size} px")


def dfg_rows(spec: GpuSpec, work: Path, device: torch.device, half: str | None) -> tuple[list[dict], Path]:
    """De-fake Face Generator training steps (VAE encode + identity + UNet), plain and checkpointed; its folder."""
    from fas.methods.dfg.config import DFGConfig
    from fas.methods.dfg.generator import save_generator
    from fas.methods.dfg.model import weightless
    from fas.methods.dfg.task import DFGTask

    torch.manual_seed(0)
    cfg = weightless(DFGConfig(model=spec.dfg_model, batch_size=spec.dfg_batch, cache=""), work)
    task = DFGTask(cfg, context(device, half))
    engine = engine_of(task, half)
    batch = on_device(task.prepare_batch({"image": faces(spec.dfg_batch, task.transform.image_size)}), device)
    rows = []
    for checkpointing in (False, True):
        apply_memory_options(task.module, grad_checkpointing=checkpointing, channels_last=False)
        what = (f"DFG {spec.dfg_model} train step (UNet {sum(p.numel() for p in task.module.parameters()) / 1e6:.0f}M"
                f" params), {half or 'fp32'} ZeRO-2, batch {spec.dfg_batch}, {task.transform.image_size} px")
        rows.append({"what": what + (", grad checkpointing" if checkpointing else ""),
                     **timed_training(task, engine, batch, spec, device, half)})
    task.module.disable_gradient_checkpointing()
    if spec.profile:
        profile_steps(task, engine, batch, work / "profile_dfg.txt")
    folder = work / "generator"
    save_generator(task.generator, cfg, folder)
    return rows, folder


def cue_row(spec: GpuSpec, folder: Path, device: torch.device) -> dict:
    """The cue job's work: decode, DDIM reconstruction (noise to t = 801, the grid steps below), cue encoding."""
    from fas.cues import load_cue_maker

    maker = load_cue_maker(folder, str(device), ddim_steps=spec.ddim_steps)
    images = faces(spec.cue_batch, maker.transform.image_size, seed=1)
    keys = [str(i) for i in range(len(images))]
    maker(images, keys)  # warm-up
    sync(device)
    start = time.perf_counter()
    rounds = max(1, spec.steps // 5)
    for _ in range(rounds):
        maker(images, keys)
    sync(device)
    steps = len(maker.generator.reconstruction_steps(maker.noise_step, spec.ddim_steps)[1])
    rate = rounds * len(images) / (time.perf_counter() - start)
    return {"what": f"cues: {steps} DDIM steps, batch {spec.cue_batch}", "rate": round(rate, 1), "unit": "img/s"}


def latency_row(spec: GpuSpec, task, work: Path, device: torch.device) -> dict:
    """p50 of one request's model work in a Serve model replica: the predictor of a CLIPC8 folder, batch 1."""
    from fas.methods import load_predictor

    folder = work / "clipc8"
    task.portable(folder)
    predictor = load_predictor(folder, str(device))
    image = faces(1, 256, seed=2)
    predictor.predict(image)
    times = []
    for _ in range(spec.latency_calls):
        start = time.perf_counter()
        predictor.predict(image)  # returns numpy: the device work is done
        times.append((time.perf_counter() - start) * 1000)
    return {"what": f"CLIPC8 {spec.clip_model} predictor, 1 image (a Serve replica's work)",
            "rate": round(statistics.median(times), 2), "unit": "ms p50"}


def fabricated_stores(work: Path) -> Path:
    """The pretrained files clipc8.yaml and dfg.yaml name, fabricated (``fas.models.stores``) in a hub cache of
    the bench's own (never the user's), which the weight resolution then reads; the ArcFace ONNX's path."""
    import huggingface_hub.constants

    from fas.models import stores

    cache = work / "hub"
    os.environ["HF_HUB_CACHE"] = huggingface_hub.constants.HF_HUB_CACHE = str(cache)
    stores.openai_vit_l14(cache)
    stores.sd15(cache)
    onnx = work / "weights" / "arcface_w600k_r50.onnx"
    stores.arcface_onnx(onnx)
    return onnx


def paper_config_rows(spec: GpuSpec, device: torch.device, half: str | None, identity: Path,
                      batch_size: int | None = None, zero_stage: int | None = None) -> list[dict]:
    """Steps of clipc8.yaml and dfg.yaml as a user's first GPU job builds them: every weight resolved and loaded
    from the hub cache (ViT-L/14 openai; SD-1.5's VAE, and its UNet as init; the ArcFace ONNX at ``identity``, run
    by onnxruntime on the provider it has), at the configs' batch and ZeRO stage unless given."""
    from fas.methods import get_method
    from fas.methods.base import resolve
    from fas.models.stores import SD15

    rows = []
    for name, changes in (("clipc8", {}), ("dfg", {"identity": str(identity), "unet_init": SD15})):
        method = get_method(name)
        cfg = method.load_config()
        cfg = dataclasses.replace(cfg, **changes, batch_size=batch_size or cfg.batch_size)
        stage = cfg.engine.zero_stage if zero_stage is None else zero_stage
        torch.manual_seed(0)
        task = resolve(method.task)(cfg, context(device, half))
        engine = engine_of(task, half, stage)
        batch = on_device(task.prepare_batch({"image": faces(cfg.batch_size, 256),
                                              "attack": np.array(["real"] * cfg.batch_size, dtype=object)}), device)
        rows.append({"what": f"{method.default_config} as configured ({cfg.model}, {half or 'fp32'} ZeRO-{stage}, "
                             f"batch {cfg.batch_size}), weights from the fabricated stores",
                     **timed_training(task, engine, batch, spec, device, half)})
        del task, engine, batch
        release(device)  # the next config's peak memory is its own
    return rows


def release(device: torch.device) -> None:
    """Free what a finished row's engine held: DeepSpeed's hooks make reference cycles that only a collection
    breaks."""
    import gc

    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def gpu_section(work: Path, size: str = "full") -> list[dict]:
    """Every GPU row; on a machine without CUDA the same steps run on CPU in fp32 (for the smallest size)."""
    spec = SIZES[size]
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    half = "fp16" if device.type == "cuda" else None  # fp16: what the papers' T4s run
    work.mkdir(parents=True, exist_ok=True)
    one_rank_group(device)
    rows, task = clipc8_rows(spec, work, device, half)
    rows.append(latency_row(spec, task, work, device))
    del task
    dfg, folder = dfg_rows(spec, work, device, half)
    rows += dfg + [cue_row(spec, folder, device)]
    if spec.paper_configs and device.type == "cuda":
        rows += paper_config_rows(spec, device, half, fabricated_stores(work))
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    return [{"section": "gpu", "device": name, **row} for row in rows]
