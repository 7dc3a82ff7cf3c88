"""Balanced minibatches for the domain-generalisation trainers (OA-Net with SSDG, SSAN, SA-FAS), with the
extra real faces of AG-FAS's "*" rows.

The training stream arrives in whatever order the shard gives; the DG losses need every source domain's bona fide
and attack rows in every batch. Each step adds one stream batch to per-(domain, label) reservoirs of ``pool_size``
rows on the worker (a random row is replaced when full) and draws fixed numbers from each, so memory is bounded by
groups x pool_size rows and the batch composition never depends on the stream.

The "*" variants (AG-FAS Tables I-III and VIII: SSDG-R*, SSAN-R*, SA-FAS* trained with the extra real faces that
AG-FAS's generator learns from) use the paper's sampling: half of each batch attacks, half bona fide, and inside the
bona fide half one FAS-dataset face for each extra face. The extra faces come from their own frame cache
(``extra_real`` in a method's config -> ``DataNeeds.extra_real`` -> the engine's ``extra_real`` stream, unsplit)
and are given a domain of their own: index ``len(domains)``.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Iterator

EXTRA_STREAM = "extra_real"


class BalancedBatches:
    """Reservoirs per (domain, label) fed by the training stream, and one of extra real faces.

    Without extra faces a draw holds ``per_group`` rows of every (domain, label) group. With ``extra_real``:
    ``per_group`` attacks of each domain, ``per_group / 2`` bona fide rows of each domain and as many extra faces as
    those bona fide rows together: real:attack 1:1 and dataset-real:extra-real 1:1 in every batch.
    """

    def __init__(self, ctx, domains: list[str], *, per_group: int, pool_size: int,
                 columns: tuple[str, ...] = ("image",), domain_column: str = "domain", extra_real: bool = False):
        if extra_real and per_group % 2:
            raise ValueError(f"per_group must be even with extra real faces (half of each domain's bona fide rows "
                             f"are replaced by extra faces), got {per_group}")
        self.ctx, self.domains = ctx, list(domains)  # the engine reseeds ``ctx.rng``: read it at each use
        self.per_group, self.pool_size, self.columns = per_group, pool_size, tuple(columns)
        self.domain_column, self.extra_real = domain_column, extra_real
        self.pools: dict[tuple[int, int], list] = defaultdict(list)
        self.extra: list = []

    def _keep(self, pool: list, row: tuple) -> None:
        if len(pool) < self.pool_size:
            pool.append(row)
        else:
            pool[int(self.ctx.rng.integers(self.pool_size))] = row

    def add(self, batch: dict) -> None:
        """A training-stream batch: ``columns`` + ``label`` + the domain column."""
        from fas.data.selection import domain_index

        domains = domain_index(batch[self.domain_column], self.domains).tolist()
        for i, (label, domain) in enumerate(zip(batch["label"], domains)):
            self._keep(self.pools[(domain, int(label))], tuple(batch[c][i] for c in self.columns))

    def add_extra(self, batch: dict) -> None:
        """A batch of the extra real-face stream (``columns``; a missing column, e.g. a cue, stays None)."""
        if not self.extra_real:
            raise ValueError("extra real faces were added to batches built without extra_real")
        rows = len(next(iter(batch.values())))
        for i in range(rows):
            self._keep(self.extra, tuple(batch[c][i] if c in batch else None for c in self.columns))

    def _take(self, out: dict, pool: list, n: int, label: int, domain: int, extra: bool) -> None:
        for i in self.ctx.rng.integers(len(pool), size=n):
            for column, value in zip(self.columns, pool[i]):
                out[column].append(value)
            out["label"].append(label)
            out["domain"].append(domain)
            out["extra"].append(extra)

    def draw(self) -> dict:
        """One balanced batch: lists of every column, ``label`` (1 = bona fide), ``domain`` (an index into
        ``domains``; extra faces ``len(domains)``) and ``extra``."""
        out = {column: [] for column in (*self.columns, "label", "domain", "extra")}
        real_rows = 0
        for (domain, label), pool in sorted(self.pools.items()):
            n = self.per_group // 2 if (self.extra_real and label == 1) else self.per_group
            self._take(out, pool, n, label, domain, False)
            real_rows += n if label == 1 else 0
        if self.extra_real:
            if not self.extra:
                raise ValueError("no extra real faces were added before the first draw")
            self._take(out, self.extra, real_rows, 1, len(self.domains), True)
        return out


class BalancedDraws:
    """One balanced draw per training step: the step's stream batch (plus, for the "*" rows, a batch of the extra
    real-face stream) fed to ``BalancedBatches``. ``cfg``: a DG trainer's config (``domains``, ``per_group``,
    ``pool_size``, ``domain_column``, ``stream_batch``, ``extra_real``)."""

    def __init__(self, cfg, ctx, columns: tuple[str, ...] = ("image",)):
        if not cfg.domains:
            raise ValueError("no source domains: `domains` is filled by the method's prepare from the training rows")
        self.batches = BalancedBatches(ctx, cfg.domains, per_group=cfg.per_group, pool_size=cfg.pool_size,
                                       columns=columns, domain_column=cfg.domain_column,
                                       extra_real=bool(cfg.extra_real))
        self.extra = extra_real_batches(ctx, cfg.stream_batch) if cfg.extra_real else None

    def __call__(self, batch: dict) -> dict:
        self.batches.add(batch)
        if self.extra is not None:
            self.batches.add_extra(next(self.extra))
        return self.batches.draw()


def extra_real_batches(ctx, batch_size: int) -> Iterator[dict]:
    """Endless batches of the extra real-face stream: every worker reads it whole, reopened when a pass ends."""
    while True:
        empty = True
        for batch in ctx.open_stream(EXTRA_STREAM, batch_size):
            empty = False
            yield batch
        if empty:
            raise ValueError("the extra real-face cache has no bona fide rows")
