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


def suptitle(fig, text: str, fontsize: float) -> None:
    """The figure's title, wrapped to its width (a gallery of two frames is narrow)."""
    import textwrap

    chars = int(fig.get_figwidth() * 72 / (0.55 * fontsize))  # an average glyph is about 0.55 em wide
    fig.suptitle(textwrap.fill(text, chars), fontsize=fontsize)


def verdict_colour(score: float, label: int, threshold: float) -> str:
    """Red when the frame is wrong at the threshold (bona fide below it, an attack at or above it)."""
    return "tab:red" if (score >= threshold) != (label == 1) else "black"


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
                                     color=verdict_colour(item.score, klass, threshold))
            if with_cue and frame.get("cue"):
                cue = decode_cues([frame["cue"]])[0]
                axes[row + 1, col].imshow(np.abs(cue).mean(axis=0), cmap="inferno")
                axes[row + 1, col].set_title("cue |residual|", fontsize=6)
    suptitle(fig, f"Most wrong frames: lowest-scored bona fide (top), highest-scored attacks (bottom); red = "
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


# --- best and worst frames: what a model saw (CLIPC8's attention, AG-FAS's cue and OA-Net's attention over it) ----

PER_GROUP = 2  # frames in each of the four groups of the model pages
GROUPS = ("bona fide, best", "bona fide, worst", "attack, best", "attack, worst")


def best_and_worst(scores: pd.DataFrame, per_group: int = PER_GROUP) -> pd.DataFrame:
    """The highest- and lowest-scored bona fide rows and the lowest- and highest-scored attack rows (worst first
    within the worst groups), a ``group`` column naming each; a frame is in one group only (worst first)."""
    real, attack = scores[scores["label"] == 1], scores[scores["label"] == 0]
    worst_real, worst_attack = real.nsmallest(per_group, "score"), attack.nlargest(per_group, "score")
    picked = {"bona fide, worst": worst_real, "attack, worst": worst_attack,
              "bona fide, best": real.drop(worst_real.index).nlargest(per_group, "score"),
              "attack, best": attack.drop(worst_attack.index).nsmallest(per_group, "score")}
    return pd.concat([picked[g].assign(group=g) for g in GROUPS]).reset_index(drop=True)


def frame_grid(chosen: pd.DataFrame, rows: list[str], threshold: float, title: str):
    """A figure of one column per chosen frame (its group and score on top, red when wrong at the threshold) and
    one row per picture kind (named on the left); returns (figure, axes[row, column])."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(1.25 * len(chosen) + 1.4, 1.45 * len(rows) + 0.9), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(rows), len(chosen), squeeze=False)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    for col, item in enumerate(chosen.itertuples(index=False)):
        kind = item.group if item.label == 1 else item.group.replace("attack", str(getattr(item, "attack", "attack")))
        axes[0, col].set_title(f"{kind}\nscore {item.score:.3f}", fontsize=7,
                               color=verdict_colour(item.score, item.label, threshold))
    for row, name in enumerate(rows):
        axes[row, 0].set_ylabel(name, fontsize=8)
    suptitle(fig, f"{title}; red = wrong at the threshold {threshold:.4g}", fontsize=9)
    return fig, axes
