"""``fas label suggest MODEL_DIR IMAGES_DIR --out QUEUE``: CLIPC8 pre-labels unlabelled captures (CLIPC8 paper,
section 5.11: a benchmark model pre-classifies the large unlabelled set to cut the manual labelling).

Every image, and every sampled frame of a video, gets the model's category, its 8 probabilities, the face box and
its uncertainty: the margin between the top two probabilities and the entropy. The queue is ordered most uncertain
first (smallest margin), so a reviewer's first decisions are the ones the model needs most (uncertainty sampling).
Each image is hashed twice, exactly (sha256 of the pixels as saved) and perceptually (``imagehash.phash``, 64 bits),
and compared with the images already in the dataset (``--dataset CLASS8_ROOT``) and with the earlier items of the
queue: a duplicate is flagged, so that it is not labelled twice.

The scoring is ``fas predict``'s (``LocalPredict``: the model folder's face stage, crop and predictor). It runs in
this process, or, with ``--ray`` / ``--address``, as a Ray Data pipeline (an actor pool holding the model) that
streams the files over a cluster's CPUs; the frames are saved into the queue folder, which every node must see.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import math
import time
from pathlib import Path

import numpy as np

from fas.eval.categories import letters
from fas.label.queue import FRAMES, write_queue

NEAR_DISTANCE = 6  # phash bits (of 64) within which two images are the same picture (re-encoded, resized)


@dataclasses.dataclass
class SuggestConfig:
    """``fas label suggest`` options."""

    model: str = ""  # a CLIPC8 model folder
    images: list[str] = dataclasses.field(default_factory=list)  # folders, files or globs of unlabelled captures
    out: str = ""  # the queue folder
    dataset: str | None = None  # the CLASS-8 tree the queue will grow: its images are the known ones
    frames: int = 10  # frames sampled per video, uniformly (as ``fas prepare``)
    near_distance: int = NEAR_DISTANCE
    batch_files: int = 8  # files per Ray Data batch
    ray: bool = False  # stream through Ray Data (an embedded cluster unless --address / RAY_ADDRESS)
    address: str | None = None
    workers: int = 1  # model actors in the pool (Ray only)
    device: str = "cpu"


def image_hashes(rgb: np.ndarray) -> tuple[str, str]:
    """(sha256 of the RGB pixels, perceptual hash as hex): the pixels, not the file, so that a re-saved copy of
    the same picture is an exact duplicate."""
    import imagehash
    from PIL import Image

    digest = hashlib.sha256(np.ascontiguousarray(rgb).tobytes() + str(rgb.shape).encode()).hexdigest()
    return digest, str(imagehash.phash(Image.fromarray(rgb)))


def uncertainty(probs: np.ndarray) -> tuple[float, float]:
    """(margin between the two largest probabilities, entropy in nats)."""
    top = np.sort(probs)[::-1]
    entropy = -float(sum(p * math.log(p) for p in probs if p > 0))
    return float(top[0] - top[1]), entropy


class Suggester:
    """The model of one queue, loaded once (in this process or in each Ray actor)."""

    def __init__(self, cfg: SuggestConfig):
        from fas.predict import LocalPredict, PredictConfig

        self.cfg = cfg
        # a suggestion is the top category, not a liveness decision: no evaluated threshold is needed (0.5 is
        # only the placeholder LocalPredict's decision column wants; items carry no decision)
        self.local = LocalPredict(PredictConfig(model=cfg.model, frames=cfg.frames, device=cfg.device, threshold=0.5))
        if not self.local.categories:
            raise ValueError(f"{cfg.model} is a {self.local.meta['method']} model, which names no categories: "
                             "suggestions need a CLIPC8 model folder (8 categories), e.g. one trained by "
                             "`fas train clipc8`")
        self.letters = letters(len(self.local.categories))

    def __call__(self, batch: dict) -> dict:
        """Ray Data's batch interface: a column of paths in, a column of items out (as JSON text: items differ in
        their keys, which Arrow's struct columns would not keep)."""
        return {"item": [json.dumps(item) for path in batch["path"] for item in self.file_items(Path(path))]}

    def file_items(self, path: Path) -> list[dict]:
        """An item per image or sampled frame of one file; one item with ``error`` when it cannot be read."""
        try:
            level, frames = self.local.frames(path)
        except (ValueError, OSError) as exc:
            return [{"source": str(path), "error": str(exc) or type(exc).__name__}]
        crops, faces = self.local.crops([rgb for _, rgb in frames])
        out = self.local.model.predictor.predict(*self.local.model.inputs(crops, faces))
        return [self.item(path, index, rgb, out["probs"][i], faces[i]) for i, (index, rgb) in enumerate(frames)]

    def item(self, path: Path, frame: int | None, rgb: np.ndarray, probs: np.ndarray, face: dict) -> dict:
        sha, phash = image_hashes(rgb)
        image = str(path) if frame is None else self.save_frame(path, frame, rgb)
        margin, entropy = uncertainty(probs)
        top = int(np.argmax(probs))
        return {"source": str(path), "frame": frame, "image": image, "category": self.letters[top],
                "category_name": self.local.categories[top],
                "probs": {letter: round(float(p), 6) for letter, p in zip(self.letters, probs)},
                "margin": margin, "entropy": entropy,
                "box": None if face["box"] is None else [int(v) for v in face["box"]],
                "num_faces": face["num_faces"], "warnings": face.get("warnings", []), "sha256": sha, "phash": phash}

    def save_frame(self, path: Path, frame: int, rgb: np.ndarray) -> str:
        """A sampled video frame as a PNG in the queue (lossless: the reviewed and merged picture is the scored
        one); the name is unique per source file and frame."""
        from PIL import Image

        from fas.integrity import write_atomic

        key = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:10]
        relative = f"{FRAMES}/{path.stem}-{key}-f{frame:05d}.png"
        target = Path(self.cfg.out) / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        Image.fromarray(rgb).save(buffer, format="PNG")
        write_atomic(target, lambda tmp: tmp.write_bytes(buffer.getvalue()))
        return relative


def known_hashes(root: str | None) -> list[tuple[str, str, str]]:
    """(sha256, phash, path) of every image already in the dataset tree (unreadable files are left out)."""
    if not root:
        return []
    from fas.data.readers._common import IMAGE_EXTS, walk_media
    from fas.data.faces import decode_image

    known = []
    for path in walk_media(Path(root)):
        if path.suffix.lower() in IMAGE_EXTS:
            try:
                known.append((*image_hashes(decode_image(path.read_bytes())), str(path)))
            except (ValueError, OSError):
                continue
    return known


def flag_duplicates(items: list[dict], known: list[tuple[str, str, str]], near: int) -> None:
    """``duplicate`` on each item equal (exact) or close (phash within ``near`` bits) to a dataset image or to an
    earlier item of the queue; None otherwise."""
    import imagehash

    seen = [(sha, imagehash.hex_to_hash(ph), path) for sha, ph, path in known]
    for item in items:
        mine, found = imagehash.hex_to_hash(item["phash"]), None
        for sha, ph, path in seen:
            distance = mine - ph
            if sha == item["sha256"]:
                found = {"kind": "exact", "of": path, "distance": 0}
                break
            if distance <= near and (found is None or distance < found["distance"]):
                found = {"kind": "near", "of": path, "distance": int(distance)}
        item["duplicate"] = found
        seen.append((item["sha256"], mine, item["image"] if item["frame"] is None else
                     f"{item['source']}#frame{item['frame']}"))


def uncertain_first(items: list[dict]) -> list[dict]:
    """Smallest margin first, then largest entropy, then path and frame: a stable, reproducible order."""
    return sorted(items, key=lambda i: (round(i["margin"], 6), -round(i["entropy"], 6), i["source"],
                                        -1 if i["frame"] is None else i["frame"]))


def score_all(cfg: SuggestConfig, paths: list[Path], suggester: Suggester) -> list[dict]:
    """Items of every file, in this process (``suggester``) or through Ray Data's actor pool (a ``Suggester`` per
    actor; the driver's has checked the model folder before any actor starts)."""
    if not (cfg.ray or cfg.address):
        return [item for path in paths for item in suggester.file_items(path)]
    import ray.data

    from fas.ray_utils import actor_pool, init_ray

    init_ray(cfg.address)
    files = ray.data.from_items([{"path": str(p)} for p in paths])
    items = files.map_batches(Suggester, fn_constructor_args=(cfg,), batch_size=cfg.batch_files,
                              compute=actor_pool(cfg.workers), num_cpus=1)
    return [json.loads(row["item"]) for row in items.iter_rows()]


def run_suggest(cfg: SuggestConfig) -> dict:
    """Write ``OUT/queue.json``; returns counts (items, files, unreadable, duplicates)."""
    from fas.predict import expand_paths

    if not cfg.model or not cfg.images or not cfg.out:
        raise ValueError("fas label suggest MODEL_DIR IMAGES_DIR... --out QUEUE: all three are needed")
    paths = expand_paths(cfg.images)
    suggester = Suggester(cfg)  # a wrong model folder fails here, before anything is read
    scored = score_all(cfg, paths, suggester)
    scored.sort(key=lambda i: (i["source"], -1 if i.get("frame") is None else i["frame"]))  # Ray's order varies
    items = [i for i in scored if "error" not in i]
    errors = [i for i in scored if "error" in i]
    flag_duplicates(items, known_hashes(cfg.dataset), cfg.near_distance)
    items = uncertain_first(items)
    for number, item in enumerate(items):
        item["id"] = f"{number:06d}"
    queue = {"model": str(Path(cfg.model).resolve()), "dataset": cfg.dataset, "created": time.strftime("%F %T"),
             "categories": dict(zip(suggester.letters, suggester.local.categories)), "items": items,
             "unreadable": errors}
    write_queue(cfg.out, queue)
    duplicates = sum(1 for i in items if i["duplicate"])
    return {"queue": str(cfg.out), "files": len(paths), "items": len(items), "unreadable": len(errors),
            "duplicates": duplicates, "exact_duplicates": sum(1 for i in items if (i["duplicate"] or {}).get(
                "kind") == "exact")}
