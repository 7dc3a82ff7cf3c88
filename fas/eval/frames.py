"""Turning score tables (DataFrames with score,label[,attack,video,domain]) into validated metric inputs."""

from __future__ import annotations

from typing import Iterable

import pandas as pd

from fas.eval.errors import MetricsInputError
from fas.eval.metrics import ScoreSet, check_inputs

SCORE_COLUMNS = ("score", "label")
OPTIONAL_COLUMNS = ("attack", "video", "domain")


def require_columns(df: pd.DataFrame, columns: Iterable[str], where: str = "scores") -> None:
    """Name every missing column at once, and what the table does have, so one fix suffices."""
    if not isinstance(df, pd.DataFrame):
        raise MetricsInputError(f"{where} must be a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise MetricsInputError(f"{where} lacks required columns {missing}; it has {list(df.columns)}")


def as_score_set(data, where: str = "scores") -> ScoreSet:
    """Accept a DataFrame (score, label, optional attack), a (scores, labels[, attacks]) tuple, or a ScoreSet."""
    if isinstance(data, ScoreSet):
        return data
    if isinstance(data, pd.DataFrame):
        require_columns(data, SCORE_COLUMNS, where)
        if len(data) == 0:
            raise MetricsInputError(f"{where} is empty: no rows to evaluate")
        attacks = data["attack"].to_numpy(dtype=object) if "attack" in data.columns else None
        try:
            return check_inputs(data["score"].to_numpy(), data["label"].to_numpy(), attacks)
        except MetricsInputError as exc:
            raise MetricsInputError(f"{where}: {exc}") from None
    if isinstance(data, tuple) and len(data) in (2, 3):
        return check_inputs(*data)
    raise MetricsInputError(f"{where} must be a DataFrame with columns score,label or a (scores, labels) tuple, "
                            f"got {type(data).__name__}")
