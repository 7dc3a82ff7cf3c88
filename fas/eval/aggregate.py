"""Per-video aggregation: FAS benchmarks on video datasets are often reported per video, not per sampled frame."""

from __future__ import annotations

import pandas as pd

from fas.eval.errors import MetricsInputError
from fas.eval.frames import require_columns

HOW = ("mean", "median", "max", "min")
VOTE_COLUMNS = ("pred_category",)  # per-frame predictions: a video gets the most frequent one


def _key_columns(df: pd.DataFrame) -> list[str]:
    """Video ids repeat across datasets (e.g. '1_1_01_1'), so the domain is part of the key when present."""
    return ["domain", "video"] if "domain" in df.columns else ["video"]


def _check_constant(grouped, column: str, keys: list[str]) -> None:
    counts = grouped[column].nunique(dropna=False)
    mixed = counts[counts > 1]
    if len(mixed):
        names = [str(k) for k in mixed.index[:5]]
        raise MetricsInputError(f"{len(mixed)} videos have mixed {column!r} values across frames (e.g. {names}, "
                                f"keyed by {keys}); a video is all bona fide or all one attack: fix the labels")


def _vote(series: pd.Series):
    """Most frequent value; ties go to the smallest, so the result does not depend on frame order."""
    counts = series.value_counts()
    return min(counts.index[counts == counts.max()])


def aggregate_by_video(df: pd.DataFrame, how: str = "mean") -> pd.DataFrame:
    """One row per video: the frames' scores combined by ``how`` (mean by default; median, max or min).

    Columns that are constant within every video are carried over (label, attack, domain, category, ...);
    ``pred_category`` gets a majority vote; other per-frame columns are dropped. Adds ``n_frames``.
    A video with mixed labels or attack types is an error: it means the manifest is wrong.
    """
    require_columns(df, ("score", "label", "video"), "scores")
    if how not in HOW:
        raise MetricsInputError(f"unknown video aggregation {how!r}; use one of {list(HOW)}")
    if df["video"].isna().any():
        raise MetricsInputError(f"{int(df['video'].isna().sum())} rows have no video id; fill the video column "
                                "or evaluate per frame (without --video-level)")
    keys = _key_columns(df)
    grouped = df.groupby(keys, sort=False, dropna=False)
    for column in ("label", "attack"):
        if column in df.columns:
            _check_constant(grouped, column, keys)
    out = grouped["score"].agg(how).to_frame()
    out["n_frames"] = grouped.size()
    for column in df.columns:
        if column in keys or column in ("score",):
            continue
        if column in VOTE_COLUMNS:
            out[column] = grouped[column].agg(_vote)
        elif (grouped[column].nunique(dropna=False) <= 1).all():
            out[column] = grouped[column].first()
    return out.reset_index()
