"""A growing CLASS-8 tree: versions, the frozen held-out set, and ``fas label merge QUEUE --into CLASS8_ROOT``.

A version is the content hash of the tree's manifest (every media file's relative path and sha256), recorded in
``ROOT/.fas/versions.json`` with its parent and the files it added (the reader skips hidden folders, so the
record is not data). The first version freezes the held-out set: every file under the test split(s), with its
sha256 and perceptual hash, in ``ROOT/.fas/heldout.json``. From then on a merge refuses to write into a test
split, refuses a reviewed image that is (nearly) a held-out one, and refuses to run when a held-out file changed:
models are compared on the same images, and no reviewed image leaks into them.

A merge copies each reviewed image (decision a..h; skipped ones are left) into ``ROOT/<split>/<letter>_<name>/``,
keeping its file name (a different file of that name gets the content hash appended), never overwriting, and skips
an image whose bytes are already in the tree.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path

from fas.integrity import sha256_file, storage_errors, write_atomic, write_text
from fas.label.queue import QueueError, item_image, load_queue, read_decisions

RECORD = ".fas"
VERSIONS_FILE = "versions.json"
HELDOUT_FILE = "heldout.json"
HELDOUT_SPLIT = "test"


def tree_manifest(root: Path) -> dict[str, str]:
    """Relative POSIX path -> sha256 of every media file the CLASS-8 reader would read."""
    from fas.data.readers._common import walk_media

    return {p.relative_to(root).as_posix(): sha256_file(p) for p in walk_media(root)}


def version_of(manifest: dict[str, str]) -> str:
    text = "\n".join(f"{digest}  {path}" for path, digest in sorted(manifest.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def is_heldout(relative: str) -> bool:
    """A file under a test split folder (``test/...`` or ``<domain>/test/...``)."""
    from fas.data.readers._common import split_of

    parts = relative.split("/")
    return any(split_of(part) == HELDOUT_SPLIT for part in parts[:2])


def versions(root: Path) -> list[dict]:
    path = Path(root) / RECORD / VERSIONS_FILE
    return json.loads(path.read_text()) if path.is_file() else []


def heldout(root: Path) -> dict:
    path = Path(root) / RECORD / HELDOUT_FILE
    if not path.is_file():
        raise QueueError(f"{root}: no frozen held-out set yet ({RECORD}/{HELDOUT_FILE}); `fas label merge` freezes "
                         "it at the tree's first version")
    return json.loads(path.read_text())


def record_version(root: Path, manifest: dict[str, str], added: list[str], source: str) -> dict:
    history = versions(root)
    entry = {"version": version_of(manifest), "parent": history[-1]["version"] if history else None,
             "time": time.strftime("%F %T"), "files": len(manifest), "added": sorted(added), "source": source}
    (Path(root) / RECORD).mkdir(exist_ok=True)
    write_text(Path(root) / RECORD / VERSIONS_FILE, json.dumps([*history, entry], indent=1))
    return entry


def freeze(root: Path) -> dict:
    """The first version of the tree and its held-out set; a no-op when the tree has a version already."""
    from fas.data.faces import decode_image
    from fas.data.readers._common import IMAGE_EXTS
    from fas.label.suggest import image_hashes

    root = Path(root)
    if versions(root):
        return versions(root)[0]
    manifest = tree_manifest(root)
    files = {rel: digest for rel, digest in manifest.items() if is_heldout(rel)}
    if not files:
        raise QueueError(f"{root}: no test split to freeze as the held-out set; lay the tree out as "
                         "ROOT/<train|dev|test>/<a..h>[_name]/ with the held-out images under test/")
    phashes = {rel: image_hashes(decode_image((root / rel).read_bytes()))[1] for rel in files
               if (root / rel).suffix.lower() in IMAGE_EXTS}
    entry = record_version(root, manifest, sorted(manifest), "first version")
    write_text(root / RECORD / HELDOUT_FILE, json.dumps({"version": entry["version"], "sha256": files,
                                                        "phash": phashes}, indent=1))
    return entry


def check_heldout(root: Path) -> dict:
    """The frozen held-out set, after checking that every file of it is still there with the same bytes and that
    no file was added to a test split."""
    frozen, manifest = heldout(root), tree_manifest(Path(root))
    now = {rel: digest for rel, digest in manifest.items() if is_heldout(rel)}
    changed = sorted(rel for rel in frozen["sha256"] if now.get(rel) != frozen["sha256"][rel])
    added = sorted(set(now) - set(frozen["sha256"]))
    if changed or added:
        raise QueueError(f"{root}: the held-out set frozen at version {frozen['version']} was changed "
                         f"({len(changed)} files changed or removed, e.g. {(changed or ['-'])[0]}; {len(added)} "
                         f"added, e.g. {(added or ['-'])[0]}); restore it: comparisons need the same images")
    return frozen


def split_folder(root: Path, split: str, domain: str | None) -> Path:
    """``ROOT/<split>`` of a one-domain tree, ``ROOT/<domain>/<split>`` of a multi-domain one (``--domain``)."""
    from fas.data.readers.class8 import class8_domains

    domains = dict(class8_domains(root))
    if domain is None and "class8" in domains and domains["class8"] == root:
        return root / split
    if domain not in domains:
        raise QueueError(f"{root} is a tree of domains {sorted(domains)}: name the one the reviewed images belong "
                         f"to with --domain" if domain is None else f"--domain {domain!r}: not a domain of {root} "
                         f"(domains: {sorted(domains)})")
    return domains[domain] / split


def category_folder(split_dir: Path, letter: str, name: str) -> Path:
    """The existing folder of ``letter`` (``a``, ``a_normal_facial_photo``, ...) or a new ``<letter>_<name>``."""
    for folder in sorted(split_dir.glob(f"{letter}*")) if split_dir.is_dir() else []:
        if folder.is_dir() and (folder.name == letter or folder.name.startswith(f"{letter}_")):
            return folder
    return split_dir / f"{letter}_{name}"


def target_name(folder: Path, image: Path, digest: str, item: dict) -> Path:
    """The copy's path: the source name (a video frame: ``<video>-f<frame>``), with the content hash appended
    when another file already has that name."""
    stem = image.stem if item.get("frame") is None else f"{Path(item['source']).stem}-f{item['frame']:05d}"
    target = folder / f"{stem}{image.suffix.lower()}"
    return target if not target.exists() else folder / f"{stem}-{digest[:8]}{image.suffix.lower()}"


def near_heldout(item: dict, frozen: dict, near: int) -> str | None:
    import imagehash

    mine = imagehash.hex_to_hash(item["phash"])
    for rel, value in frozen["phash"].items():
        if mine - imagehash.hex_to_hash(value) <= near:
            return rel
    return None


def merge(queue_folder: str | Path, root: str | Path, split: str = "train", domain: str | None = None,
          near: int | None = None) -> dict:
    """Copy the reviewed items into the tree; returns the new version's record and what was left out, and why."""
    from fas.label.suggest import NEAR_DISTANCE

    root, near = Path(root), NEAR_DISTANCE if near is None else near
    if split == HELDOUT_SPLIT:
        raise QueueError(f"--split {split}: the held-out set is frozen at the first version; merge into train or "
                         "dev")
    freeze(root)
    frozen, queue = check_heldout(root), load_queue(queue_folder)
    decisions, manifest = read_decisions(queue_folder), tree_manifest(root)
    known, added, left = set(manifest.values()), [], {"skipped": 0, "undecided": 0, "in_tree": 0, "heldout": 0}
    split_dir = split_folder(root, split, domain)
    for item in queue["items"]:
        decided = decisions.get(item["id"])
        if decided is None or decided["category"] is None:
            left["undecided" if decided is None else "skipped"] += 1
            continue
        image = item_image(queue_folder, item)
        digest = sha256_file(image)
        if digest in known:
            left["in_tree"] += 1
            continue
        if near_heldout(item, frozen, near):
            left["heldout"] += 1
            continue
        letter = decided["category"]
        folder = category_folder(split_dir, letter, queue["categories"][letter])
        target = target_name(folder, image, digest, item)
        with storage_errors(target):
            folder.mkdir(parents=True, exist_ok=True)
        write_atomic(target, lambda tmp, src=image: shutil.copyfile(src, tmp))
        known.add(digest)
        added.append(target.relative_to(root).as_posix())
    entry = record_version(root, tree_manifest(root), added, str(Path(queue_folder).resolve()))
    return {**entry, "added": len(added), "left_out": left}
