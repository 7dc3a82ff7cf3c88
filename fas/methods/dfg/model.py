"""AG-FAS's De-fake Face Generator: an identity-conditioned latent diffusion model trained on real faces only.

Composition, as in diffusers pipelines: a frozen ``AutoencoderKL`` (the SD-1.5 VAE by default), a trainable
``UNet2DConditionModel``, a frozen face-identity network whose pre-pooling feature map (7x7x512 for ArcFace at
112 px) becomes 49 cross-attention tokens (the UNet's own ``encoder_hid_proj`` projects them to its width, so the
UNet is the only part that trains), ``DDPMScheduler`` for training and ``DDIMScheduler`` (eta = 0) for
reconstruction. The no-identity ablation feeds one zero token instead (the same UNet, no condition), and the
AnoDDPM-style variant is a model config without a VAE (diffusion in pixel space).

Reconstruction follows the authors' img2img-style code: the DDIM grid of ``ddim_steps`` over the 1000 training
steps (SD-1.5's ``steps_offset = 1``: 1, 21, ..., 981 for 50 steps); the input's latent is noised to the largest
grid step <= ``noise_step`` and denoised over the grid steps below it (41 steps for the default t = 801). At
t = 0 no step runs and the reconstruction is the VAE round trip. The anomalous cue is input - reconstruction,
standardised per image.

Architectures are JSON files in ``fas/model_configs`` (``dfg-sd15``, ``dfg-tiny``, ``anoddpm``, ``anoddpm-tiny``);
pretrained weights (VAE, optional UNet init, identity network) are resolved apart from them.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fas.models import read_model_config as _read_config
from fas.models.weights import TIMM_FILES, WeightRef, diffusers_weights, load_backbone_weights


def read_model_config(name: str) -> dict:
    return _read_config(name, "generator", ("dfg", "anoddpm"))


def freeze(module: nn.Module) -> nn.Module:
    module.requires_grad_(False)
    return module.eval()


def vae_weights(spec: dict, source: str | None = None) -> WeightRef:
    """The VAE's weights: ``source`` (a local diffusers folder or hub repo) or the config's pretrained one."""
    return diffusers_weights("VAE", source or spec.get("pretrained"), spec.get("subfolder"))


def unet_weights(init: str | None, subfolder: str = "unet") -> WeightRef:
    """Weights that initialise the UNet: a diffusers weights file, a local folder, or a hub repo (SD-1.5)."""
    return diffusers_weights("UNet init", init, subfolder, companions=())


def identity_weights(spec: dict | None, path: str | None = None) -> WeightRef | None:
    """The identity network's file: an ArcFace ONNX export, or a timm CNN's weights."""
    if spec is None:
        return None
    path = path or spec.get("path")
    if spec["kind"] == "onnx":
        return WeightRef("identity network (ArcFace ONNX)", path or "<identity.onnx>", howto=(
            f"put ArcFace's ONNX export at {path or 'a path'} (insightface's buffalo_l pack holds w600k_r50.onnx, "
            "usable as is: ~/.insightface/models/buffalo_l/w600k_r50.onnx) or pass its path (--identity PATH), "
            "or choose --condition none"))
    if spec["kind"] == "timm":
        return WeightRef(f"identity network {spec['arch']}", path, spec.get("hub"), TIMM_FILES)
    raise ValueError(f"unknown identity network kind {spec['kind']!r}; choose onnx or timm")


def generator_weights(model: str, condition: str = "identity", vae: str | None = None,
                      identity: str | None = None, unet_init: str | None = None) -> list[WeightRef]:
    """Every pretrained file a generator needs: its VAE, its identity network, the UNet's initialisation."""
    arch = read_model_config(model)
    refs = [vae_weights(arch["vae"], vae) if arch.get("vae") else None,
            identity_weights(arch.get("identity") if condition == "identity" else None, identity),
            unet_weights(unet_init or arch.get("unet_init"))]
    return [ref for ref in refs if ref is not None and ref.needed]


def config_weights(cfg) -> list[WeightRef]:
    """Every pretrained file a DFG config needs (``fas doctor``)."""
    return generator_weights(cfg.model, cfg.condition, cfg.vae, cfg.identity, cfg.unet_init)


# ArcFace's token shape (7 x 7 x 512 before pooling) from a random timm ResNet-18 at 224 px: a stand-in identity
# network that runs on the worker's device (insightface's ONNX runs in onnxruntime, on the CPU unless
# onnxruntime-gpu is installed) and needs no file.
STAND_IN_IDENTITY = {"kind": "timm", "arch": "resnet18", "input_size": 224}


def weightless(cfg, folder: Path):
    """The config with the same architecture and nothing to load: SD-1.5's VAE architecture with random weights,
    the stand-in identity network, a random UNet (plans and benchmarks, where values do not matter)."""
    import dataclasses
    import json

    from fas.models.stores import SD15_VAE_CONFIG

    arch = read_model_config(cfg.model)
    if (arch.get("vae") or {}).get("pretrained"):
        arch["vae"] = {"config": {k: v for k, v in SD15_VAE_CONFIG.items() if not k.startswith("_")}}
    if (arch.get("identity") or {}).get("kind") == "onnx":
        arch["identity"] = STAND_IN_IDENTITY
    path = Path(folder) / f"{Path(cfg.model).stem}-weightless.json"
    path.write_text(json.dumps(arch, indent=1))
    return dataclasses.replace(cfg, model=str(path), vae=None, identity=None, unet_init=None)


def load_vae(spec: dict, source: str | None = None):
    """The frozen VAE from its weights (a local diffusers folder or the hub cache), else a randomly initialised
    VAE of the config's architecture (tests, or before a stand-in VAE is fitted)."""
    from diffusers import AutoencoderKL

    ref = vae_weights(spec, source)
    if not ref.needed:
        return freeze(AutoencoderKL(**spec["config"]))
    return freeze(AutoencoderKL.from_pretrained(Path(ref.resolve()).parent, local_files_only=True))


def build_unet(spec: dict, init: str | None = None, subfolder: str = "unet"):
    """The UNet from its architecture config; ``init`` (a diffusers weights file, or a hub repo holding
    ``unet/diffusion_pytorch_model.safetensors``) initialises every weight except the identity projection."""
    from diffusers import UNet2DConditionModel

    unet = UNet2DConditionModel(**spec)
    if init and Path(init).is_dir():  # a local diffusers pipeline or unet folder
        init = next((str(p) for p in (Path(init) / subfolder, Path(init))
                     for p in [p / "diffusion_pytorch_model.safetensors"] if p.is_file()), init)
    weights = unet_weights(init, subfolder).resolve()
    if weights:
        from safetensors.torch import load_file

        state = load_file(weights) if weights.endswith(".safetensors") else torch.load(weights, weights_only=True)
        missing, unexpected = unet.load_state_dict(state, strict=False)
        if unexpected or any(not k.startswith("encoder_hid_proj.") for k in missing):
            raise ValueError(f"UNet weights {weights} do not fit the architecture: missing {missing[:5]}, "
                             f"unexpected {unexpected[:5]}")
    return unet


class TimmIdentity(nn.Module):
    """A timm CNN's last feature map as identity tokens: (B, 3, S, S) in [-1, 1] -> (B, h*w, C)."""

    def __init__(self, arch: str, kwargs: dict, weights: str | None = None):
        super().__init__()
        import timm

        self.net = timm.create_model(arch, pretrained=False, num_classes=0, global_pool="", **kwargs)
        if weights:
            load_backbone_weights(self.net, weights)

    def forward(self, faces: torch.Tensor) -> torch.Tensor:
        return self.net.forward_features(faces).flatten(2).transpose(1, 2)


def feature_map_name(model) -> str:
    """The pre-pooling feature map of a face-recognition ONNX graph: the 4-D input of its Flatten/Reshape."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model)
    rank = {v.name: len(v.type.tensor_type.shape.dim) for v in
            list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output)}
    for node in reversed(inferred.graph.node):
        if node.op_type in ("Flatten", "Reshape", "GlobalAveragePool") and rank.get(node.input[0]) == 4:
            return node.input[0]
    raise ValueError("no 4-D feature map feeds a Flatten/Reshape/GlobalAveragePool in this ONNX graph; give "
                     "identity.feature_node in the model config")


class OnnxIdentity(nn.Module):
    """An ArcFace ONNX export (e.g. insightface's w600k_r50.onnx) run with onnxruntime; its pre-pooling feature
    map, exposed as an extra graph output, gives the identity tokens. No trainable state."""

    def __init__(self, path: str, feature_node: str | None = None):
        super().__init__()
        import onnx
        import onnxruntime

        model = onnx.load(path)
        self.feature_node = feature_node or feature_map_name(model)
        if self.feature_node not in [o.name for o in model.graph.output]:
            model.graph.output.append(onnx.helper.make_empty_tensor_value_info(self.feature_node))
        self.session = onnxruntime.InferenceSession(model.SerializeToString(), providers=self._providers())
        self.input_name = self.session.get_inputs()[0].name

    @staticmethod
    def _providers() -> list[str]:
        import onnxruntime

        available = onnxruntime.get_available_providers()
        return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]

    def forward(self, faces: torch.Tensor) -> torch.Tensor:
        array = faces.detach().float().cpu().numpy()
        feature = self.session.run([self.feature_node], {self.input_name: array})[0]
        return torch.from_numpy(feature).to(faces.device).flatten(2).transpose(1, 2)


def load_identity(spec: dict | None, path: str | None = None) -> nn.Module | None:
    """The frozen identity network of the config (``onnx`` file or ``timm`` CNN), or None for no condition."""
    if spec is None:
        return None
    weights = identity_weights(spec, path).resolve()
    if spec["kind"] == "onnx":
        return freeze(OnnxIdentity(weights, spec.get("feature_node")))
    return freeze(TimmIdentity(spec["arch"], spec.get("kwargs", {}), weights))


def sample_seed(seed: int, key: str) -> int:
    """A per-sample noise seed: the same cue for a frame whatever batch or worker it lands in."""
    return zlib.crc32(f"{seed}:{key}".encode())


class DefakeGenerator(nn.Module):
    """VAE + UNet + identity network + schedulers; only ``unet`` has trainable parameters."""

    def __init__(self, unet, vae, identity, scheduler_config: dict, *, condition: str = "identity",
                 identity_size: int = 112, identity_dim: int | None = None):
        super().__init__()
        if condition not in ("identity", "none"):
            raise ValueError(f"condition must be identity or none, not {condition!r}")
        if condition == "identity" and identity is None:
            raise ValueError("condition 'identity' needs an identity network in the model config")
        self.unet, self.vae, self.identity = unet, vae, identity if condition == "identity" else None
        self.condition, self.identity_size = condition, identity_size
        self.identity_dim = identity_dim or unet.config.encoder_hid_dim or unet.config.cross_attention_dim
        self.scheduler_config = dict(scheduler_config)

    def train(self, mode: bool = True):
        """Only the UNet ever leaves eval mode: the VAE and identity network stay frozen (BatchNorm included)."""
        self.unet.train(mode)
        return self

    @property
    def latent_scale(self) -> float:
        return self.vae.config.scaling_factor if self.vae is not None else 1.0

    @torch.no_grad()
    def encode(self, images: torch.Tensor, sample: bool = False) -> torch.Tensor:
        """Images in [-1, 1] -> scaled latents (the latent mean unless ``sample``); pixel space has no VAE."""
        if self.vae is None:
            return images
        dist = self.vae.encode(images.to(self.vae.dtype)).latent_dist
        return (dist.sample() if sample else dist.mean) * self.latent_scale

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        if self.vae is None:
            return latents
        return self.vae.decode(latents.to(self.vae.dtype) / self.latent_scale).sample

    @torch.no_grad()
    def condition_tokens(self, images: torch.Tensor) -> torch.Tensor:
        """Identity tokens of each face, or one zero token per image (the no-identity ablation)."""
        if self.identity is None:
            return images.new_zeros(images.shape[0], 1, self.identity_dim)
        faces = F.interpolate(images.float(), size=self.identity_size, mode="bilinear", antialias=True,
                              align_corners=False)
        weights = next(self.identity.parameters(), None)
        return self.identity(faces.to(weights.dtype) if weights is not None else faces).float()

    def predict_noise(self, latents: torch.Tensor, timesteps: torch.Tensor, tokens: torch.Tensor,
                      unet=None) -> torch.Tensor:
        """epsilon from the UNet, or from ``unet`` (the same UNet inside a DeepSpeed/DDP engine while training)."""
        dtype = self.unet.dtype
        net = unet if unet is not None else self.unet
        return net(latents.to(dtype), timesteps, encoder_hidden_states=tokens.to(dtype)).sample

    def training_loss(self, images: torch.Tensor, unet=None) -> torch.Tensor:
        """Noise-prediction MSE at a random step of the 1000-step DDPM schedule (only the UNet gets gradients)."""
        from diffusers import DDPMScheduler

        scheduler = DDPMScheduler.from_config(self.scheduler_config)
        latents = self.encode(images, sample=True).float()
        noise = torch.randn_like(latents)
        steps = torch.randint(0, scheduler.config.num_train_timesteps, (latents.shape[0],), device=latents.device)
        noisy = scheduler.add_noise(latents, noise, steps)
        predicted = self.predict_noise(noisy, steps, self.condition_tokens(images), unet)
        return F.mse_loss(predicted.float(), noise)

    def reconstruction_steps(self, noise_step: int, ddim_steps: int):
        """The DDIM scheduler and the grid steps at or below ``noise_step`` (empty at t = 0)."""
        from diffusers import DDIMScheduler

        scheduler = DDIMScheduler.from_config(self.scheduler_config, clip_sample=False, set_alpha_to_one=False)
        scheduler.set_timesteps(ddim_steps)
        return scheduler, [int(t) for t in scheduler.timesteps if int(t) <= noise_step]

    @torch.no_grad()
    def reconstruct(self, images: torch.Tensor, noise_step: int = 801, ddim_steps: int = 50,
                    seeds: list[int] | None = None) -> torch.Tensor:
        """De-fake: noise the input's latent to ``noise_step``, denoise with DDIM (eta = 0) under its own identity
        condition, decode. ``seeds`` (one per image) make each reconstruction reproducible on its own."""
        latents = self.encode(images).float()
        scheduler, steps = self.reconstruction_steps(noise_step, ddim_steps)
        if steps:
            seeds = seeds if seeds is not None else list(range(len(images)))
            noise = torch.stack([torch.randn(latents.shape[1:], generator=torch.Generator().manual_seed(int(s)))
                                 for s in seeds]).to(latents.device)
            latents = scheduler.add_noise(latents, noise, torch.tensor([steps[0]], device=latents.device))
            tokens = self.condition_tokens(images)
            for step in steps:
                t = torch.full((len(latents),), step, device=latents.device, dtype=torch.long)
                eps = self.predict_noise(latents, t, tokens).float()
                latents = scheduler.step(eps, step, latents, eta=0.0).prev_sample
        return self.decode(latents).float().clamp(-1, 1)


def anomalous_cue(images: torch.Tensor, reconstruction: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(cue standardised per image, residual RMS per image): input - reconstruction; the RMS is the raw
    anomaly score (larger = further from the real faces the generator knows)."""
    residual = images.float() - reconstruction.float()
    flat = residual.flatten(1)
    rms = flat.pow(2).mean(dim=1).sqrt()
    cue = (flat - flat.mean(dim=1, keepdim=True)) / flat.std(dim=1, keepdim=True).clamp_min(1e-6)
    return cue.view_as(residual), rms


def create_generator(model: str = "dfg-sd15", *, condition: str = "identity", vae: str | None = None,
                     identity: str | None = None, unet_init: str | None = None) -> DefakeGenerator:
    """Build the generator from an architecture config. ``vae``/``identity``/``unet_init`` override where the
    pretrained parts come from (local paths or hub repos); the architecture stays the config's."""
    arch = read_model_config(model)
    vae_module = load_vae(arch["vae"], vae) if arch.get("vae") else None
    identity_spec = arch.get("identity") if condition == "identity" else None
    if condition == "identity" and identity_spec is None:
        raise ValueError(f"model config {model!r} has no identity network; use condition none")
    unet = build_unet(arch["unet"], unet_init or arch.get("unet_init"))
    return DefakeGenerator(unet, vae_module, load_identity(identity_spec, identity), arch["scheduler"],
                           condition=condition, identity_size=(identity_spec or {}).get("input_size", 112),
                           identity_dim=arch["unet"].get("encoder_hid_dim"))


def noise_seeds(seed: int, keys) -> list[int]:
    return [sample_seed(seed, str(k)) for k in np.asarray(keys).tolist()]
