"""Model folders that prove they are whole, and writes that never leave half a file under its final name.

A folder written by fas (a model folder: ``model.pt`` + ``model_config.json``; a generator folder) gets a
``checksums.json``: the sha256 of each file, recorded at write time and copied when the model is published. Every
load (``fas predict``, evaluation, Serve start-up) checks them first, so a truncated or tampered file is refused with
an error naming it instead of scoring with changed weights or thresholds. Weights are read with
``torch.load(weights_only=True)`` only (no pickled code runs).

Writes go to a hidden temporary name beside the target and are renamed over it when complete (``os.replace`` is
atomic within a file system); a full disk or a read-only folder removes the temporary file and raises
``StorageError`` naming the path, and whatever was there before stays as it was.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import warnings
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from pathlib import Path

CHECKSUMS_FILE = "checksums.json"
WRITE_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG, errno.EIO)
FULL_BYTES = 64 * 1024  # less free space than this under a failed write: the disk is full
_DIGESTS: dict[tuple, str] = {}  # (path, inode, size, mtime) -> sha256: a folder loaded again is not re-read


class IntegrityError(ValueError):
    """A file of a model folder differs from what was recorded when the folder was written, or cannot be read."""


class StorageError(OSError, ValueError):
    """A write failed (disk full, read-only, no permission); the message names the path and what to do. Also a
    ``ValueError``, so the CLI reports it as a user error (one line, no traceback)."""


def sha256_file(path: str | Path) -> str:
    path = Path(path)
    st = path.stat()
    key = (str(path.resolve()), st.st_ino, st.st_size, st.st_mtime_ns)
    if key not in _DIGESTS:
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        _DIGESTS[key] = digest.hexdigest()
    return _DIGESTS[key]


def write_checksums(folder: str | Path, names: Iterable[str]) -> dict[str, str]:
    """Record the sha256 of ``names`` (files in ``folder``) in its ``checksums.json``; written last, atomically."""
    folder = Path(folder)
    files = {name: sha256_file(folder / name) for name in names}
    write_text(folder / CHECKSUMS_FILE, json.dumps({"algorithm": "sha256", "files": files}, indent=2))
    return files


def recorded_checksums(folder: str | Path) -> dict[str, str] | None:
    """The digests in ``folder/checksums.json``; None when the folder has none (written before checksums)."""
    path = Path(folder) / CHECKSUMS_FILE
    if not path.is_file():
        return None
    try:
        files = json.loads(path.read_text())["files"]
    except (ValueError, KeyError, TypeError) as exc:
        raise IntegrityError(f"{path} is unreadable ({type(exc).__name__}: {exc}); {REPUBLISH}") from None
    if not isinstance(files, dict):
        raise IntegrityError(f"{path} has no 'files' mapping; {REPUBLISH}")
    return files


REPUBLISH = ("the folder was changed after it was written: publish it again from its training checkpoint "
             "(fas quickstart, or copy a checkpoint folder of `jobs/train.py`), or restore it from a backup")


def verify_folder(folder: str | Path, required: Iterable[str] = ()) -> bool:
    """Check every file ``checksums.json`` lists (``required``: files it must list). False, with a warning naming
    the folder, when it has no ``checksums.json``; ``IntegrityError`` naming the file on any mismatch."""
    folder = Path(folder)
    files = recorded_checksums(folder)
    if files is None:
        warnings.warn(f"{folder.resolve()} has no {CHECKSUMS_FILE} (written before fas recorded checksums): its files are "
                      "loaded unchecked; publish it again to protect it", stacklevel=2)
        return False
    for name in [*required, *files]:
        path = folder / name
        if name not in files:
            raise IntegrityError(f"{path}: no checksum recorded for it in {folder / CHECKSUMS_FILE}; {REPUBLISH}")
        if not path.is_file():
            raise IntegrityError(f"{path} is missing (listed in {folder / CHECKSUMS_FILE}); {REPUBLISH}")
        found = sha256_file(path)
        if found != files[name]:
            raise IntegrityError(f"{path} does not match its recorded checksum: expected sha256 {files[name]}, "
                                 f"found {found}; {REPUBLISH}")
    return True


def load_state(path: str | Path) -> dict:
    """A state dict saved by ``torch.save``, read with ``weights_only=True``; a truncated or foreign file raises
    ``IntegrityError`` naming it."""
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as exc:  # noqa: BLE001 - torch raises RuntimeError/UnpicklingError/EOFError/... on bad bytes
        raise IntegrityError(f"{path} cannot be read as weights ({type(exc).__name__}: {exc}); it is truncated or "
                             f"not a torch state dict; {REPUBLISH}") from None


# ---------------------------------------------------------------- writes that are whole or absent
def storage_error(path: str | Path, exc: OSError) -> StorageError:
    """``exc`` (raised while writing ``path``) as an error that names the path and what to do about it."""
    reason = os.strerror(exc.errno) if exc.errno else str(exc)
    hint = {errno.ENOSPC: "free space there or write to a larger disk",
            errno.EDQUOT: "free space there or raise the quota",
            errno.EROFS: "the file system is read-only: write to a writable folder",
            errno.EACCES: "no permission: write to a folder you may write to",
            errno.EPERM: "no permission: write to a folder you may write to"}.get(exc.errno, "check the disk and retry")
    error = StorageError(exc.errno or errno.EIO, f"cannot write {path}: {reason}; {hint}")
    error.path = str(path)
    return error


def _os_error(exc: BaseException, path: Path) -> OSError | None:
    """The OS error behind a failed write of ``path``: itself or its cause, an errno in its text (pyarrow), or a
    full file system under ``path`` (torch's zip writer to a file name reports only "unexpected pos")."""
    for e in (exc, exc.__cause__, exc.__context__):
        if isinstance(e, OSError) and e.errno in WRITE_ERRORS:
            return e
    text = str(exc)
    for code in WRITE_ERRORS:
        if os.strerror(code) in text or f"errno {code}]" in text.lower():
            return OSError(code, os.strerror(code))
    existing = next((p for p in (path, *path.parents) if p.exists()), None)
    if existing is not None and shutil.disk_usage(existing).free < FULL_BYTES:
        return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    return None  # not the storage's fault (a missing source file, a bug): raised as it is


@contextmanager
def storage_errors(path: str | Path):
    """Write failures raised inside (disk full, read-only, no permission; also torch/pyarrow errors that wrap one)
    become ``StorageError`` naming ``path``; other errors pass through unchanged."""
    try:
        yield
    except StorageError:
        raise
    except Exception as exc:  # noqa: BLE001 - only those with an OS error behind them are translated
        cause = _os_error(exc, Path(path))
        if cause is None:
            raise
        raise storage_error(path, cause) from exc


def write_atomic(path: str | Path, write: Callable[[Path], object]) -> Path:
    """``write(tmp)`` to a hidden name beside ``path``, then rename it to ``path``: a reader sees the old file or
    the whole new one. On failure the temporary file is removed and ``StorageError`` names ``path``."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with storage_errors(path):
            write(tmp)
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink(missing_ok=True)
    return path


def write_text(path: str | Path, text: str) -> Path:
    return write_atomic(path, lambda tmp: tmp.write_text(text))


def save_state(path: str | Path, state: dict) -> Path:
    """fp32 CPU copies of ``state`` saved with ``torch.save``, atomically."""
    import torch

    def save(tmp: Path) -> None:
        with open(tmp, "wb") as f:  # through a Python file, a full disk surfaces as OSError(ENOSPC)
            torch.save(state, f)

    state = {k: v.detach().float().cpu() for k, v in state.items()}
    return write_atomic(path, save)
