"""``fas compare RUN... --out DIR``: evaluation folders side by side (methods, ablations, seeds, folds).

Each RUN is a folder ``jobs/evaluate.py`` (or ``fas metrics``) wrote: ``metrics.json``, ``scores.csv`` and
``config.yaml``. Runs given the same ``--label`` are one row, reported as mean ± std over its runs (seeds or
folds, ``summarize_folds``); every run gets its own curve on one DET and one ROC plot. Where the runs' protocol
has published figures (``fas.eval.protocols.PUBLISHED``) they are listed beside ours, labelled as published.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import pandas as pd
import yaml

from fas.eval.errors import MetricsInputError

KEYS = ("hter", "auc", "eer", "apcer", "bpcer", "acer", "bpcer20")
HEADERS = ("HTER", "AUC", "EER", "APCER_AP", "BPCER", "ACER", "BPCER20")


@dataclasses.dataclass
class Run:
    folder: Path
    label: str
    metrics: dict
    scores: pd.DataFrame
    protocol: str | None


def load_run(folder: str | Path, label: str | None = None) -> Run:
    """One evaluation folder; a missing file is named with what wrote it."""
    folder = Path(folder)
    missing = [n for n in ("metrics.json", "scores.csv") if not (folder / n).is_file()]
    if missing:
        raise MetricsInputError(f"{folder} is not an evaluation folder: {', '.join(missing)} missing (jobs/evaluate.py "
                                f"and fas metrics --out write them)")
    metrics = json.loads((folder / "metrics.json").read_text())
    metrics["bpcer20"] = (metrics.get("bpcer_at_apcer") or {}).get("5%")
    config = yaml.safe_load((folder / "config.yaml").read_text()) if (folder / "config.yaml").is_file() else {}
    protocol = ((config or {}).get("evaluate") or {}).get("protocol")
    return Run(folder, label or folder.name, metrics, pd.read_csv(folder / "scores.csv"), protocol)


def group_rows(runs: list[Run]) -> list[dict]:
    """One row per label: the value of a single run, mean ± std (population) over several."""
    from fas.eval.report import summarize_folds

    rows = []
    for label in dict.fromkeys(r.label for r in runs):
        members = [r.metrics for r in runs if r.label == label]
        summary = summarize_folds(members, KEYS)
        rows.append({"label": label, "runs": len(members), "threshold_rule": summary["threshold_rule"],
                     **{k: summary[k] for k in KEYS}})
    return rows


def _cell(entry: dict) -> str:
    if entry["mean"] is None:
        return "undefined"
    if len(entry["values"]) == 1:
        return f"{100 * entry['mean']:.2f}%"
    return f"{100 * entry['mean']:.2f} ± {100 * entry['std']:.2f}%"


def render(rows: list[dict], runs: list[Run], published: dict | None) -> str:
    lines = ["# Comparison", "", "Each row: one label; several runs under a label are shown as mean ± std "
             "(population std over its runs). Thresholds: each run's own rule, named in the last column.", "",
             "| label | runs | " + " | ".join(HEADERS) + " | threshold rule |",
             "|" + "---|" * (len(HEADERS) + 3)]
    for row in rows:
        rule = row["threshold_rule"] if isinstance(row["threshold_rule"], str) else ", ".join(row["threshold_rule"])
        lines.append(f"| {row['label']} | {row['runs']} | " + " | ".join(_cell(row[k]) for k in KEYS) + f" | {rule} |")
    if published:
        domains = sorted({d for cells in published["rows"].values() for d in cells})
        lines += ["", f"Published ({published['source']}), HTER % / AUC % per test dataset, the papers' own "
                      "threshold rules and data:", "", "| method | " + " | ".join(domains) + " |",
                  "|" + "---|" * (len(domains) + 1)]
        for method, cells in published["rows"].items():
            lines.append(f"| {method} (published) | " + " | ".join(
                "{:.2f} / {:.2f}".format(*cells[d]) if d in cells else "n/a" for d in domains) + " |")
    lines += ["", "Runs: " + "; ".join(f"{r.label}: `{r.folder}`" for r in runs), "",
              "![DET curves](det.png)", "", "![ROC curves](roc.png)"]
    return "\n".join(lines) + "\n"


def plot_curves(runs: list[Run], folder: Path) -> None:
    """One DET (normal-deviate axes) and one ROC, a curve per run."""
    from sklearn.metrics import det_curve, roc_curve

    from fas.eval.plots import det_axes, measured_scores, new_figure, normal_deviate, save_figure

    det_fig, det = new_figure()
    roc_fig, roc = new_figure()
    for run in runs:
        df = measured_scores(run.scores, run.metrics)
        if df["label"].nunique() < 2:
            continue
        name = run.label if sum(r.label == run.label for r in runs) == 1 else f"{run.label} ({run.folder.name})"
        apcer, bpcer, _ = det_curve(df["label"], df["score"], pos_label=1)
        det.plot(normal_deviate(apcer), normal_deviate(bpcer), lw=1.4, label=name)
        fpr, tpr, _ = roc_curve(df["label"], df["score"], pos_label=1)
        roc.plot(100 * fpr, 100 * tpr, lw=1.4, label=name)
    det_axes(det, "DET curves")
    roc.set(xlabel="FPR = APCER, all attacks (%)", ylabel="TPR = 1 - BPCER (%)", title="ROC curves",
            xlim=(0, 100), ylim=(0, 101))
    roc.grid(alpha=0.3)
    for ax in (det, roc):
        ax.legend(fontsize=7)
    save_figure(det_fig, folder / "det.png")
    save_figure(roc_fig, folder / "roc.png")


def compare(folders: list[str], labels: list[str] | None, out: str | Path) -> dict:
    """Write compare.md, compare.html, compare.json, det.png and roc.png to ``out``; returns the rows."""
    from fas.eval.protocols import PUBLISHED
    from fas.eval.report import metrics_json, render_html

    if labels and len(labels) != len(folders):
        raise MetricsInputError(f"{len(labels)} labels for {len(folders)} runs: give one --label per run, or none")
    runs = [load_run(f, labels[i] if labels else None) for i, f in enumerate(folders)]
    protocols = {r.protocol for r in runs}
    published = PUBLISHED.get(protocols.pop()) if len(protocols) == 1 else None
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = group_rows(runs)
    plot_curves(runs, out)
    text = render(rows, runs, published)
    (out / "compare.md").write_text(text)
    (out / "compare.html").write_text(render_html(text, out, "FAS comparison"))
    (out / "compare.json").write_text(metrics_json({"rows": rows, "runs": [str(r.folder) for r in runs],
                                                    "published": published}))
    return {"rows": rows, "published": published}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fas compare", description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="evaluation folders (metrics.json, scores.csv, config.yaml)")
    parser.add_argument("--label", action="append", default=None,
                        help="one per run, in order; runs with the same label are averaged (seeds, folds)")
    parser.add_argument("--out", required=True, help="folder for compare.md/.html/.json, det.png, roc.png")
    args = parser.parse_args(argv)
    try:
        compare(args.runs, args.label, args.out)
    except MetricsInputError as exc:
        raise SystemExit(f"fas compare: {exc}") from None
    print((Path(args.out) / "compare.md").read_text())
    return 0
