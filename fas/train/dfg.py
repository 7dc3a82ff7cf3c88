"""De-fake Face Generator training on Ray Train + DeepSpeed: real faces only, noise prediction, step-based.

Only the UNet is handed to the engine (DeepSpeed ZeRO or DDP), so ZeRO partitions the UNet's parameters and
optimizer state alone; the frozen VAE and identity network sit beside it on every worker (fp16 on GPU). A run
checkpoints every ``checkpoint_every`` steps and resumes from its last step; progress is steps and images/s.

Without a pretrained VAE (the tiny CPU configs) a stand-in VAE is first fitted on the same real faces
(``vae_fit_steps``, a single Ray task) and saved with the run, so latents mean something even offline.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import torch

from fas.train.engine import restore, save_and_report, wrap_engine

GENERATOR_CONFIG = "generator_config.json"


@dataclasses.dataclass
class DFGConfig:
    """Paper defaults: SD-1.5 VAE + UNet, ArcFace identity tokens, AdamW lr 1e-5 wd 0.01 betas (0.9, 0.999),
    batch 32, 150,000 steps, DeepSpeed ZeRO-2 with fp16 on GPU, 4 workers."""

    cache: str = ""
    storage_path: str = "runs"
    name: str = "dfg"
    protocol: str | None = None  # train rows of this protocol (their real faces only); None: the train split
    fold: int | None = None
    model: str = "dfg-sd15"
    condition: str = "identity"  # identity | none (the paper's no-identity ablation: a plain LDM)
    vae: str | None = None  # local diffusers folder or hub repo; None: the model config's
    identity: str | None = None  # identity network file (ONNX or weights); None: the model config's
    unet_init: str | None = None  # initialise the UNet from SD-1.5 weights (hub repo or folder); None: random
    steps: int = 150_000
    batch_size: int = 32
    lr: float = 1e-5
    weight_decay: float = 0.01
    beta1: float = 0.9
    beta2: float = 0.999
    grad_clip: float | None = 1.0
    flip: bool = True
    checkpoint_every: int = 1000
    log_every: int = 100
    vae_fit_steps: int = 0  # >0 and no pretrained VAE: fit a stand-in VAE on the real faces first
    vae_fit_images: int = 1024
    engine: str = "deepspeed"  # deepspeed | ddp
    zero_stage: int = 2
    num_workers: int = 4
    use_gpu: bool = True
    cpus_per_worker: float = 4.0
    max_failures: int = 2
    seed: int = 0
    address: str | None = None
    validate: bool = False  # the generator has no liveness score to validate; kept for the shared launcher


def real_faces(cfg: DFGConfig):
    """The real training faces of the cache (the generator never sees an attack)."""
    from ray.data.expressions import col

    from fas.train.data import training_rows

    return training_rows(cfg.cache, ["image", "label"], cfg.protocol, cfg.fold).filter(
        expr=col("label") == 1).select_columns(["image"])


def decode_faces(images, size: int, flip: bool = False, rng: np.random.Generator | None = None) -> torch.Tensor:
    """Encoded faces -> (B, 3, size, size) in [-1, 1] (the VAE's and ArcFace's range), optionally flipped."""
    from fas.train.images import decode_batch

    x = decode_batch(images, size, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    if flip:
        rng = rng or np.random.default_rng()
        mirror = torch.from_numpy(rng.random(len(x)) < 0.5)
        x[mirror] = x[mirror].flip(-1)
    return x


def image_size(cfg: DFGConfig) -> int:
    from fas.models.dfg import read_model_config

    return read_model_config(cfg.model)["image_size"]


def build_generator(cfg: DFGConfig):
    from fas.models.dfg import create_generator

    torch.manual_seed(cfg.seed)  # every rank builds the same random parts (tiny configs)
    return create_generator(cfg.model, condition=cfg.condition, vae=cfg.vae, identity=cfg.identity,
                            unet_init=cfg.unet_init)


def train_loop_per_worker(config: dict) -> None:
    """Runs on every Ray Train worker: one optimisation step per batch until ``cfg.steps``."""
    import ray.train

    cfg = DFGConfig(**config)
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    generator = build_generator(cfg)
    optimizer = torch.optim.AdamW(generator.unet.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2),
                                  weight_decay=cfg.weight_decay)
    fp16 = cfg.use_gpu and cfg.engine == "deepspeed"
    engine = wrap_engine(cfg.engine, generator.unet, optimizer, batch_size=cfg.batch_size,
                         zero_stage=cfg.zero_stage, fp16=fp16, grad_clip=cfg.grad_clip)
    for frozen in (generator.vae, generator.identity):  # beside the engine, never partitioned
        if frozen is not None:
            frozen.to(engine.device, dtype=torch.half if fp16 else torch.float)
    saved = restore(engine)
    step, history = saved.get("step", 0), saved.get("history", [])
    shard, size = ray.train.get_dataset_shard("train"), image_size(cfg)
    rng = np.random.default_rng([cfg.seed, rank, step])
    window = {"loss": 0.0, "steps": 0, "images": 0, "tick": time.perf_counter()}
    engine.train()
    while step < cfg.steps:
        batches = 0
        for batch in shard.iter_batches(batch_size=cfg.batch_size, batch_format="numpy",
                                        local_shuffle_buffer_size=4 * cfg.batch_size, local_shuffle_seed=step):
            images = decode_faces(batch["image"], size, cfg.flip, rng).to(engine.device)
            loss = generator.training_loss(images, unet=engine)
            engine.backward(loss)
            engine.step()
            step, batches = step + 1, batches + 1
            window["loss"] += loss.item()
            window["steps"] += 1
            window["images"] += len(images)
            if rank == 0 and step % cfg.log_every == 0:
                print(f"[dfg] step {step}/{cfg.steps} loss {window['loss'] / window['steps']:.4f}", flush=True)
            if step % cfg.checkpoint_every == 0 or step >= cfg.steps:
                seconds = time.perf_counter() - window["tick"]
                metrics = {"step": step, "loss": window["loss"] / window["steps"],
                           "images_per_s": world * window["images"] / seconds}
                history.append({"step": step, "loss": metrics["loss"], "resumed_from": saved.get("step", 0)})
                save_and_report(engine, len(history) - 1, metrics,
                                lambda folder: save_portable(generator, cfg, folder), {"step": step,
                                                                                      "history": history})
                window = {"loss": 0.0, "steps": 0, "images": 0, "tick": time.perf_counter()}
            if step >= cfg.steps:
                break
        if batches == 0:
            raise ValueError(f"worker {rank} got no real faces from {cfg.cache}: the training rows hold too few "
                             f"real faces for {world} workers")


def save_portable(generator, cfg: DFGConfig, folder: Path) -> None:
    """The UNet (diffusers format) and what rebuilds the generator; frozen parts without a weights file of their
    own (a stand-in or random VAE, a random identity network) are saved beside it."""
    from fas.models.dfg import read_model_config

    arch = read_model_config(cfg.model)
    generator.unet.save_pretrained(folder / "unet")
    meta = {"method": "dfg", "model": cfg.model, "condition": cfg.condition, "image_size": arch["image_size"],
            "noise_step": arch.get("noise_step", 801), "vae": cfg.vae, "identity": cfg.identity}
    if generator.vae is not None and not arch["vae"].get("pretrained"):  # random or stand-in: small, kept
        generator.vae.save_pretrained(folder / "vae")
        meta["vae"] = "vae"
    if generator.identity is not None and not (cfg.identity or (arch.get("identity") or {}).get("path")):
        torch.save({k: v.float().cpu() for k, v in generator.identity.state_dict().items()}, folder / "identity.pt")
        meta["identity"] = "identity.pt"
    (folder / GENERATOR_CONFIG).write_text(json.dumps(meta, indent=2))


def copy_portable(checkpoint: Path, target: Path) -> Path:
    """Copy what ``load_generator`` needs (not the DeepSpeed shards) from a checkpoint folder to ``target``."""
    import shutil

    target.mkdir(parents=True, exist_ok=True)
    for name in ("unet", "vae", "identity.pt", GENERATOR_CONFIG):
        source = checkpoint / name
        if source.is_dir():
            shutil.copytree(source, target / name, dirs_exist_ok=True)
        elif source.is_file():
            shutil.copy2(source, target / name)
    return target


def load_generator(folder: str | Path, device: str | torch.device = "cpu", condition: str | None = None):
    """Rebuild a trained generator from a portable checkpoint folder (``generator_config.json`` + ``unet/``)."""
    from diffusers import UNet2DConditionModel

    from fas.models.dfg import create_generator, freeze

    folder = Path(folder)
    if not (folder / GENERATOR_CONFIG).is_file():
        raise ValueError(f"{folder} is not a generator checkpoint (no {GENERATOR_CONFIG}); give a checkpoint "
                         "folder of jobs/train_dfg.py")
    meta = json.loads((folder / GENERATOR_CONFIG).read_text())
    vae = str(folder / meta["vae"]) if meta.get("vae") == "vae" else meta.get("vae")
    identity_file = meta.get("identity") == "identity.pt"
    generator = create_generator(meta["model"], condition=condition or meta["condition"], vae=vae,
                                 identity=None if identity_file else meta.get("identity"))
    generator.unet = freeze(UNet2DConditionModel.from_pretrained(folder / "unet"))
    if identity_file and generator.identity is not None:
        generator.identity.load_state_dict(torch.load(folder / "identity.pt", weights_only=True))
    half = torch.device(device).type == "cuda"
    return generator.to(device, dtype=torch.half if half else torch.float).eval(), meta


def fit_stand_in_vae(cfg: DFGConfig) -> str:
    """Fit the model config's VAE architecture on the real faces (MSE + a small KL term) and save it; reused when
    already there. A stand-in where the SD-1.5 VAE cannot be had (tiny CPU runs)."""
    import ray

    folder = Path(cfg.storage_path) / cfg.name / "stand_in_vae"
    if (folder / "config.json").is_file():
        return str(folder)
    if "://" in cfg.storage_path:
        raise ValueError("a stand-in VAE is fitted into a local storage_path; give --vae for remote storage")
    images = [row["image"] for row in real_faces(cfg).limit(cfg.vae_fit_images).take_all()]
    ray.get(ray.remote(num_cpus=0.5)(_fit_vae).remote(cfg, images, str(folder)))
    return str(folder)


def _fit_vae(cfg: DFGConfig, images: list[bytes], folder: str) -> None:
    from fas.models.dfg import load_vae, read_model_config

    torch.manual_seed(cfg.seed)
    vae = load_vae(read_model_config(cfg.model)["vae"]).train().requires_grad_(True)
    x_all = decode_faces(images, image_size(cfg))
    optimizer = torch.optim.Adam(vae.parameters(), lr=1e-3)
    rng = np.random.default_rng(cfg.seed)
    for _ in range(cfg.vae_fit_steps):
        x = x_all[torch.from_numpy(rng.integers(0, len(x_all), min(cfg.batch_size, len(x_all))))]
        posterior = vae.encode(x).latent_dist
        loss = torch.nn.functional.mse_loss(vae.decode(posterior.sample()).sample, x) + 1e-6 * posterior.kl().mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    with torch.no_grad():  # unit-variance latents, as SD's scaling factor gives
        std = torch.cat([vae.encode(x_all[i:i + 64]).latent_dist.mean for i in range(0, len(x_all), 64)]).std()
    vae.register_to_config(scaling_factor=float(1.0 / std))
    vae.eval().save_pretrained(folder)


def train(cfg: DFGConfig, callbacks: list | None = None):
    """Launch generator training as a Ray Train ``TorchTrainer`` on the real faces of ``cfg.cache``."""
    from fas.models.dfg import read_model_config
    from fas.ray_utils import init_ray
    from fas.train.engine import fit

    init_ray(cfg.address)
    if cfg.vae_fit_steps > 0 and not cfg.vae and not (read_model_config(cfg.model).get("vae") or {}).get(
            "pretrained"):
        cfg = dataclasses.replace(cfg, vae=fit_stand_in_vae(cfg))
    # a step-based run passes over a small real-face set many times: a random block order plus each worker's
    # local shuffle buffer re-executes cheaply every epoch, where a global random_shuffle costs seconds each time
    return fit(train_loop_per_worker, cfg, {"train": real_faces(cfg).randomize_block_order(seed=cfg.seed)}, callbacks)
