"""AG-FAS's report picture: the cue gallery (input, the generator's reconstruction, the anomalous cue, OA-Net's
cross-attention over it) for the frames the evaluation chose; registered as the record's ``pictures``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from fas.eval.gallery import frame_columns, frame_grid


def cue_pictures(folder: Path, predictor, chosen: pd.DataFrame, cache: str, checkpoint: str,
                 threshold: float) -> dict[str, str]:
    """The gallery when the model reads cues (an image-only SSDG baseline has none to show)."""
    if "cue" not in predictor.inputs:
        return {}
    frames = frame_columns(cache, chosen["frame_id"].tolist(), ["image", "cue", "cue_rms"])
    page = write_cue_gallery(Path(folder) / "cue_gallery.png", chosen, frames, predictor,
                             gallery_generator(checkpoint, cache), threshold)
    return {"AG-FAS cue gallery (best and worst frames)": page.name}


def gallery_generator(checkpoint: str | Path, cache: str | Path):
    """The cue generator that made ``cache``'s cues, with its settings (``fas.cues.CueGenerator``): the folder the
    cache's index names, else the model folder's companion ``generator``; when neither holds one, the reason (drawn in
    the gallery, and warned with the paths). The mask is left out: the reconstruction does not depend on it."""
    import warnings

    from fas.cues import CueGenerator, latest_generator_checkpoint
    from fas.methods.oanet.task import cue_settings

    settings = cue_settings(str(cache))
    for place in (settings["generator"], Path(checkpoint) / "generator"):
        try:
            folder = latest_generator_checkpoint(place)
        except ValueError:
            continue
        return CueGenerator(str(folder), {**settings, "mask": "none"})
    warnings.warn(f"cue gallery without reconstructions: no generator checkpoint in {settings['generator']} (the "
                  f"cue cache's) nor in {Path(checkpoint) / 'generator'}", stacklevel=2)
    return "generator not found"


def cross_attention_overlay(predictor, image: bytes, cue: bytes, rgb: np.ndarray) -> np.ndarray:
    """OA-Net's cross-attention over the cue of one frame (as its predictor prepares both), laid over ``rgb``."""
    from fas.eval.attention import oanet_cue_attention, overlay
    from fas.methods.oanet.predictor import cue_tensor

    cues = cue_tensor([cue], predictor.transform.image_size).to(predictor.device, predictor.dtype)
    return overlay(rgb, oanet_cue_attention(predictor.model, predictor.images([image]), cues))


def write_cue_gallery(path: Path, chosen: pd.DataFrame, frames: dict[str, dict], predictor, generator,
                      threshold: float) -> Path:
    """AG-FAS: input | the generator's reconstruction | the cue | OA-Net's cross-attention over the cue (on the
    frame), one column per chosen frame; the cue's colour scale is shared, so the frames compare."""
    from fas.cues import decode_cues
    from fas.explain import reconstructions, signed_image
    from fas.preprocess import decode_resized

    ids = chosen["frame_id"].tolist()
    images, cues = [frames[f]["image"] for f in ids], decode_cues([frames[f]["cue"] for f in ids])
    recon = reconstructions(generator, images, ids) if not isinstance(generator, str) else None
    attention = getattr(predictor.model, "cross_blocks", None) is not None
    rows = ["input", "reconstruction" if recon is not None else f"reconstruction:\n{generator}",
            "cue |residual|"] + (["OA-Net attention to\nthe cue (on the frame)"] if attention else [])
    fig, axes = frame_grid(chosen, rows, threshold, "AG-FAS: input, the generator's reconstruction, the anomalous "
                                                    "cue (shared colour scale)" + (" and OA-Net's cross-attention "
                                                                                   "over it" if attention else ""))
    magnitude = np.abs(cues).mean(axis=1)
    side = cues.shape[-1]
    for col, (frame_id, image) in enumerate(zip(ids, images)):
        rgb = decode_resized(image, side)
        axes[0, col].imshow(rgb)
        if recon is not None:
            axes[1, col].imshow(signed_image(recon[col]))
        shown = axes[2, col].imshow(magnitude[col], cmap="inferno", vmin=0, vmax=float(magnitude.max()))
        if frames[frame_id].get("cue_rms") is not None:
            axes[2, col].set_xlabel(f"residual RMS {frames[frame_id]['cue_rms']:.3f}", fontsize=6)
        if attention:
            axes[3, col].imshow(cross_attention_overlay(predictor, image, frames[frame_id]["cue"], rgb))
    fig.colorbar(shown, ax=axes[2, :].tolist(), fraction=0.02, pad=0.01).set_label("|cue|", fontsize=7)
    fig.savefig(path)
    return Path(path)
