"""Binary face anti-spoofing metrics: AUC, EER, HTER, ISO/IEC 30107-3 APCER/BPCER/ACER and operating points.

Conventions, fixed here so every number in a report means the same thing:

- label 1 = bona fide (real), 0 = attack; scores mean "higher = more likely real".
- Decision rule everywhere: a sample is **accepted as real iff ``score >= threshold``**.
- ``BPCER(t)``: fraction of bona fide samples rejected (= FRR = 1 - TPR).
- ``APCER(t)`` of one attack type (PAI species): fraction of its attacks accepted. ``apcer`` is the worst (max) over
  the types present (ISO/IEC 30107-3); ``apcer_all`` pools all attacks (= FAR = the ROC's FPR). Without attack types
  all attacks form one type, so ``apcer == apcer_all``.
- ``ACER = (apcer + BPCER) / 2`` (worst type); ``HTER = (apcer_all + BPCER) / 2`` (pooled attacks).
- Candidate thresholds are the distinct scores plus one value just above the largest score (``nextafter``: reject
  all). Between two distinct scores nothing changes, so these are all the operating points the data has, and every
  threshold we report is a finite number.
- EER: among the candidates, the one where FAR and FRR are closest (|FAR - FRR| smallest, compared exactly on the
  integer counts); the EER is reported as their mean there, (FAR + FRR) / 2. Ties: the smaller mean, then the
  higher (more secure) threshold. No interpolation between ROC points: the EER threshold is one you can deploy.
- BPCER@APCER=x: the BPCER at the lowest-BPCER threshold whose worst-type APCER <= x; TPR@FPR=x: the TPR at the
  highest-TPR threshold whose pooled FPR (apcer_all) <= x.

A metric the input does not define raises ``UndefinedMetricError``; ``compute_metrics`` turns that into ``None`` plus a
reason in its ``undefined`` dict, never a silent number.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve

from fas.eval.errors import MetricsInputError, UndefinedMetricError

DECISION_RULE = "accept as real iff score >= threshold"
REAL = "real"
ALL_ATTACKS = "attack"  # the one attack type used when no attack types are given
APCER_TARGETS = (0.01, 0.05, 0.10)
FPR_TARGETS = (0.01, 0.001)
NO_ATTACKS = "no attack samples (label 0) in the input"
NO_REALS = "no bona fide samples (label 1) in the input"


def percent_key(target: float) -> str:
    """JSON key for an operating point target: 0.01 -> '1%', 0.001 -> '0.1%'."""
    return f"{target * 100:g}%"


@dataclasses.dataclass(frozen=True)
class ScoreSet:
    """Validated scores (float64), labels (0/1) and, optionally, one attack type per row."""

    scores: np.ndarray
    labels: np.ndarray
    attacks: np.ndarray | None = None

    @property
    def real_scores(self) -> np.ndarray:
        return self.scores[self.labels == 1]

    @property
    def attack_scores(self) -> np.ndarray:
        return self.scores[self.labels == 0]

    @property
    def n_real(self) -> int:
        return int((self.labels == 1).sum())

    @property
    def n_attack(self) -> int:
        return int((self.labels == 0).sum())

    def attack_groups(self) -> dict[str, np.ndarray]:
        """Attack scores per attack type (sorted by name); one group ``'attack'`` when types are unknown."""
        if self.n_attack == 0:
            return {}
        if self.attacks is None:
            return {ALL_ATTACKS: self.attack_scores}
        mask = self.labels == 0
        names, scores = self.attacks[mask], self.scores[mask]
        return {name: scores[names == name] for name in sorted(set(names.tolist()))}


def _as_float_array(values, what: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise MetricsInputError(f"{what} must be a 1-D sequence, got shape {arr.shape}")
    try:
        return arr.astype(np.float64)
    except (TypeError, ValueError):
        raise MetricsInputError(f"{what} must be numbers; got values such as {arr[:3].tolist()}") from None


def _check_attacks(attacks, labels: np.ndarray) -> np.ndarray:
    arr = np.asarray(attacks, dtype=object)
    if arr.ndim != 1 or len(arr) != len(labels):
        raise MetricsInputError(f"attacks has {len(arr)} entries but there are {len(labels)} labels; give one per row")
    missing = [i for i, a in enumerate(arr) if labels[i] == 0 and (a is None or a != a or str(a).strip() == "")]
    if missing:
        raise MetricsInputError(f"{len(missing)} attack rows (label 0) have no attack type (first at row {missing[0]});"
                                " fill the attack column or leave it out")
    names = np.array([str(a) for a in arr], dtype=object)
    wrong = np.flatnonzero((labels == 0) & (names == REAL))
    if wrong.size:
        raise MetricsInputError(f"{wrong.size} rows have label 0 (attack) but attack type 'real' (first at row "
                                f"{wrong[0]}); label 1 is bona fide, 0 is attack")
    return names


def check_inputs(scores: Sequence[float], labels: Sequence[int], attacks: Sequence[str] | None = None) -> ScoreSet:
    """Validate once, up front, so a metric is never computed from NaNs, stray labels or misaligned arrays."""
    s = _as_float_array(scores, "scores")
    raw_labels = _as_float_array(labels, "labels")
    if len(s) != len(raw_labels):
        raise MetricsInputError(f"{len(s)} scores but {len(raw_labels)} labels; they must be aligned, one per sample")
    if len(s) == 0:
        raise MetricsInputError("no scores: the input is empty")
    bad = np.flatnonzero(~np.isfinite(s))
    if bad.size:
        raise MetricsInputError(f"{bad.size} scores are NaN or infinite (first at row {bad[0]}); "
                                "fix or drop those rows before evaluating")
    stray = ~np.isin(raw_labels, (0.0, 1.0))
    if stray.any():
        found = sorted({str(v) for v in raw_labels[stray]})[:5]
        raise MetricsInputError(f"labels must be 1 (bona fide) or 0 (attack); found {found} "
                                f"in {int(stray.sum())} rows (first at row {np.flatnonzero(stray)[0]})")
    lab = raw_labels.astype(np.int8)
    return ScoreSet(s, lab, None if attacks is None else _check_attacks(attacks, lab))


def candidate_thresholds(scores: np.ndarray) -> np.ndarray:
    """Distinct scores, ascending, plus the reject-all threshold just above the largest score."""
    distinct = np.unique(scores)
    return np.append(distinct, np.nextafter(distinct[-1], np.inf))


def _accepted(sorted_scores: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """How many of ``sorted_scores`` are >= each threshold (accepted as real)."""
    return len(sorted_scores) - np.searchsorted(sorted_scores, thresholds, side="left")


def _require(data: ScoreSet, reals: bool = False, attacks: bool = False) -> None:
    if attacks and data.n_attack == 0:
        raise UndefinedMetricError(NO_ATTACKS)
    if reals and data.n_real == 0:
        raise UndefinedMetricError(NO_REALS)


# --- threshold-free metrics ----------------------------------------------------------------------------------------


def _auc(data: ScoreSet) -> float:
    _require(data, reals=True, attacks=True)
    return float(roc_auc_score(data.labels, data.scores))


@dataclasses.dataclass(frozen=True)
class EERPoint:
    eer: float
    threshold: float
    far: float  # = APCER over all attacks at the threshold
    frr: float  # = BPCER at the threshold


def _eer(data: ScoreSet) -> EERPoint:
    _require(data, reals=True, attacks=True)
    t = candidate_thresholds(data.scores)
    n_r, n_a = data.n_real, data.n_attack
    fr = np.searchsorted(np.sort(data.real_scores), t, side="left").astype(np.int64)  # reals rejected
    fa = _accepted(np.sort(data.attack_scores), t).astype(np.int64)  # attacks accepted
    gap = np.abs(fa * n_r - fr * n_a)  # |FAR - FRR| * n_r * n_a, exact
    total = fa * n_r + fr * n_a  # (FAR + FRR) * n_r * n_a
    best = np.lexsort((-np.arange(len(t)), total, gap))[0]
    far, frr = fa[best] / n_a, fr[best] / n_r
    return EERPoint(float((far + frr) / 2), float(t[best]), float(far), float(frr))


def roc_points(scores, labels) -> tuple[np.ndarray, np.ndarray]:
    """(FPR = APCER over all attacks, TPR = 1 - BPCER) from scikit-learn's ROC, for plotting."""
    data = check_inputs(scores, labels)
    _require(data, reals=True, attacks=True)
    fpr, tpr, _ = roc_curve(data.labels, data.scores, pos_label=1)
    return fpr, tpr


# --- error rates at a threshold ------------------------------------------------------------------------------------


def _bpcer(data: ScoreSet, threshold: float) -> float:
    _require(data, reals=True)
    return float(np.mean(data.real_scores < threshold))


def _apcer_per_attack(data: ScoreSet, threshold: float) -> dict[str, float]:
    _require(data, attacks=True)
    return {name: float(np.mean(s >= threshold)) for name, s in data.attack_groups().items()}


def _apcer_all(data: ScoreSet, threshold: float) -> float:
    _require(data, attacks=True)
    return float(np.mean(data.attack_scores >= threshold))


def _accuracy(data: ScoreSet, threshold: float) -> float:
    return float(np.mean((data.scores >= threshold) == (data.labels == 1)))


# --- operating points ------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class OperatingPoint:
    value: float  # the BPCER (or TPR) reported
    threshold: float  # the threshold that achieves it
    achieved: float  # the worst-type APCER (or FPR) actually reached there, <= the target


def _bpcer_at_apcer(data: ScoreSet, target: float) -> OperatingPoint:
    _require(data, reals=True, attacks=True)
    t = candidate_thresholds(data.scores)
    worst = np.zeros(len(t))
    for s in data.attack_groups().values():
        worst = np.maximum(worst, _accepted(np.sort(s), t) / len(s))
    i = int(np.flatnonzero(worst <= target)[0])  # worst APCER falls with t; the reject-all point always qualifies
    bpcer = np.searchsorted(np.sort(data.real_scores), t[i], side="left") / data.n_real
    return OperatingPoint(float(bpcer), float(t[i]), float(worst[i]))


def _tpr_at_fpr(data: ScoreSet, target: float) -> OperatingPoint:
    _require(data, reals=True, attacks=True)
    t = candidate_thresholds(data.scores)
    fpr = _accepted(np.sort(data.attack_scores), t) / data.n_attack
    i = int(np.flatnonzero(fpr <= target)[0])
    tpr = _accepted(np.sort(data.real_scores), t[i : i + 1])[0] / data.n_real
    return OperatingPoint(float(tpr), float(t[i]), float(fpr[i]))


# --- public wrappers on plain arrays ---------------------------------------------------------------------------------


def auc(scores, labels) -> float:
    """ROC AUC (scikit-learn; tied scores count half)."""
    return _auc(check_inputs(scores, labels))


def eer(scores, labels) -> EERPoint:
    """Equal error rate and its threshold, as described in the module docstring."""
    return _eer(check_inputs(scores, labels))


def bpcer(scores, labels, threshold: float) -> float:
    return _bpcer(check_inputs(scores, labels), threshold)


def apcer_per_attack(scores, labels, threshold: float, attacks=None) -> dict[str, float]:
    return _apcer_per_attack(check_inputs(scores, labels, attacks), threshold)


def apcer(scores, labels, threshold: float, attacks=None) -> float:
    """Worst-type APCER (ISO/IEC 30107-3)."""
    return max(apcer_per_attack(scores, labels, threshold, attacks).values())


def hter(scores, labels, threshold: float) -> float:
    """(APCER over all attacks + BPCER) / 2 at ``threshold``."""
    data = check_inputs(scores, labels)
    return (_apcer_all(data, threshold) + _bpcer(data, threshold)) / 2


def acer(scores, labels, threshold: float, attacks=None) -> float:
    """(worst-type APCER + BPCER) / 2 at ``threshold``."""
    data = check_inputs(scores, labels, attacks)
    return (max(_apcer_per_attack(data, threshold).values()) + _bpcer(data, threshold)) / 2


def accuracy(scores, labels, threshold: float) -> float:
    return _accuracy(check_inputs(scores, labels), threshold)


def bpcer_at_apcer(scores, labels, target: float, attacks=None) -> OperatingPoint:
    return _bpcer_at_apcer(check_inputs(scores, labels, attacks), target)


def tpr_at_fpr(scores, labels, target: float) -> OperatingPoint:
    return _tpr_at_fpr(check_inputs(scores, labels), target)


# --- uncertainty and sample counts ------------------------------------------------------------------------------------

EER_INTERVAL_LEVEL = 0.95
BOOTSTRAP_REPLICATES = 1000
MIN_PRESENTATIONS = 30  # fewer bona fide presentations, or attacks of a species, make a thin figure


def eer_interval(scores, labels, units, level: float = EER_INTERVAL_LEVEL, replicates: int = BOOTSTRAP_REPLICATES,
                 seed: int = 0) -> dict:
    """Percentile bootstrap interval of the EER, resampling whole ``units`` (subjects, else videos) with
    replacement: frames of one person or one video are not independent, and resampling them one by one would make
    the interval too narrow. A replicate that draws only one class has no EER and is left out (counted)."""
    data = check_inputs(scores, labels)
    _require(data, reals=True, attacks=True)
    units = np.asarray(units, dtype=object)
    if len(units) != len(data.scores):
        raise MetricsInputError(f"units has {len(units)} entries for {len(data.scores)} scores")
    _, inverse = np.unique(units.astype(str), return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    members = np.split(order, np.flatnonzero(np.diff(inverse[order])) + 1)
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(replicates):
        rows = np.concatenate([members[i] for i in rng.integers(0, len(members), len(members))])
        labels_drawn = data.labels[rows]
        if labels_drawn.min() != labels_drawn.max():
            values.append(_eer(ScoreSet(data.scores[rows], labels_drawn)).eer)
    if not values:
        raise UndefinedMetricError("no bootstrap replicate drew both bona fide and attack units")
    tail = (1 - level) / 2
    low, high = np.quantile(values, [tail, 1 - tail])
    return {"low": float(low), "high": float(high), "level": level, "n_units": len(members),
            "replicates": len(values), "one_class_replicates": replicates - len(values), "seed": seed}


def thin_figures(n_real: int, n_per_attack: dict[str, int], minimum: int = MIN_PRESENTATIONS) -> list[str]:
    """The counts too small for the figures built on them to be read as more than indications."""
    thin = [f"{n_real} bona fide presentations: BPCER moves in steps of {1 / n_real:.2%}"] if 0 < n_real < minimum \
        else []
    thin += [f"{n} attacks of {name!r}: its APCER moves in steps of {1 / n:.2%}"
             for name, n in n_per_attack.items() if 0 < n < minimum]
    return thin


# --- everything at once -----------------------------------------------------------------------------------------------


def _attempt(undefined: dict, name: str, fn, *args):
    """Run a metric; an undefined one becomes ``None`` with its reason recorded under ``name``."""
    try:
        return fn(*args)
    except UndefinedMetricError as exc:
        undefined[name] = str(exc)
        return None


def _resolution_flags(data: ScoreSet) -> dict[str, str]:
    """Operating points the sample counts cannot resolve: computable, but the figure sits at APCER/FPR = 0."""
    flags: dict[str, str] = {}
    groups = data.attack_groups()
    if not (data.n_real and groups):
        return flags
    for target in FPR_TARGETS:
        if data.n_attack < 1 / target:
            flags[f"tpr_at_fpr.{percent_key(target)}"] = (
                f"only {data.n_attack} attacks: FPR moves in steps of {1 / data.n_attack:.3%}, coarser than the "
                f"{percent_key(target)} target, so this TPR is the one at FPR = 0")
    name, n_min = min(((k, len(v)) for k, v in groups.items()), key=lambda kv: kv[1])
    for target in APCER_TARGETS:
        if n_min < 1 / target:
            flags[f"bpcer_at_apcer.{percent_key(target)}"] = (
                f"attack type {name!r} has only {n_min} samples: its APCER moves in steps of {1 / n_min:.3%}, "
                f"coarser than the {percent_key(target)} target, so this BPCER is the one at APCER = 0")
    return flags


def _operating_points(data: ScoreSet, undefined: dict) -> dict:
    bpcer_at = _attempt(undefined, "bpcer_at_apcer", lambda: {
        percent_key(x): _bpcer_at_apcer(data, x).value for x in APCER_TARGETS})
    tpr_at = _attempt(undefined, "tpr_at_fpr", lambda: {
        percent_key(x): _tpr_at_fpr(data, x).value for x in FPR_TARGETS})
    return {"bpcer_at_apcer": bpcer_at, "tpr_at_fpr": tpr_at}


def _threshold_metrics(data: ScoreSet, threshold: float, undefined: dict) -> dict:
    """APCER/BPCER/ACER/HTER/accuracy at ``threshold``; HTER and ACER need both classes."""
    per_attack = _attempt(undefined, "apcer", _apcer_per_attack, data, threshold)
    bpcer_value = _attempt(undefined, "bpcer", _bpcer, data, threshold)
    worst = max(per_attack.values()) if per_attack else None
    apcer_all = _apcer_all(data, threshold) if per_attack else None
    if per_attack is None or bpcer_value is None:
        reason = NO_ATTACKS if per_attack is None else NO_REALS
        undefined.update({"hter": reason, "acer": reason})
        hter_value = acer_value = None
    else:
        hter_value, acer_value = (apcer_all + bpcer_value) / 2, (worst + bpcer_value) / 2
    return {
        "hter": hter_value,
        "apcer": worst,
        "apcer_all": apcer_all,
        "apcer_per_attack": per_attack or {},
        "n_per_attack": {k: int(len(v)) for k, v in data.attack_groups().items()},
        "bpcer": bpcer_value,
        "acer": acer_value,
        "accuracy": _accuracy(data, threshold),
    }


def compute_metrics(scores, labels, threshold: float, attacks=None) -> dict:
    """All metrics at one threshold, JSON-able; undefined ones are ``None`` with a reason in ``undefined``."""
    data = check_inputs(scores, labels, attacks)
    threshold = float(threshold)
    if not np.isfinite(threshold):
        raise MetricsInputError(f"threshold must be a finite number, got {threshold}")
    undefined: dict[str, str] = {}
    eer_point = _attempt(undefined, "eer", _eer, data)
    if eer_point is None:
        undefined["eer_threshold"] = undefined["eer"]
    return {
        "auc": _attempt(undefined, "auc", _auc, data),
        "eer": None if eer_point is None else eer_point.eer,
        "eer_threshold": None if eer_point is None else eer_point.threshold,
        "threshold": threshold,
        "decision_rule": DECISION_RULE,
        **_threshold_metrics(data, threshold, undefined),
        **_operating_points(data, undefined),
        "n_real": data.n_real,
        "n_attack": data.n_attack,
        "undefined": undefined,
        "flags": _resolution_flags(data),
    }
