"""What the one-pass cue generators (MemAE, Deep SVDD) share: the real faces they train on, the training side of
their task, their generator folder, and the cue maker over it.

A generator folder is ``generator_config.json`` (``GENERATOR_CONFIG``: ``method`` names the record that reads it,
``architecture`` rebuilds the model without its JSON file) + ``model.pt`` (fp32 weights). The cue of a crop is
input - reconstruction (``fas.methods.dfg.model.anomalous_cue``; face-masked with ``fas.methods.dfg.mask``), each
crop decoded once with the generator's preprocessing.

``cue_columns`` is the whole decode -> reconstruct -> (mask) -> cue -> encode path of one batch; DFG's
``CueMaker.columns`` runs the same steps around its seeded DDIM reconstruction and could call it with a
``reconstruct(x, good)`` that seeds the noise by the keys of the ``good`` rows.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from fas.cues import GENERATOR_CONFIG
from fas.integrity import load_state, verify_folder
from fas.methods.base import WEIGHTS_FILE, DataNeeds, Task, WorkerContext, place


def real_faces(cfg, **streams: tuple[str, ...]) -> DataNeeds:
    """A generator's training rows: the real faces only (a seeded ``real_face_fraction`` of them), in a random
    block order with a local shuffle buffer (a step run re-reads a small set cheaply); ``streams``: extra unsplit
    streams of the same rows."""
    return DataNeeds(columns=("image",), real_only=True, fraction=cfg.real_face_fraction, order="blocks",
                     local_shuffle=4, streams=streams)


class ReconstructionTask(Task):
    """The training side both share: real-face batches decoded at the architecture's size into [-1, 1] (as DFG's),
    DFG's optional mirroring (``cfg.flip``), and the generator folder as the portable output. Subclasses set
    ``method`` and build ``module`` and ``optimizer``."""

    method: str = ""

    def __init__(self, cfg, ctx: WorkerContext, arch: dict):
        from fas.preprocess import SIGNED, Preprocess

        self.cfg, self.ctx, self.arch = cfg, ctx, arch
        self.batch_size, self.grad_clip = cfg.batch_size, cfg.grad_clip
        self.transform = Preprocess(arch["image_size"], *SIGNED)

    def prepare_batch(self, batch: dict) -> dict[str, torch.Tensor]:
        return {"image": self.transform(batch["image"])}

    def inputs(self, batch: dict) -> torch.Tensor:
        """The step's images on the worker's device, mirrored at random when the config asks."""
        from fas.preprocess import random_flip

        x = batch["image"]
        if self.cfg.flip:
            (x,) = random_flip(x, self.ctx.rng)
        return x.to(self.ctx.device, self.ctx.dtype)

    def portable(self, folder: Path) -> None:
        write_generator(folder, self.module.state_dict(), generator_meta(self.method, self.cfg, self.arch))


def generator_meta(method: str, cfg, architecture: dict) -> dict:
    """The folder's config: what rebuilds the model, and which real faces it learnt (fraction and seed).
    ``method_module`` lets any process (cue actors, Serve replicas) find the record; ``noise_step`` is null:
    nothing is noised (the cue job records the generator's noise step with its cues)."""
    from fas.methods import get_method

    return {"method": method, "method_module": get_method(method).module, "model": cfg.model,
            "architecture": architecture, "image_size": architecture["image_size"], "noise_step": None,
            "real_face_fraction": cfg.real_face_fraction, "seed": cfg.engine.seed}


def write_generator(folder: Path, state: dict[str, torch.Tensor], meta: dict) -> None:
    """fp32 weights + ``generator_config.json`` + their ``checksums.json``, each file written whole or not at all."""
    from fas.integrity import save_state, storage_errors, write_checksums, write_text

    folder = Path(folder)
    with storage_errors(folder):
        folder.mkdir(parents=True, exist_ok=True)
    save_state(folder / WEIGHTS_FILE, state)
    write_text(folder / GENERATOR_CONFIG, json.dumps(meta, indent=2))
    write_checksums(folder, (WEIGHTS_FILE, GENERATOR_CONFIG))


def read_generator(folder: str | Path, method: str) -> tuple[dict, dict]:
    """(meta, fp32 state) of a generator folder written by ``method``'s training; a clear error otherwise."""
    folder = Path(folder)
    if not (folder / GENERATOR_CONFIG).is_file() or not (folder / WEIGHTS_FILE).is_file():
        raise ValueError(f"{folder} is not a {method} generator checkpoint (expected {GENERATOR_CONFIG} and "
                         f"{WEIGHTS_FILE}); give a checkpoint folder of `jobs/train.py {method}`")
    verify_folder(folder, (WEIGHTS_FILE, GENERATOR_CONFIG))
    meta = json.loads((folder / GENERATOR_CONFIG).read_text())
    if meta.get("method") != method:
        raise ValueError(f"{folder} holds a {meta.get('method')!r} generator, not a {method} one")
    return meta, load_state(folder / WEIGHTS_FILE)


def cue_columns(transform, images, reconstruct: Callable, device, masker=None, faces=None) -> dict[str, list]:
    """Encoded crops -> the cue job's columns per crop: ``cue`` (float16 ``.npy`` bytes), ``cue_rms``,
    ``cue_error`` (an undecodable crop's reason, the others go on) and, with a ``masker`` (``FaceMasker``: AG-FAS's
    face-masked cue), ``cue_mask`` and ``cue_mask_source``. Each crop is decoded once; ``reconstruct(x, good)`` runs
    on the decodable ones (``good``: their indices); ``faces``: a face geometry per crop, or None."""
    from fas.cues import encode_cue
    from fas.methods.dfg.mask import encode_mask, masked_cue
    from fas.methods.dfg.model import anomalous_cue

    arrays, errors = transform.decode_each(images)
    good = [i for i, e in enumerate(errors) if not e]
    out = {"cue": [None] * len(errors), "cue_rms": [None] * len(errors), "cue_error": errors}
    if masker is not None:
        out.update(cue_mask=[None] * len(errors), cue_mask_source=[None] * len(errors))
    if not good:
        return out
    x = transform.finish([arrays[i] for i in good]).to(device)
    reconstruction = reconstruct(x, good)
    if masker is None:
        cue, norm = anomalous_cue(x, reconstruction)
    else:
        masks, sources = masker([arrays[i] for i in good], [faces[i] if faces else None for i in good])
        cue, norm = masked_cue(x, reconstruction, torch.from_numpy(np.stack(masks)).to(device))
        for i, m, s in zip(good, masks, sources):
            out["cue_mask"][i], out["cue_mask_source"][i] = encode_mask(m), s
    for i, c, n in zip(good, cue.cpu().numpy(), norm.cpu().numpy()):
        out["cue"][i], out["cue_rms"][i] = encode_cue(c), float(n)
    return out


class ReconstructionCueMaker:
    """Encoded crops -> cue columns per crop with a generator whose reconstruction is one forward pass
    (``module.reconstruct``); the cue job's and Serve's contract (``fas.methods.dfg.generator.CueMaker``'s).
    Deterministic: no noise is drawn and BatchNorm runs on its stored statistics, so a crop gets the same cue
    whatever its batch, actor or key. Subclasses name their ``method`` and give ``build(meta)``.

    ``noise_step``, ``ddim_steps`` and ``seed`` (what the cue job and Serve pass every generator, meant for
    diffusion) are accepted and ignored: nothing is noised here. ``mask``/``parsing_weights``: the face-masked cue,
    as DFG's."""

    method: str = ""

    def __init__(self, folder: str | Path, device: str | None = None, noise_step: int | None = None,
                 ddim_steps: int | None = None, seed: int | None = None, mask: str = "none",
                 parsing_weights: str | None = None):
        from fas.methods.dfg.mask import FaceMasker
        from fas.preprocess import SIGNED, Preprocess

        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.masker = FaceMasker(mask, parsing_weights, self.device) if mask != "none" else None
        self.meta, state = read_generator(folder, self.method)
        model = self.build(self.meta)
        model.load_state_dict(state)
        self.model = place(model, self.device)
        self.dtype = next(self.model.parameters()).dtype
        self.transform = Preprocess(self.meta["image_size"], *SIGNED)

    @staticmethod
    def build(meta: dict) -> torch.nn.Module:
        raise NotImplementedError

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.reconstruct(x.to(self.dtype)).float()

    def columns(self, images, keys=None, faces=None) -> dict[str, list]:
        """The cue columns of a batch (``cue_columns``); ``keys`` (frame ids, byte hashes) are not needed: the cue
        depends on the crop alone."""
        return cue_columns(self.transform, images, lambda x, good: self.reconstruct(x), self.device, self.masker,
                           faces)

    def __call__(self, images, keys=None, faces=None) -> tuple[list, list, list[str]]:
        """(cues, residual RMS, errors) of a batch."""
        out = self.columns(images, keys, faces)
        return out["cue"], out["cue_rms"], out["cue_error"]
