"""The report's pictures: DET curve, score histograms, APCER per species, CLIPC8's confusion matrix.

Each draws on its own Agg canvas (no pyplot state, safe in Ray workers) and writes a PNG. Rates are in percent;
the DET curve uses normal-deviate axes (ISO/IEC 19795-1's DET plot), on which two normal score distributions give
a straight line and the low-error corner, where a deployed system runs, is not squeezed into a corner.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd

DET_TICKS = (0.001, 0.01, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 0.95)
DET_LIMITS = (0.0005, 0.95)  # rates outside are drawn at the edge
COLOURS = ("tab:red", "tab:orange", "tab:purple", "tab:brown", "tab:pink", "tab:olive", "tab:cyan", "tab:grey")


def new_figure(width: float = 5.0, height: float = 4.2, dpi: int = 110):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def save_figure(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path)
    return Path(path)


def normal_deviate(rates) -> np.ndarray:
    from scipy.stats import norm

    return norm.ppf(np.clip(np.asarray(rates, float), *DET_LIMITS))


def _percent(rate: float) -> str:
    return f"{100 * rate:.2f}%"


def measured_scores(scores_df: pd.DataFrame, metrics: Mapping) -> pd.DataFrame:
    """The rows ``metrics`` were computed on, so that a curve matches its numbers: one per video when the metrics
    are video-level (aggregated as they were), else the table as it is."""
    from fas.eval.aggregate import aggregate_by_video

    if metrics.get("level") == "video" and "video" in scores_df.columns:
        return aggregate_by_video(scores_df, metrics.get("video_aggregation") or "mean")
    return scores_df


def det_axes(ax, title: str) -> None:
    """Normal-deviate DET axes: percent ticks at ``DET_TICKS``, both rates over ``DET_LIMITS``, a grid."""
    ticks = normal_deviate(DET_TICKS)
    labels = [f"{100 * t:g}%" for t in DET_TICKS]
    ax.set_xticks(ticks, labels, fontsize=7)
    ax.set_yticks(ticks, labels, fontsize=7)
    ax.set(xlim=ticks[[0, -1]], ylim=ticks[[0, -1]], xlabel="APCER, all attacks (%)", ylabel="BPCER (%)",
           title=title)
    ax.grid(alpha=0.3)


def plot_roc(df: pd.DataFrame, metrics: Mapping, path: Path) -> Path:
    """ROC (FPR = APCER over all attacks, TPR = 1 - BPCER) of the measured rows (``measured_scores``) with the
    operating point."""
    from fas.eval.metrics import roc_points

    fig, ax = new_figure(4.5, 4.5, dpi=100)
    if metrics["auc"] is None:
        ax.text(0.5, 0.5, f"ROC undefined:\n{metrics['undefined'].get('auc')}", ha="center", va="center", wrap=True)
    else:
        fpr, tpr = roc_points(df["score"].to_numpy(), df["label"].to_numpy())
        ax.plot(fpr, tpr, label=f"ROC (AUC {metrics['auc']:.4f})")
        ax.plot([0, 1], [0, 1], ls=":", c="grey")
        if metrics["apcer_all"] is not None and metrics["bpcer"] is not None:
            ax.plot(metrics["apcer_all"], 1 - metrics["bpcer"], "o", label=f"threshold: {metrics['threshold_rule']}")
        ax.legend(loc="lower right", fontsize=8)
    ax.set(xlabel="FPR (APCER, all attacks)", ylabel="TPR (1 - BPCER)", xlim=(0, 1), ylim=(0, 1.01))
    return save_figure(fig, path)


def plot_det(df: pd.DataFrame, metrics: Mapping, path: Path) -> Path:
    """APCER (all attacks) against BPCER on normal-deviate axes, with the threshold's point, the EER point and the
    BPCER20 point marked."""
    from sklearn.metrics import det_curve

    fig, ax = new_figure()
    if metrics["auc"] is None:
        ax.text(0.5, 0.5, f"DET undefined:\n{metrics['undefined'].get('auc')}", ha="center", va="center",
                transform=ax.transAxes, wrap=True)
        return save_figure(fig, path)
    apcer, bpcer, _ = det_curve(df["label"].to_numpy(), df["score"].to_numpy(), pos_label=1)
    ax.plot(normal_deviate(apcer), normal_deviate(bpcer), lw=1.6, label="DET")
    if metrics["apcer_all"] is not None and metrics["bpcer"] is not None:
        ax.plot(*normal_deviate([metrics["apcer_all"], metrics["bpcer"]]), "o", ms=7,
                label=f"threshold ({metrics['threshold_rule']}): APCER {_percent(metrics['apcer_all'])}, "
                      f"BPCER {_percent(metrics['bpcer'])}")
    if metrics["eer"] is not None:
        ax.plot(*normal_deviate([metrics["eer"]] * 2), "s", ms=6, label=f"EER {100 * metrics['eer']:.2f}%")
    bpcer20 = (metrics.get("bpcer_at_apcer") or {}).get("5%")
    if bpcer20 is not None:
        ax.plot(*normal_deviate([0.05, bpcer20]), "^", ms=6, label=f"BPCER20 {100 * bpcer20:.2f}% (APCER_AP 5%)")
    ends = normal_deviate(DET_TICKS)[[0, -1]]
    ax.plot(ends, ends, ls=":", c="grey", lw=0.8)
    det_axes(ax, "DET curve (normal-deviate axes)")
    ax.legend(loc="upper right", fontsize=7)
    return save_figure(fig, path)


def plot_score_histograms(df: pd.DataFrame, metrics: Mapping, path: Path) -> Path:
    """Scores of bona fide presentations and of each attack species (each as a percentage of its own count, so a
    small species is not flattened), with the decision threshold."""
    fig, ax = new_figure(5.6, 4.0)
    scores = df["score"].to_numpy(float)
    bins = np.histogram_bin_edges(scores, bins=min(40, max(10, len(scores) // 10)))
    groups = [("bona fide", df["label"].to_numpy() == 1)]
    if "attack" in df.columns:
        attacks = df["attack"].astype(str).to_numpy()
        groups += [(name, (df["label"].to_numpy() == 0) & (attacks == name))
                   for name in sorted(set(attacks[df["label"].to_numpy() == 0]))]
    else:
        groups.append(("attack", df["label"].to_numpy() == 0))
    for (name, rows), colour in zip(groups, ("tab:green",) + COLOURS):
        if rows.any():
            weights = np.full(rows.sum(), 100.0 / rows.sum())
            ax.hist(scores[rows], bins=bins, weights=weights, histtype="step", lw=1.6, color=colour,
                    label=f"{name} ({rows.sum()})")
    ax.axvline(metrics["threshold"], color="black", ls="--", lw=1,
               label=f"threshold {metrics['threshold']:.4g} ({metrics['threshold_rule']})")
    ax.set(xlabel="score (higher = more likely bona fide)", ylabel="presentations of the group (%)",
           title="Score distributions")
    ax.legend(fontsize=7)
    return save_figure(fig, path)


def plot_apcer_bars(metrics: Mapping, path: Path) -> Path:
    """APCER of each species at the threshold, APCER_AP (the worst) marked, BPCER beside them for scale."""
    fig, ax = new_figure(5.0, 3.6)
    names = list(metrics["apcer_per_attack"])
    values = [100 * metrics["apcer_per_attack"][n] for n in names]
    bars = ax.bar(names, values, color=[COLOURS[i % len(COLOURS)] for i in range(len(names))])
    ax.bar_label(bars, [f"{v:.1f}% of {metrics['n_per_attack'][n]}" for v, n in zip(values, names)], fontsize=7)
    ax.axhline(100 * metrics["apcer"], color="black", ls="--", lw=1, label=f"APCER_AP {100 * metrics['apcer']:.2f}%")
    if metrics["bpcer"] is not None:
        ax.axhline(100 * metrics["bpcer"], color="tab:green", ls=":", lw=1.2,
                   label=f"BPCER {100 * metrics['bpcer']:.2f}%")
    ax.set(ylabel="APCER at the threshold (%)", ylim=(0, max(values + [1.0]) * 1.25),
           title=f"APCER per attack type (threshold {metrics['threshold']:.4g})")
    ax.tick_params(axis="x", labelsize=8, rotation=20)
    ax.legend(fontsize=7)
    return save_figure(fig, path)


def plot_confusion(block: Mapping, path: Path) -> Path:
    """CLIPC8's categories: counts in the cells, colour = the share of the true category (row)."""
    matrix = np.asarray(block["confusion_matrix"], float)
    shares = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    from fas.eval.categories import letters

    names, marks = block["categories"], letters(len(block["categories"]))
    fig, ax = new_figure(6.2, 5.0)
    image = ax.imshow(100 * shares, cmap="Blues", vmin=0, vmax=100)
    for (i, j), count in np.ndenumerate(matrix.astype(int)):
        ax.text(j, i, str(count), ha="center", va="center", fontsize=8,
                color="white" if shares[i, j] > 0.5 else "black")
    ticks = range(len(names))
    ax.set_xticks(ticks, marks, fontsize=8)
    ax.set_yticks(ticks, [f"{m} {n}" for m, n in zip(marks, names)], fontsize=7)
    ax.set(xlabel="predicted category", ylabel="true category", title="CLIPC8 confusion matrix")
    ax.figure.colorbar(image, ax=ax, label="share of the true category (%)")
    return save_figure(fig, path)


def plot_training_curves(history: list[dict], unit: str, path: Path, title: str = "") -> Path:
    """Loss, learning rate and source-side validation (AUC, HTER in percent) per checkpoint of a run; a restart
    from a checkpoint is marked where the history resumes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    x = [h[unit] for h in history]
    validation = [k for k in ("val_auc", "val_hter") if any(h.get(k) is not None for h in history)]
    fig = Figure(figsize=(5.0, 2.2 * (2 + bool(validation))), dpi=110)
    FigureCanvasAgg(fig)
    axes = fig.subplots(2 + bool(validation), 1, sharex=True)
    panels = [("loss", "training loss", 1.0), ("lr", "learning rate", 1.0)]
    for ax, (key, label, scale) in zip(axes, panels):
        ax.plot(x, [h.get(key) for h in history], marker=".", lw=1.4)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    if validation:
        ax = axes[-1]
        for key, label in (("val_auc", "AUC (%)"), ("val_hter", "HTER (%)")):
            if key in validation:
                ax.plot(x, [None if h.get(key) is None else 100 * h[key] for h in history], marker=".", label=label)
        ax.set_ylabel("source-side validation (%)")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    for ax in axes:
        for previous, h in zip(history, history[1:]):
            if h.get("resumed_from") != previous.get("resumed_from"):
                ax.axvline(h["resumed_from"], color="tab:red", ls=":", lw=1)
    axes[0].set_title(f"{title + ': ' if title else ''}training curves (dotted red: resumed from a checkpoint)",
                      fontsize=9)
    axes[-1].set_xlabel(unit)
    return save_figure(fig, path)


def plot_sweep(table: pd.DataFrame, param: str, metric: str, best: int, path: Path, title: str = "") -> Path:
    """Each trial's source-side validation AUC and HTER (percent) against the swept value, the mean per value as a
    line, the best trial (by ``metric``) starred."""
    fig, ax = new_figure(5.2, 3.8)
    numeric = pd.api.types.is_numeric_dtype(table[param])
    x = table[param] if numeric else table[param].astype(str)
    for column, label, colour in (("val_auc", "AUC", "tab:blue"), ("val_hter", "HTER", "tab:orange")):
        if column not in table or table[column].isna().all():
            continue
        ax.scatter(x, 100 * table[column], color=colour, s=18, alpha=0.6)
        mean = (100 * table.groupby(x)[column].mean()).sort_index()
        ax.plot(mean.index, mean.values, color=colour, marker="o", label=f"{label} (mean per value)")
    best_value = table.loc[best, f"best_{metric}"]
    scale = 100 if metric in ("val_auc", "val_hter") else 1
    ax.plot([x.iloc[best]], [scale * best_value], marker="*", ms=14, color="black", ls="",
            label=f"best trial: {param} = {table.loc[best, param]} ({metric} {best_value:.4f})")
    ax.set(xlabel=param, ylabel="source-side validation (%)",
           title=f"{title + ': ' if title else ''}validation vs {param}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return save_figure(fig, path)
