"""Which frame-cache rows a training run sees: the ``train`` split, or the train rows of a named protocol.

The protocol rules (``fas.eval.protocols.split_for_protocol``) run on a small metadata table (ids, domains, splits,
subjects; no images), and the image stream is then filtered by sample id, so training and evaluation select
rows by the same code and a source-side held-out subject never reaches training.
"""

from __future__ import annotations

META_COLUMNS = ["sample_id", "split", "domain", "subject", "label"]


def training_rows(cache: str, columns: list[str], protocol: str | None = None, fold: int | None = None):
    """A Ray Dataset of the training rows of ``cache`` with ``columns``."""
    import pyarrow.parquet as pq
    from ray.data.expressions import col

    from fas.data.cache import read_cache, read_cache_table, shard_paths

    dataset = read_cache(cache, columns=sorted(set(columns) | {"split", "sample_id"}))
    if not protocol:
        return dataset.filter(expr=col("split") == "train").select_columns(columns)
    from fas.eval.protocols import split_for_protocol

    names = set(pq.read_schema(shard_paths(cache)[0]).names)
    meta = read_cache_table(cache, columns=META_COLUMNS + (["protocol"] if "protocol" in names else []))
    train_ids = sorted(set(split_for_protocol(meta, protocol, fold=fold)["train"].column("sample_id").to_pylist()))
    return dataset.filter(expr=col("sample_id").is_in(train_ids)).select_columns(columns)


def distinct_values(cache: str, column: str, protocol: str | None = None, fold: int | None = None) -> list[str]:
    """Sorted distinct values of ``column`` over the training rows (e.g. the domains a domain head classifies)."""
    from fas.data.cache import read_cache_table

    meta = read_cache_table(cache, columns=sorted(set(META_COLUMNS) | {column}))
    if protocol:
        from fas.eval.protocols import split_for_protocol

        meta = split_for_protocol(meta, protocol, fold=fold)["train"]
    else:
        import pyarrow.compute as pc

        meta = meta.filter(pc.equal(meta.column("split"), "train"))
    return sorted({str(v) for v in meta.column(column).to_pylist()})
