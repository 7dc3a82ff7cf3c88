"""Source-side validation during training: AUC and HTER on the protocol's threshold rows (never the test domain).

Rank 0 scores the unsplit ``val`` dataset after each epoch and the numbers go into the epoch's report, which is
what Ray Tune sweeps select on. HTER is taken at the validation set's own EER threshold, as a threshold-free
summary; the held-out evaluation with a dev-selected threshold stays the job of ``jobs/evaluate.py``.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch


def validation_rows(cache: str, columns: list[str], protocol: str | None = None, fold: int | None = None):
    """The protocol's threshold rows (source dev / held-out subjects), or the ``dev`` split without a protocol."""
    from ray.data.expressions import col

    from fas.data.cache import read_cache, read_cache_table
    from fas.train.data import META_COLUMNS

    dataset = read_cache(cache, columns=sorted(set(columns) | {"split", "sample_id"}))
    if not protocol:
        return dataset.filter(expr=col("split") == "dev").select_columns(columns)
    from fas.eval.protocols import split_for_protocol

    meta = read_cache_table(cache, columns=META_COLUMNS)
    ids = sorted(set(split_for_protocol(meta, protocol, fold=fold)["threshold"].column("sample_id").to_pylist()))
    return dataset.filter(expr=col("sample_id").is_in(ids)).select_columns(columns)


@torch.no_grad()
def validate(score_batch: Callable[..., np.ndarray], batch_size: int = 64, inputs: tuple[str, ...] = ("image",)) -> dict:
    """``{"val_auc", "val_hter"}`` of the ``val`` dataset on rank 0 (``{}`` on other ranks); ``score_batch`` gets
    the ``inputs`` columns of each batch."""
    import ray.train

    from fas.eval.metrics import auc, eer, hter

    if ray.train.get_context().get_world_rank() != 0:
        return {}
    shard = ray.train.get_dataset_shard("val")
    scores, labels = [], []
    for batch in shard.iter_batches(batch_size=batch_size, batch_format="numpy"):
        scores.append(np.asarray(score_batch(*[batch[c] for c in inputs]), dtype=float))
        labels.append(np.asarray(batch["label"], dtype=int))
    if not scores:
        return {}
    scores, labels = np.concatenate(scores), np.concatenate(labels)
    if len(set(labels.tolist())) < 2:
        return {}
    point = eer(scores, labels)
    return {"val_auc": auc(scores, labels), "val_hter": hter(scores, labels, point.threshold)}
