"""CLIPC8's report picture: the attention rollout over its ViT (the CLIPC8 paper's Fig. 6) for the frames the
evaluation chose (``fas.eval.gallery.best_and_worst``); registered as the record's ``pictures``."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from fas.eval.gallery import frame_columns, frame_grid


def attention_pictures(folder: Path, predictor, chosen: pd.DataFrame, cache: str, checkpoint: str,
                       threshold: float) -> dict[str, str]:
    frames = frame_columns(cache, chosen["frame_id"].tolist(), ["image"])
    page = write_attention_page(Path(folder) / "attention.png", chosen, frames, predictor, threshold)
    return {"CLIPC8 attention rollout (best and worst frames)": page.name}


def write_attention_page(path: Path, chosen: pd.DataFrame, frames: dict[str, dict], predictor,
                         threshold: float) -> Path:
    """CLIPC8: each chosen frame as the model saw it and its attention rollout laid over it."""
    from fas.eval.attention import clip_rollout, overlay
    from fas.preprocess import decode_resized

    size = predictor.transform.image_size
    fig, axes = frame_grid(chosen, ["input frame", "attention rollout\n(red = most)"], threshold,
                           "CLIPC8 attention rollout over the ViT (class token to patches, each map scaled to its "
                           "maximum)")
    for col, frame_id in enumerate(chosen["frame_id"]):
        image = frames[frame_id]["image"]
        rgb = decode_resized(image, size)
        axes[0, col].imshow(rgb)
        axes[1, col].imshow(overlay(rgb, clip_rollout(predictor.model.visual, predictor.images([image]))))
    fig.savefig(path)
    return Path(path)
