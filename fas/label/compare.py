"""``fas label compare PREVIOUS NEW --dataset CLASS8_ROOT``: did growing the dataset help, per category?

Both models score the frozen held-out set of the tree (``fas.label.dataset``: the test split as it was at the
first version, checked unchanged). Per category the detection rate U of CLIPC8's Tables 4/8 (a real image
predicted real; an attack predicted as any attack category) of each model, their difference, and its 95 % interval
by a paired bootstrap over the held-out images of that category (both models scored on the same resampled images).
A change is called ``better`` or ``worse`` only when the interval excludes 0.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from fas.eval.categories import CLIPC8_CATEGORIES, detected, letters
from fas.label.dataset import check_heldout

RESAMPLES = 1000


def heldout_images(root: Path) -> tuple[list[Path], np.ndarray]:
    """The frozen held-out files and their true category indices (0 = a, real), through the CLASS-8 reader."""
    from fas.data.readers import read_dataset

    root = Path(root)
    frozen = set(check_heldout(root)["sha256"])
    table = read_dataset("class8", root)
    rows = [(Path(p), c) for p, c in zip(table["path"].to_pylist(), table["category"].to_pylist())
            if Path(p).resolve().relative_to(root.resolve()).as_posix() in frozen]
    order = letters(len(CLIPC8_CATEGORIES))
    return [p for p, _ in rows], np.array([order.index(c) for _, c in rows])


def predicted_categories(model: str, paths: list[Path]) -> np.ndarray:
    """Each file's top category (a video: of its frames' mean probabilities)."""
    from fas.label.suggest import SuggestConfig, Suggester

    import tempfile

    out, frames = [], tempfile.TemporaryDirectory(prefix="fas_compare_")  # a video's sampled frames, dropped after
    suggester = Suggester(SuggestConfig(model=model, out=frames.name))
    for path in paths:
        items = suggester.file_items(path)
        if "error" in items[0]:
            raise ValueError(f"held-out file {path} cannot be read: {items[0]['error']}")
        probs = np.mean([[item["probs"][k] for k in suggester.letters] for item in items], axis=0)
        out.append(int(np.argmax(probs)))
    frames.cleanup()
    return np.array(out)


def paired_interval(hit_old: np.ndarray, hit_new: np.ndarray, rng: np.random.Generator,
                    resamples: int = RESAMPLES) -> tuple[float, float]:
    """95 % percentile interval of mean(new) - mean(old) over images resampled with replacement."""
    picks = rng.integers(0, len(hit_old), size=(resamples, len(hit_old)))
    diffs = hit_new[picks].mean(axis=1) - hit_old[picks].mean(axis=1)
    return float(np.percentile(diffs, 2.5)), float(np.percentile(diffs, 97.5))


def compare_rows(true: np.ndarray, old: np.ndarray, new: np.ndarray, names: list[str], seed: int = 0) -> list[dict]:
    """One row per category with held-out images: n, U of each model, the difference, its interval, the verdict."""
    rng, rows, hits_old, hits_new = np.random.default_rng(seed), [], detected(true, old, 0), detected(true, new, 0)
    for index, (letter, name) in enumerate(zip(letters(len(names)), names)):
        mask = true == index
        if not mask.any():
            continue
        hit_old, hit_new = hits_old[mask], hits_new[mask]
        low, high = paired_interval(hit_old.astype(float), hit_new.astype(float), rng)
        verdict = "better" if low > 0 else "worse" if high < 0 else "within the interval"
        rows.append({"category": letter, "name": name, "n": int(mask.sum()),
                     "previous": float(hit_old.mean()), "new": float(hit_new.mean()),
                     "change": float(hit_new.mean() - hit_old.mean()), "interval": [low, high], "verdict": verdict})
    return rows


def model_name(folder: str) -> str:
    """``run/checkpoint_epoch_000009`` for a checkpoint (its run names it), the folder's name otherwise."""
    path = Path(folder)
    return f"{path.parent.name}/{path.name}" if path.name.startswith("checkpoint_") else path.name


def compare_markdown(result: dict) -> str:
    lines = [f"# {model_name(result['new'])} against {model_name(result['previous'])} on the frozen held-out set",
             "", f"Held-out set of {result['dataset']} frozen at version {result['heldout_version']} "
             f"({result['images']} images). U: detection rate (CLIPC8 Tables 4/8); interval: 95 % paired bootstrap "
             f"over the images ({RESAMPLES} resamples).", "",
             "| category | n | U previous | U new | change | 95 % interval | verdict |", "|---|---|---|---|---|---|---|"]
    for r in result["categories"]:
        lines.append(f"| {r['category']} {r['name']} | {r['n']} | {100 * r['previous']:.1f} % | {100 * r['new']:.1f} % "
                     f"| {100 * r['change']:+.1f} | [{100 * r['interval'][0]:+.1f}, {100 * r['interval'][1]:+.1f}] | "
                     f"{r['verdict']} |")
    return "\n".join(lines) + "\n"


def compare_models(previous: str, new: str, root: str, out: str | None = None, seed: int = 0) -> dict:
    """Score both models on the held-out set; write ``OUT/compare.json`` and ``OUT/compare.md`` when ``out``."""
    from fas.label.dataset import heldout
    from fas.methods import read_model_meta

    paths, true = heldout_images(Path(root))
    names = list(read_model_meta(new)["categories"])
    old_pred, new_pred = predicted_categories(previous, paths), predicted_categories(new, paths)
    result = {"previous": str(previous), "new": str(new), "dataset": str(root), "images": len(paths),
              "heldout_version": heldout(Path(root))["version"],
              "categories": compare_rows(true, old_pred, new_pred, names, seed)}
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / "compare.json").write_text(json.dumps(result, indent=2))
        (Path(out) / "compare.md").write_text(compare_markdown(result))
    return result
