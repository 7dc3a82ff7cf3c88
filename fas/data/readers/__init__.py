"""Dataset readers: one function per public dataset layout, each turning a dataset root into manifest rows.

A reader is registered with ``@register("name")`` and has the signature
``reader(root: Path, protocol: str | None) -> list[dict]``; rows follow ``fas.data.manifest.SCHEMA``.
A malformed tree or an unknown file name raises ``ManifestError`` naming the file and what was expected.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pyarrow as pa

from fas.data.manifest import ManifestError, make_manifest

Reader = Callable[[Path, "str | None"], list]
READERS: dict[str, Reader] = {}


def register(name: str):
    def deco(fn: Reader) -> Reader:
        READERS[name] = fn
        return fn

    return deco


def list_readers() -> list[str]:
    _import_all()
    return sorted(READERS)


def read_dataset(name: str, root: str | Path, protocol: str | None = None) -> pa.Table:
    """Read the dataset at ``root`` with the reader registered as ``name`` into a manifest table."""
    _import_all()
    if name not in READERS:
        raise ManifestError(f"unknown dataset {name!r}; known: {sorted(READERS)}")
    root = Path(root)
    if not root.is_dir():
        raise ManifestError(f"dataset root {root} is not a directory")
    rows = READERS[name](root.resolve(), protocol)
    synthetic = (root / "SYNTHETIC.txt").exists()
    return make_manifest(rows, synthetic=synthetic)


def _import_all() -> None:
    import importlib
    import pkgutil

    for mod in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{mod.name}")
