"""CLIPC8 category tables: per-class detection rate U, Real/Fake rates per dataset, and the confusion matrix.

The CLIPC8 classifier predicts one of K categories (default: CLASS-8, below); category 0 is the bona fide one.
Detection rate U of a class (CLIPC8 Tables 4/8): for the real class, the fraction of its samples predicted real; for
an attack class, the fraction predicted as *anything but real*: the paper counts a spoof as detected when it lands in
any attack class, not only its own. Real/Fake rates per dataset (Table 5) use the same two notions per domain.
Category names are a parameter because prompt sets are configurable.
"""

from __future__ import annotations

import string
from typing import Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import confusion_matrix

from fas.eval.errors import MetricsInputError

CLIPC8_CATEGORIES = ("real", "id_card", "face_mask", "online_verification", "personal_id", "recaptured",
                     "photoshopped", "dark_environment")
CLIPC8_DESCRIPTIONS = {"real": "Normal Facial Photo"}


def attack_category(attack, categories: Sequence[str], attack_to_category: dict) -> int | None:
    """The category index of one attack name (``real`` for bona fide) through the mapping; None when it has none."""
    name = attack_to_category.get(str(attack), str(attack))
    return list(categories).index(name) if name in categories else None


def letters(n: int) -> list[str]:
    """CLIPC8 names the categories a, b, c, ...; beyond 26 the index is used."""
    return [string.ascii_lowercase[i] if i < 26 else str(i) for i in range(n)]


def category_indices(values, categories: Sequence[str] = CLIPC8_CATEGORIES, what: str = "category") -> np.ndarray:
    """Map category indices or names (either form per column) to validated integer indices."""
    arr = np.asarray(values, dtype=object)
    if arr.ndim != 1 or len(arr) == 0:
        raise MetricsInputError(f"{what} must be a non-empty 1-D sequence")
    lookup = {name: i for i, name in enumerate(categories)}
    out = np.empty(len(arr), dtype=np.int64)
    for i, v in enumerate(arr):
        if isinstance(v, str) and not v.strip().lstrip("-").isdigit():
            if v not in lookup:
                raise MetricsInputError(f"{what} row {i}: unknown category {v!r}; known: {list(categories)}")
            out[i] = lookup[v]
        else:
            try:
                out[i] = int(v)
            except (TypeError, ValueError):
                raise MetricsInputError(f"{what} row {i}: {v!r} is neither a category name nor an index") from None
            if float(v) != out[i] or not 0 <= out[i] < len(categories):
                raise MetricsInputError(f"{what} row {i}: index {v!r} outside 0..{len(categories) - 1}")
    return out


def _check_pair(true, pred, categories) -> tuple[np.ndarray, np.ndarray]:
    t = category_indices(true, categories, "true category")
    p = category_indices(pred, categories, "predicted category")
    if len(t) != len(p):
        raise MetricsInputError(f"{len(t)} true categories but {len(p)} predictions; they must be aligned")
    return t, p


def detected(t: np.ndarray, p: np.ndarray, real_index: int) -> np.ndarray:
    """Per sample: a real one predicted real, or an attack predicted as any attack class."""
    return np.where(t == real_index, p == real_index, p != real_index)


def detection_rates(true, pred, categories: Sequence[str] = CLIPC8_CATEGORIES, real_index: int = 0) -> dict:
    """U per category name; ``None`` for a category with no samples (the rate is undefined, not 0)."""
    t, p = _check_pair(true, pred, categories)
    hit = detected(t, p, real_index)
    return {name: (float(hit[t == k].mean()) if (t == k).any() else None) for k, name in enumerate(categories)}


def category_table(true, pred, categories: Sequence[str] = CLIPC8_CATEGORIES, real_index: int = 0) -> pd.DataFrame:
    """CLIPC8 Tables 4/8: one row per category (letter, name, count, U)."""
    t, _ = _check_pair(true, pred, categories)
    rates = detection_rates(true, pred, categories, real_index)
    return pd.DataFrame({
        "letter": letters(len(categories)),
        "category": list(categories),
        "count": [int((t == k).sum()) for k in range(len(categories))],
        "U": pd.Series([rates[name] for name in categories], dtype=object),  # object: None stays None, not NaN
    })


def domain_rates(true, pred, domains, categories: Sequence[str] = CLIPC8_CATEGORIES,
                 real_index: int = 0) -> pd.DataFrame:
    """CLIPC8 Table 5: per domain, real rate (reals accepted) and fake rate (attacks rejected); last row 'all'."""
    t, p = _check_pair(true, pred, categories)
    d = np.asarray(domains, dtype=object).astype(str)
    if len(d) != len(t):
        raise MetricsInputError(f"{len(d)} domains but {len(t)} samples; give one domain per sample")
    hit = detected(t, p, real_index)
    rows = []
    for name, mask in [(k, d == k) for k in sorted(set(d.tolist()))] + [("all", np.ones(len(d), bool))]:
        real, fake = mask & (t == real_index), mask & (t != real_index)
        rows.append({"domain": name, "n_real": int(real.sum()), "real_rate": _rate(hit, real),
                     "n_fake": int(fake.sum()), "fake_rate": _rate(hit, fake)})
    out = pd.DataFrame(rows)
    return out.astype({"real_rate": object, "fake_rate": object}).where(out.notna(), None)


def _rate(hit: np.ndarray, mask: np.ndarray) -> float | None:
    return float(hit[mask].mean()) if mask.any() else None


def category_confusion(true, pred, categories: Sequence[str] = CLIPC8_CATEGORIES) -> np.ndarray:
    """K x K counts, rows = true category, columns = predicted (scikit-learn's convention)."""
    t, p = _check_pair(true, pred, categories)
    return confusion_matrix(t, p, labels=list(range(len(categories))))


def category_report(true, pred, domains=None, categories: Sequence[str] = CLIPC8_CATEGORIES,
                    real_index: int = 0) -> dict:
    """Everything above as one JSON-able block for metrics.json and report.md."""
    out = {
        "categories": list(categories),
        "real_index": real_index,
        "per_category": category_table(true, pred, categories, real_index).to_dict("records"),
        "confusion_matrix": category_confusion(true, pred, categories).tolist(),
    }
    if domains is not None:
        out["per_domain"] = domain_rates(true, pred, domains, categories, real_index).to_dict("records")
    return out
