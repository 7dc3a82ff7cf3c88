"""The Ray Datasets a run reads, built from what its method needs (``DataNeeds``) and the rows its protocol
selects (``fas.data.selection``): ``train`` (split across workers), the method's extra streams and ``val``
(unsplit: every worker sees them whole). Selections whose columns fit ``engine.in_memory_mb`` are read once into
Ray's object store: a pass over them then costs milliseconds instead of a re-read of the shards."""

from __future__ import annotations

from fas.methods.base import DataNeeds


def selected_rows(cache: str, part: str, columns, protocol: str | None = None, fold: int | None = None,
                  fraction: float = 1.0, seed: int = 0, real_only: bool = False):
    """A Ray Dataset of the ``train`` or ``validation`` rows of ``cache`` with ``columns`` (a seeded ``fraction``
    of their samples when below 1; bona fide only with ``real_only``)."""
    from ray.data.expressions import col

    from fas.data.cache import read_cache
    from fas.data.selection import SPLITS, selected_ids

    columns = list(columns)
    dataset = read_cache(cache, columns=sorted(set(columns) | {"split", "sample_id", "label"}))
    if real_only:  # the generator never sees an attack
        dataset = dataset.filter(expr=col("label") == 1)
    if not protocol and fraction >= 1:
        return dataset.filter(expr=col("split") == SPLITS[part]).select_columns(columns)
    ids = selected_ids(cache, part, protocol, fold, real_only=real_only, fraction=fraction, seed=seed)
    return dataset.filter(expr=col("sample_id").is_in(ids)).select_columns(columns)


def column_bytes(cache: str, columns) -> int:
    """Uncompressed bytes of ``columns`` over every shard of ``cache``, read from the Parquet footers alone."""
    import pyarrow.parquet as pq

    from fas.data.cache import shard_paths

    wanted, total = set(columns), 0
    for path in shard_paths(cache):
        meta = pq.read_metadata(path)
        for group in range(meta.num_row_groups):
            chunks = meta.row_group(group)
            total += sum(chunks.column(i).total_uncompressed_size for i in range(chunks.num_columns)
                         if chunks.column(i).path_in_schema.split(".")[0] in wanted)
    return total


def held(dataset, cache: str, columns, budget: int):
    """``dataset`` read once into the object store when the cache's ``columns`` fit ``budget`` bytes; else as is."""
    if budget and column_bytes(cache, columns) <= budget:
        return dataset.materialize()
    return dataset


def _not_null(dataset, columns):
    from ray.data.expressions import col

    for column in columns:
        dataset = dataset.filter(expr=col(column).is_not_null())
    return dataset


STREAM_SHUFFLE_BATCHES = 8  # each worker's shuffle buffer, in batches, when the training rows stream


def train_order(cfg, needs: DataNeeds) -> tuple[str, int]:
    """How the training rows are reordered each epoch: ``("global", 0)``, a full shuffle, when the method asks
    for one and the rows are held in memory (cheap there); else ``("blocks", n)``: a random block order plus
    each worker's local shuffle buffer of ``n`` batches (a global shuffle of streaming rows is an all-to-all
    exchange of the whole selection every epoch)."""
    if needs.order == "shuffle":
        if fits_in_memory(cfg, needs):
            return "global", 0
        return "blocks", max(needs.local_shuffle, STREAM_SHUFFLE_BATCHES)
    return "blocks", needs.local_shuffle if cfg.engine.unit == "step" else 0


def train_columns(needs: DataNeeds) -> list[str]:
    return sorted(set(needs.columns) | ({"label"} if needs.real_only else set()))


def fits_in_memory(cfg, needs: DataNeeds) -> bool:
    budget = cfg.engine.in_memory_mb * 2**20
    return bool(budget) and column_bytes(cfg.cache, train_columns(needs)) <= budget


def training_datasets(cfg, needs: DataNeeds, val_columns: tuple[str, ...] | None) -> dict:
    """``train`` (+ streams, + ``val`` when ``val_columns``) for ``cfg`` (a ``TrainConfig``)."""
    from ray.data import RandomSeedConfig

    columns = train_columns(needs)
    rows = _not_null(selected_rows(cfg.cache, "train", columns, cfg.protocol, cfg.fold, fraction=needs.fraction,
                                   seed=cfg.engine.seed, real_only=needs.real_only), needs.required)
    rows = held(rows.select_columns(list(needs.columns)), cfg.cache, columns, cfg.engine.in_memory_mb * 2**20)
    # a new order each epoch (a plain seed repeats the first one), the same orders for the same seed
    seed = RandomSeedConfig(seed=cfg.engine.seed, reseed_after_execution=True)
    order, _ = train_order(cfg, needs)
    train = rows.random_shuffle(seed=seed) if order == "global" else rows.randomize_block_order(seed=seed)
    datasets = {"train": train}
    for name, stream_columns in needs.streams.items():
        datasets[name] = rows.select_columns(list(stream_columns)).randomize_block_order()
    if needs.extra_real:
        datasets["extra_real"] = extra_real_rows(needs.extra_real, needs.columns, cfg.engine.in_memory_mb * 2**20)
    if val_columns:
        val_columns = sorted(set(val_columns) | {"label"})
        val = _not_null(selected_rows(cfg.cache, "validation", val_columns, cfg.protocol, cfg.fold), val_columns)
        datasets["val"] = held(val, cfg.cache, val_columns, cfg.engine.in_memory_mb * 2**20)
    return datasets


def extra_real_rows(cache: str, columns, budget: int):
    """Every bona fide row of ``cache`` with the wanted ``columns`` it has (extra faces have images, not cues)."""
    import pyarrow.parquet as pq
    from ray.data.expressions import col

    from fas.data.cache import read_cache, shard_paths

    have = set(pq.read_schema(shard_paths(cache)[0]).names)
    wanted = [c for c in columns if c in have]
    if "image" not in wanted:
        raise ValueError(f"extra_real {cache}: a frame cache with an image column is needed")
    rows = read_cache(cache, columns=sorted(set(wanted) | {"label"})).filter(expr=col("label") == 1)
    return held(rows.select_columns(wanted), cache, wanted, budget)
