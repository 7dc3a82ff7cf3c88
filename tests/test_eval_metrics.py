"""Every metric against an independent computation (scikit-learn or brute force), on random and heavily tied scores."""

import numpy as np
import pytest
from sklearn.metrics import confusion_matrix, roc_auc_score, roc_curve

from fas.eval import metrics as M
from fas.eval.errors import MetricsInputError

TOL = 1e-6
ATTACK_TYPES = np.array(["print", "replay", "mask"])


def _make(kind: str, n: int = 400, seed: int = 0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    if kind == "random":
        scores = rng.normal(labels * 1.2, 1.0)
    elif kind == "tied":  # five distinct values only: ties everywhere, including across classes
        scores = np.clip(np.round(rng.normal(labels * 1.5, 1.0)), -2, 2) / 4
    else:  # "binary": hard 0/1 decisions, the most extreme tie pattern
        scores = (rng.random(n) < np.where(labels == 1, 0.8, 0.3)).astype(float)
    attacks = np.where(labels == 1, "real", ATTACK_TYPES[rng.integers(0, 3, n)])
    return scores, labels, attacks


DATASETS = ["random", "tied", "binary"]


def _brute_rates(scores, labels, attacks, t):
    """Rates at threshold t by explicit counting (accept iff score >= t)."""
    acc = scores >= t
    reals, atts = labels == 1, labels == 0
    per = {a: acc[atts & (attacks == a)].mean() for a in sorted(set(attacks[atts]))}
    return {"bpcer": (~acc[reals]).mean(), "apcer_all": acc[atts].mean(), "per": per, "apcer": max(per.values())}


def _thresholds(scores):
    return np.append(np.unique(scores), np.inf)


def _brute_eer(scores, labels):
    """Closest FAR/FRR point over all thresholds; ties -> smaller mean, then higher threshold."""
    best = None
    for t in _thresholds(scores):
        r = _brute_rates(scores, labels, np.where(labels == 1, "real", "x"), t)
        far, frr = r["apcer_all"], r["bpcer"]
        key = (round(abs(far - frr), 12), round((far + frr) / 2, 12), -t)
        if best is None or key < best[0]:
            best = (key, (far + frr) / 2, t)
    return best[1], best[2]


@pytest.mark.parametrize("kind", DATASETS)
def test_auc_matches_sklearn_and_pair_count(kind):
    scores, labels, _ = _make(kind)
    pos, neg = scores[labels == 1], scores[labels == 0]
    pairs = ((pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])).mean()
    assert M.auc(scores, labels) == pytest.approx(roc_auc_score(labels, scores), abs=TOL)
    assert M.auc(scores, labels) == pytest.approx(pairs, abs=TOL)


@pytest.mark.parametrize("kind", DATASETS)
def test_eer_matches_brute_force_and_roc_curve(kind):
    scores, labels, _ = _make(kind)
    point = M.eer(scores, labels)
    eer, t = _brute_eer(scores, labels)
    assert point.eer == pytest.approx(eer, abs=TOL)
    assert point.threshold == pytest.approx(t, abs=TOL)
    fpr, tpr, thr = roc_curve(labels, scores, drop_intermediate=False)
    frr = 1 - tpr
    i = min(range(len(thr)), key=lambda k: (round(abs(fpr[k] - frr[k]), 12), round(fpr[k] + frr[k], 12), -thr[k]))
    assert point.eer == pytest.approx((fpr[i] + frr[i]) / 2, abs=TOL)
    assert point.threshold == pytest.approx(thr[i], abs=TOL)
    assert (point.far, point.frr) == pytest.approx((fpr[i], frr[i]), abs=TOL)


@pytest.mark.parametrize("kind", DATASETS)
def test_rates_at_threshold_match_confusion_matrix_and_counting(kind):
    scores, labels, attacks = _make(kind)
    for t in list(np.quantile(scores, [0.1, 0.5, 0.9])) + [scores[3]]:  # scores[3]: a threshold equal to a score
        m = M.compute_metrics(scores, labels, t, attacks)
        cm = confusion_matrix(labels, (scores >= t).astype(int), labels=[0, 1])
        apcer_all, bpcer = cm[0, 1] / cm[0].sum(), cm[1, 0] / cm[1].sum()
        brute = _brute_rates(scores, labels, attacks, t)
        assert m["apcer_all"] == pytest.approx(apcer_all, abs=TOL)
        assert m["bpcer"] == pytest.approx(bpcer, abs=TOL)
        assert m["accuracy"] == pytest.approx(np.trace(cm) / cm.sum(), abs=TOL)
        assert m["hter"] == pytest.approx((apcer_all + bpcer) / 2, abs=TOL)
        assert m["apcer_per_attack"] == pytest.approx(brute["per"], abs=TOL)
        assert m["apcer"] == pytest.approx(brute["apcer"], abs=TOL)
        assert m["acer"] == pytest.approx((brute["apcer"] + bpcer) / 2, abs=TOL)
        assert M.hter(scores, labels, t) == pytest.approx(m["hter"], abs=TOL)
        assert M.acer(scores, labels, t, attacks) == pytest.approx(m["acer"], abs=TOL)


@pytest.mark.parametrize("kind", DATASETS)
@pytest.mark.parametrize("target", [0.01, 0.05, 0.10, 0.3])
def test_bpcer_at_apcer_matches_brute_force(kind, target):
    scores, labels, attacks = _make(kind)
    feasible = [(r["bpcer"], t) for t in _thresholds(scores)
                for r in [_brute_rates(scores, labels, attacks, t)] if r["apcer"] <= target]
    best_bpcer = min(b for b, _ in feasible)
    point = M.bpcer_at_apcer(scores, labels, target, attacks)
    assert point.value == pytest.approx(best_bpcer, abs=TOL)
    assert point.achieved <= target
    assert _brute_rates(scores, labels, attacks, point.threshold)["bpcer"] == pytest.approx(point.value, abs=TOL)


@pytest.mark.parametrize("kind", DATASETS)
@pytest.mark.parametrize("target", [0.01, 0.001, 0.2])
def test_tpr_at_fpr_matches_roc_curve(kind, target):
    scores, labels, _ = _make(kind)
    fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    assert M.tpr_at_fpr(scores, labels, target).value == pytest.approx(tpr[fpr <= target].max(), abs=TOL)


def test_worked_example_by_hand():
    # reals 0.7 0.8 0.4 0.95; print 0.9 0.2; replay 0.6 0.1 0.3; and a real exactly at the threshold 0.5
    scores = [0.7, 0.8, 0.4, 0.95, 0.9, 0.2, 0.6, 0.1, 0.3, 0.5]
    labels = [1, 1, 1, 1, 0, 0, 0, 0, 0, 1]
    attacks = ["real"] * 4 + ["print", "print", "replay", "replay", "replay", "real"]
    m = M.compute_metrics(scores, labels, 0.5, attacks)
    assert m["apcer_per_attack"] == pytest.approx({"print": 1 / 2, "replay": 1 / 3})
    assert m["apcer"] == pytest.approx(0.5) and m["apcer_all"] == pytest.approx(2 / 5)
    assert m["bpcer"] == pytest.approx(1 / 5)  # 0.4 rejected; 0.5 == threshold is accepted
    assert m["acer"] == pytest.approx((0.5 + 0.2) / 2) and m["hter"] == pytest.approx((0.4 + 0.2) / 2)
    assert m["accuracy"] == pytest.approx(7 / 10)
    # worst APCER <= 50%: lowest threshold keeping print <= 1/2 and replay <= 1/3 is 0.4 -> BPCER 0
    assert M.bpcer_at_apcer(scores, labels, 0.5, attacks).threshold == pytest.approx(0.4)
    assert M.bpcer_at_apcer(scores, labels, 0.5, attacks).value == 0.0
    # APCER 0 for every type needs t > 0.9: t = 0.95, rejecting 4 of 5 reals
    assert M.bpcer_at_apcer(scores, labels, 0.1, attacks).value == pytest.approx(4 / 5)


def test_eer_worked_example():
    # scikit-learn's ROC example: AUC 0.75; FAR = FRR = 0.5 at threshold 0.4
    point = M.eer([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
    assert (point.eer, point.threshold) == (0.5, 0.4)
    assert M.auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == 0.75
    separated = M.eer([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1])
    assert (separated.eer, separated.threshold) == (0.0, 0.8)


def test_undefined_metrics_are_none_with_reasons():
    only_reals = M.compute_metrics([0.2, 0.9, 0.5], [1, 1, 1], 0.5)
    for key in ("auc", "eer", "eer_threshold", "apcer", "hter", "acer", "bpcer_at_apcer", "tpr_at_fpr"):
        assert only_reals[key] is None
        assert "no attack samples" in only_reals["undefined"][key]
    assert only_reals["bpcer"] == pytest.approx(1 / 3) and "bpcer" not in only_reals["undefined"]
    only_attacks = M.compute_metrics([0.2, 0.9], [0, 0], 0.5, ["print", "replay"])
    assert only_attacks["bpcer"] is None and "no bona fide" in only_attacks["undefined"]["bpcer"]
    assert only_attacks["apcer_per_attack"] == {"print": 0.0, "replay": 1.0}
    assert only_attacks["auc"] is None and only_attacks["accuracy"] == 0.5


def test_low_count_operating_points_are_flagged_not_hidden():
    scores, labels, attacks = _make("random", n=400)
    m = M.compute_metrics(scores, labels, 0.0, attacks)
    assert m["tpr_at_fpr"]["0.1%"] is not None and "tpr_at_fpr.0.1%" in m["flags"]
    rng = np.random.default_rng(3)
    big = M.compute_metrics(np.r_[rng.normal(size=1000), rng.normal(2, 1, 50)], np.r_[np.zeros(1000), np.ones(50)], 0)
    assert "tpr_at_fpr.0.1%" not in big["flags"] and "bpcer_at_apcer.1%" not in big["flags"]


def test_without_attack_types_apcer_is_pooled():
    scores, labels, _ = _make("random")
    m = M.compute_metrics(scores, labels, 0.3)
    assert list(m["apcer_per_attack"]) == [M.ALL_ATTACKS]
    assert m["apcer"] == m["apcer_all"]


@pytest.mark.parametrize("scores, labels, attacks, message", [
    ([0.1, float("nan")], [0, 1], None, "NaN"),
    ([0.1, float("inf")], [0, 1], None, "infinite"),
    ([], [], None, "empty"),
    ([0.1, 0.2], [0, 2], None, "labels must be 1"),
    ([0.1, 0.2, 0.3], [0, 1], None, "3 scores but 2 labels"),
    ([0.1, 0.2], [0, 1], ["real", "real"], "attack type 'real'"),
    ([0.1, 0.2], [0, 1], ["print"], "attacks has 1"),
    ([0.1, 0.2], [0, 1], [None, "real"], "no attack type"),
    (["a", "b"], [0, 1], None, "must be numbers"),
])
def test_bad_input_is_a_clear_value_error(scores, labels, attacks, message):
    with pytest.raises(MetricsInputError, match=message) as info:
        M.compute_metrics(scores, labels, 0.5, attacks)
    assert isinstance(info.value, ValueError)


def test_percent_keys_and_json_safe_thresholds():
    assert [M.percent_key(x) for x in (0.01, 0.05, 0.1, 0.001)] == ["1%", "5%", "10%", "0.1%"]
    # an operating point that must reject everything still reports a finite threshold
    point = M.bpcer_at_apcer([0.5, 0.5, 0.5], [0, 1, 0], 0.01)
    assert np.isfinite(point.threshold) and point.threshold > 0.5 and point.value == 1.0


# ---------------------------------------------------------------- scikit-learn's DET curve, ISO/IEC 30107-3 figures
def _det_rates(scores, labels):
    """(APCER, BPCER) at every threshold scikit-learn's ``det_curve`` keeps, plus the reject-all point it omits
    (it keeps only the thresholds where a rate changes; ``pos_label=1``: bona fide accepted iff score >= t)."""
    from sklearn.metrics import det_curve

    fpr, fnr, _ = det_curve(labels, scores, pos_label=1)
    return np.append(fpr, 0.0), np.append(fnr, 1.0)


@pytest.mark.parametrize("kind", DATASETS)
def test_eer_and_bpcer20_match_sklearns_det_curve(kind):
    scores, labels, _ = _make(kind)
    apcer, bpcer = _det_rates(scores, labels)
    gap = np.round(np.abs(apcer - bpcer), 12)
    tied = gap == gap.min()
    assert M.eer(scores, labels).eer == pytest.approx(((apcer + bpcer) / 2)[tied].min(), abs=TOL)
    for target in (0.10, 0.05, 0.01):  # BPCER10, BPCER20, BPCER100 with one attack species
        assert M.bpcer_at_apcer(scores, labels, target).value == pytest.approx(bpcer[apcer <= target].min(), abs=TOL)


@pytest.mark.parametrize("kind", DATASETS)
def test_rates_at_the_eer_threshold_are_a_det_curve_point(kind):
    scores, labels, _ = _make(kind)
    apcer, bpcer = _det_rates(scores, labels)
    t = M.eer(scores, labels).threshold
    point = (M.apcer(scores, labels, t), M.bpcer(scores, labels, t))
    assert np.isclose(apcer, point[0], atol=TOL)[np.isclose(bpcer, point[1], atol=TOL)].any()


def test_eer_interval_resamples_whole_units():
    """Ten identical frames per unit resampled by unit give the interval of the single frames resampled one by
    one (same draws, every count times ten); read as independent frames, the interval is narrower."""
    scores, labels, _ = _make("random", n=60, seed=3)
    single = M.eer_interval(scores, labels, np.arange(60), replicates=300)
    frames = M.eer_interval(np.repeat(scores, 10), np.repeat(labels, 10), np.repeat(np.arange(60), 10),
                            replicates=300)
    assert (frames["low"], frames["high"], frames["n_units"]) == (single["low"], single["high"], 60)
    independent = M.eer_interval(np.repeat(scores, 10), np.repeat(labels, 10), np.arange(600), replicates=300)
    assert independent["high"] - independent["low"] < (single["high"] - single["low"]) / 2
    eer = M.eer(scores, labels).eer
    assert single["low"] <= eer <= single["high"] and single["level"] == 0.95


def test_eer_interval_counts_one_class_replicates_and_is_seeded():
    """Two units, one bona fide and one attack: a replicate that draws the same unit twice has no EER."""
    scores, labels = np.array([0.9, 0.8, 0.2, 0.1]), np.array([1, 1, 0, 0])
    units = ["alice", "alice", "mallory", "mallory"]
    out = M.eer_interval(scores, labels, units, replicates=200, seed=7)
    draws = np.random.default_rng(7).integers(0, 2, (200, 2))
    assert out["one_class_replicates"] == int((draws[:, 0] == draws[:, 1]).sum())
    assert out["replicates"] == 200 - out["one_class_replicates"] and (out["low"], out["high"]) == (0.0, 0.0)
    assert M.eer_interval(scores, labels, units, replicates=200, seed=7) == out
    with pytest.raises(MetricsInputError, match="units has 3 entries for 4 scores"):
        M.eer_interval(scores, labels, units[:3])


def test_thin_figures_name_each_small_count():
    assert M.thin_figures(200, {"print": 300, "mask": 12}) == [
        "12 attacks of 'mask': its APCER moves in steps of 8.33%"]
    assert M.thin_figures(25, {"print": 30}) == ["25 bona fide presentations: BPCER moves in steps of 4.00%"]
