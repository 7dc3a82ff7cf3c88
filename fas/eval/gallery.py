"""The frames an evaluated model gets most wrong, with their scores (and, for AG-FAS, the cue it read).

Reading numbers tells a team how often a model fails; looking at the failures tells them why (a dark capture, a
face cut by the frame, one attack instrument). The gallery holds the bona fide frames with the lowest scores and
the attack frames with the highest, each the worst first, drawn from the evaluated cache.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

PER_CLASS = 6  # frames of each class in the gallery


def worst_frames(scores: pd.DataFrame, per_class: int = PER_CLASS) -> pd.DataFrame:
    """The bona fide rows with the lowest scores and the attack rows with the highest, worst first."""
    real = scores[scores["label"] == 1].nsmallest(per_class, "score")
    attack = scores[scores["label"] == 0].nlargest(per_class, "score")
    return pd.concat([real, attack]).reset_index(drop=True)


def frame_columns(cache: str | Path, frame_ids: list[str], columns: list[str]) -> dict[str, dict]:
    """frame_id -> {column: value} for ``frame_ids`` only (a filtered scan: the cache is not loaded whole)."""
    import pyarrow.dataset as ds

    from fas.data.cache import shard_paths

    dataset = ds.dataset([str(p) for p in shard_paths(cache)], format="parquet")
    table = dataset.to_table(columns=["frame_id", *columns], filter=ds.field("frame_id").isin(list(frame_ids)))
    rows = table.to_pylist()
    return {row["frame_id"]: row for row in rows}


def plot_gallery(worst: pd.DataFrame, frames: dict[str, dict], threshold: float, path: Path) -> Path:
    """One tile per frame: the crop (and its cue heat-map below when the frames have one), its class, attack type
    and score against the threshold."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from fas.cues import decode_cues
    from fas.data.faces import decode_image

    with_cue = any(frames.get(f, {}).get("cue") for f in worst["frame_id"])
    rows, cols = (2 if with_cue else 1) * 2, max(1, int((worst["label"] == 1).sum()), int((worst["label"] == 0).sum()))
    fig = Figure(figsize=(1.6 * cols, 2.2 * rows), dpi=100)
    FigureCanvasAgg(fig)
    axes = np.atleast_2d(fig.subplots(rows, cols, squeeze=False))
    for ax in axes.flat:
        ax.axis("off")
    for klass, group in ((1, worst[worst["label"] == 1]), (0, worst[worst["label"] == 0])):
        row = 0 if klass == 1 else rows // 2
        for col, item in enumerate(group.itertuples(index=False)):
            frame = frames.get(item.frame_id, {})
            if frame.get("image"):
                axes[row, col].imshow(decode_image(frame["image"]))
            kind = "bona fide" if klass == 1 else str(getattr(item, "attack", "attack"))
            axes[row, col].set_title(f"{kind}\nscore {item.score:.3f}", fontsize=7,
                                     color="tab:red" if (item.score >= threshold) != (klass == 1) else "black")
            if with_cue and frame.get("cue"):
                cue = decode_cues([frame["cue"]])[0]
                axes[row + 1, col].imshow(np.abs(cue).mean(axis=0), cmap="inferno")
                axes[row + 1, col].set_title("cue |residual|", fontsize=6)
    fig.suptitle(f"Most wrong frames: lowest-scored bona fide (top), highest-scored attacks (bottom); red = "
                 f"wrong at the threshold {threshold:.4g}", fontsize=8)
    fig.tight_layout(h_pad=1.2)
    fig.savefig(path)
    return Path(path)


def write_gallery(folder: Path, scores: pd.DataFrame, threshold: float, cache: str | Path,
                  with_cue: bool = False) -> Path | None:
    """``worst_frames.png`` of an evaluation, from the cache it scored; None when the table has no frame ids."""
    if "frame_id" not in scores.columns or scores["label"].nunique() < 2:
        return None
    worst = worst_frames(scores)
    frames = frame_columns(cache, worst["frame_id"].tolist(), ["image"] + (["cue"] if with_cue else []))
    return plot_gallery(worst, frames, threshold, Path(folder) / "worst_frames.png")
