"""A labelling queue: the suggestions ``fas label suggest`` wrote, and the reviewer's decisions.

``QUEUE/queue.json`` holds the items, most uncertain first, each with its image (the source file, or a sampled
video frame saved under ``QUEUE/frames/``), CLIPC8's category and 8 probabilities, the face box, the uncertainty
and any duplicate found. Each decision is its own small file ``QUEUE/decisions/<item id>.json``, written whole or
not at all (a hidden temporary name, then a rename): a closed browser or a crash loses at most the decision being
made, and undo is the removal of one file. A decision names a category letter, or none (skipped).
"""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

from fas.eval.categories import CLIPC8_CATEGORIES, letters
from fas.integrity import storage_errors, write_text

QUEUE_FILE = "queue.json"
DECISIONS = "decisions"
FRAMES = "frames"
LETTERS = tuple(letters(len(CLIPC8_CATEGORIES)))
SKIP = "skip"  # the CSV's word for a skipped item
CSV_COLUMNS = ("id", "image", "source", "frame", "suggested", "confidence", "margin", "duplicate", "decision")


class QueueError(ValueError):
    """A queue folder or a decision that cannot be used, with what to do about it."""


def load_queue(folder: str | Path) -> dict:
    path = Path(folder) / QUEUE_FILE
    if not path.is_file():
        raise QueueError(f"{folder}: no {QUEUE_FILE}; make a queue with `fas label suggest MODEL_DIR IMAGES_DIR "
                         f"--out {folder}`")
    return json.loads(path.read_text())


def write_queue(folder: str | Path, queue: dict) -> Path:
    Path(folder).mkdir(parents=True, exist_ok=True)
    return write_text(Path(folder) / QUEUE_FILE, json.dumps(queue, indent=1))


def item_image(folder: str | Path, item: dict) -> Path:
    """The file a reviewer looks at and a merge copies: a saved frame (relative to the queue) or the source."""
    return Path(folder) / item["image"] if item.get("frame") is not None else Path(item["source"])


def _decision_path(folder: Path, item_id: str) -> Path:
    if not item_id or "/" in item_id or item_id.startswith("."):
        raise QueueError(f"item id {item_id!r}: not an id of this queue")
    return Path(folder) / DECISIONS / f"{item_id}.json"


def write_decision(folder: str | Path, item_id: str, category: str | None, by: str = "page") -> dict:
    """Record ``category`` (a letter a..h, or None: skipped) for one item, replacing an earlier decision."""
    folder = Path(folder)
    ids = {item["id"] for item in load_queue(folder)["items"]}
    if item_id not in ids:
        raise QueueError(f"item {item_id!r} is not in the queue {folder}")
    if category is not None and category not in LETTERS:
        raise QueueError(f"category {category!r}: expected one of {', '.join(LETTERS)} (or skip)")
    decision = {"id": item_id, "category": category, "by": by, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    path = _decision_path(folder, item_id)
    with storage_errors(path):
        path.parent.mkdir(exist_ok=True)
    write_text(path, json.dumps(decision))
    return decision


def remove_decision(folder: str | Path, item_id: str) -> bool:
    """Undo: forget the decision on one item; False when it had none."""
    path = _decision_path(Path(folder), item_id)
    if not path.is_file():
        return False
    with storage_errors(path):
        path.unlink()
    return True


def read_decisions(folder: str | Path) -> dict[str, dict]:
    """Item id -> its decision. A file that is not a whole decision (hand-edited) is named in the error."""
    out = {}
    for path in sorted((Path(folder) / DECISIONS).glob("*.json")):
        try:
            decision = json.loads(path.read_text())
            out[decision["id"]] = decision
        except (ValueError, KeyError) as exc:
            raise QueueError(f"{path}: not a decision ({exc}); delete it to decide that item again") from exc
    return out


def export_csv(folder: str | Path, path: str | Path) -> int:
    """The queue as a spreadsheet: one row per item in queue order, ``decision`` filled where decided (a letter,
    or ``skip``), empty where not. Returns the number of rows."""
    queue, decisions = load_queue(folder), read_decisions(folder)
    rows = []
    for item in queue["items"]:
        decided = decisions.get(item["id"])
        rows.append({"id": item["id"], "image": str(item_image(folder, item)), "source": item["source"],
                     "frame": "" if item.get("frame") is None else item["frame"], "suggested": item["category"],
                     "confidence": f"{max(item['probs'].values()):.4f}", "margin": f"{item['margin']:.4f}",
                     "duplicate": (item.get("duplicate") or {}).get("kind", ""),
                     "decision": "" if decided is None else decided["category"] or SKIP})
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return len(rows)


def import_csv(folder: str | Path, path: str | Path) -> dict[str, int]:
    """Decisions from a spreadsheet exported by ``export_csv``: a letter or ``skip`` records it, an empty cell
    leaves the item as it is, and so does the decision it already has. Every row is checked before any is written,
    so a bad row changes nothing."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if rows and not {"id", "decision"} <= set(rows[0]):
        raise QueueError(f"{path}: needs the columns id and decision (as `fas label review QUEUE --export-csv` "
                         f"writes them)")
    ids, recorded = {item["id"] for item in load_queue(folder)["items"]}, read_decisions(folder)
    wanted = []
    for line, row in enumerate(rows, start=2):
        value = (row.get("decision") or "").strip().lower()
        if not value:
            continue
        if row["id"] not in ids:
            raise QueueError(f"{path}:{line}: item {row['id']!r} is not in the queue {folder}")
        if value not in LETTERS and value != SKIP:
            raise QueueError(f"{path}:{line}: decision {row['decision']!r}: expected a letter a..h or {SKIP}")
        category = None if value == SKIP else value
        if row["id"] not in recorded or recorded[row["id"]]["category"] != category:  # unedited rows stay as made
            wanted.append((row["id"], category))
    for item_id, category in wanted:
        write_decision(folder, item_id, category, by="csv")
    return {"rows": len(rows), "decided": len(wanted)}
