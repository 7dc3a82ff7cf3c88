"""A trained generator's folder: written by training, read by the cue job, OA-Net runs and Serve.

``generator_config.json`` (with ``method``, so the cue job finds the record that reads it) + ``unet/`` (diffusers
format) + the frozen parts that have no weights file of their own (a stand-in or random VAE, a random identity
network). ``CueMaker`` is the one cue path: encoded crops -> anomalous cues (optionally face-masked, DFG†), each
image decoded once.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from fas.cues import GENERATOR_CONFIG
from fas.integrity import verify_folder, write_checksums, write_text


def save_generator(generator, cfg, folder: Path) -> None:
    from fas.methods.dfg.model import read_model_config

    arch = read_model_config(cfg.model)
    generator.unet.save_pretrained(folder / "unet")
    meta = {"method": "dfg", "model": cfg.model, "condition": cfg.condition, "image_size": arch["image_size"],
            "noise_step": arch.get("noise_step", 801), "vae": cfg.vae, "identity": cfg.identity,
            "real_face_fraction": cfg.real_face_fraction, "seed": cfg.engine.seed}  # which real faces it learnt
    if generator.vae is not None and not arch["vae"].get("pretrained"):  # random or stand-in: small, kept
        generator.vae.save_pretrained(folder / "vae")
        meta["vae"] = "vae"
    if generator.identity is not None and not (cfg.identity or (arch.get("identity") or {}).get("path")):
        torch.save({k: v.float().cpu() for k, v in generator.identity.state_dict().items()}, folder / "identity.pt")
        meta["identity"] = "identity.pt"
    write_text(folder / GENERATOR_CONFIG, json.dumps(meta, indent=2))
    written = [p for sub in ("unet", "vae") for p in sorted((folder / sub).rglob("*")) if p.is_file()]
    written += [folder / name for name in ("identity.pt", GENERATOR_CONFIG) if (folder / name).is_file()]
    write_checksums(folder, [p.relative_to(folder).as_posix() for p in written])  # checked at every load


def read_generator_meta(folder: str | Path) -> dict:
    folder = Path(folder)
    if not (folder / GENERATOR_CONFIG).is_file():
        raise ValueError(f"{folder} is not a generator checkpoint (no {GENERATOR_CONFIG}); give a checkpoint "
                         "folder of `jobs/train.py dfg`")
    verify_folder(folder, required=(GENERATOR_CONFIG,))
    return json.loads((folder / GENERATOR_CONFIG).read_text())


def load_generator(folder: str | Path, device: str | torch.device = "cpu", condition: str | None = None):
    """Rebuild a trained generator from its folder (``generator_config.json`` + ``unet/``)."""
    from diffusers import UNet2DConditionModel

    from fas.methods.dfg.model import create_generator, freeze

    folder, meta = Path(folder), read_generator_meta(folder)
    vae = str(folder / meta["vae"]) if meta.get("vae") == "vae" else meta.get("vae")
    identity_file = meta.get("identity") == "identity.pt"
    generator = create_generator(meta["model"], condition=condition or meta["condition"], vae=vae,
                                 identity=None if identity_file else meta.get("identity"))
    generator.unet = freeze(UNet2DConditionModel.from_pretrained(folder / "unet"))
    if identity_file and generator.identity is not None:
        generator.identity.load_state_dict(torch.load(folder / "identity.pt", weights_only=True))
    half = torch.device(device).type == "cuda"
    return generator.to(device, dtype=torch.half if half else torch.float).eval(), meta


class CueMaker:
    """Encoded crops -> cue columns per crop, with one generator: ``cue`` (float16 ``.npy`` bytes), ``cue_rms``,
    ``cue_error`` and, with a face mask (``fas.methods.dfg.mask``, AG-FAS's DFG†), ``cue_mask`` (PNG bytes) and
    ``cue_mask_source``.

    Each crop's noise is seeded by its key (the frame id in the cue job, a hash of the bytes in Serve), so a cue
    does not depend on batching, worker or restart. A crop that does not decode gets its reason, not a cue."""

    def __init__(self, folder: str | Path, device: str | None = None, noise_step: int | None = None,
                 ddim_steps: int = 50, seed: int = 0, mask: str = "none", parsing_weights: str | None = None):
        from fas.methods.dfg.mask import FaceMasker
        from fas.preprocess import SIGNED, Preprocess

        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.masker = FaceMasker(mask, parsing_weights, self.device) if mask != "none" else None
        self.generator, meta = load_generator(folder, self.device)
        self.transform = Preprocess(meta["image_size"], *SIGNED)
        self.noise_step = meta["noise_step"] if noise_step is None else noise_step
        self.ddim_steps, self.seed, self.mask = ddim_steps, seed, mask

    @torch.no_grad()
    def columns(self, images, keys, faces=None) -> dict[str, list]:
        """The cue columns of a batch; ``faces`` (a ``mask.FaceGeometry`` per crop, or None: the whole crop) place
        the landmark/box masks and the parsing mask's fallback."""
        from fas.cues import encode_cue
        from fas.methods.dfg.mask import encode_mask, masked_cue
        from fas.methods.dfg.model import anomalous_cue, noise_seeds

        arrays, errors = self.transform.decode_each(images)
        good = [i for i, e in enumerate(errors) if not e]
        out = {"cue": [None] * len(errors), "cue_rms": [None] * len(errors), "cue_error": errors}
        if self.masker is not None:
            out.update(cue_mask=[None] * len(errors), cue_mask_source=[None] * len(errors))
        if not good:
            return out
        x = self.transform.finish([arrays[i] for i in good]).to(self.device)
        seeds = noise_seeds(self.seed, [keys[i] for i in good])
        recon = self.generator.reconstruct(x, self.noise_step, self.ddim_steps, seeds)
        if self.masker is None:
            cue, norm = anomalous_cue(x, recon)
        else:
            masks, sources = self.masker([arrays[i] for i in good], [faces[i] if faces else None for i in good])
            cue, norm = masked_cue(x, recon, torch.from_numpy(np.stack(masks)).to(self.device))
            for i, m, s in zip(good, masks, sources):
                out["cue_mask"][i], out["cue_mask_source"][i] = encode_mask(m), s
        for i, c, n in zip(good, cue.cpu().numpy(), norm.cpu().numpy()):
            out["cue"][i], out["cue_rms"][i] = encode_cue(c), float(n)
        return out

    def __call__(self, images, keys, faces=None) -> tuple[list, list, list[str]]:
        """(cues, residual RMS, errors) of a batch."""
        out = self.columns(images, keys, faces)
        return out["cue"], out["cue_rms"], out["cue_error"]
