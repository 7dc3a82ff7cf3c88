"""Which frame-cache rows a run trains and validates on: the ``train``/``dev`` splits, or the train/threshold rows
of a named protocol.

The protocol rules (``fas.eval.protocols.split_for_protocol``) run on a small metadata table (ids, domains, splits,
subjects; no images), so training, its source-side validation and evaluation select rows by the same code and a
held-out subject or test domain never reaches training. Streams are then filtered by sample id (``fas.engine.data``).
"""

from __future__ import annotations

import hashlib

import pyarrow as pa
import pyarrow.compute as pc

META_COLUMNS = ["sample_id", "split", "domain", "subject", "label"]
PARTS = {"train": "train", "validation": "threshold"}  # what a protocol calls each part
SPLITS = {"train": "train", "validation": "dev"}  # the split used without a protocol


def selected_meta(cache: str, part: str, protocol: str | None = None, fold: int | None = None,
                  extra: tuple[str, ...] = ()) -> pa.Table:
    """Metadata rows (``META_COLUMNS`` + ``extra``) of the ``train`` or ``validation`` part."""
    import pyarrow.parquet as pq

    from fas.data.cache import read_cache_table, shard_paths

    names = set(pq.read_schema(shard_paths(cache)[0]).names)
    columns = sorted(set(META_COLUMNS) | set(extra) | ({"protocol"} & names))
    meta = read_cache_table(cache, columns=columns)
    if not protocol:
        return meta.filter(pc.equal(meta.column("split"), SPLITS[part]))
    from fas.eval.protocols import split_for_protocol

    return split_for_protocol(meta, protocol, fold=fold)[PARTS[part]]


def selected_ids(cache: str, part: str, protocol: str | None = None, fold: int | None = None, *,
                 real_only: bool = False, fraction: float = 1.0, seed: int = 0) -> list[str]:
    """Sample ids of the part (bona fide only with ``real_only``), or a seeded ``fraction`` of them."""
    meta = selected_meta(cache, part, protocol, fold)
    if real_only:
        meta = meta.filter(pc.equal(meta.column("label"), 1))
    ids = sorted(set(meta.column("sample_id").to_pylist()))
    return sample_fraction(ids, fraction, seed)


def sample_fraction(ids: list[str], fraction: float, seed: int = 0) -> list[str]:
    """A seeded ``fraction`` of ``ids`` (at least one), by a stable hash of seed and id: the same ids on every
    machine, and nested (the 25 % subset lies inside the 50 % one of the same seed), as AG-FAS's real-face ablation
    (Table VII: 25 / 50 / 100 %) needs."""
    if not 0 < fraction <= 1:
        raise ValueError(f"a fraction of the samples must be in (0, 1], got {fraction}")
    if fraction == 1 or not ids:
        return list(ids)
    ranked = sorted(ids, key=lambda i: hashlib.sha1(f"{seed}/{i}".encode()).hexdigest())
    return sorted(ranked[:max(1, round(fraction * len(ranked)))])


def distinct_values(cache: str, column: str, protocol: str | None = None, fold: int | None = None) -> list[str]:
    """Sorted distinct values of ``column`` over the training rows (e.g. the domains a domain head classifies)."""
    meta = selected_meta(cache, "train", protocol, fold, extra=(column,))
    return sorted({str(v) for v in meta.column(column).to_pylist()})


def domain_index(values, domains: list[str]):
    """Indices of ``values`` in ``domains`` (0 for a value training never saw)."""
    import torch

    return torch.tensor([domains.index(str(v)) if str(v) in domains else 0 for v in values])


def selected_images(cache: str, part: str, protocol: str | None = None, fold: int | None = None, *,
                    limit: int, real_only: bool = False, fraction: float = 1.0, seed: int = 0) -> list[bytes]:
    """Up to ``limit`` encoded images of the part, read shard by shard (a driver-side sample, no cluster)."""
    import pyarrow.parquet as pq

    from fas.data.cache import shard_paths

    ids, out = set(selected_ids(cache, part, protocol, fold, real_only=real_only, fraction=fraction, seed=seed)), []
    for path in shard_paths(cache):
        table = pq.read_table(path, columns=["sample_id", "label", "image"])
        keep = pc.is_in(table.column("sample_id"), pa.array(sorted(ids)))
        if real_only:
            keep = pc.and_(keep, pc.equal(table.column("label"), 1))
        out += table.filter(keep).column("image").to_pylist()[:limit - len(out)]
        if len(out) >= limit:
            break
    return out
