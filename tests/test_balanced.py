"""The DG trainers' balanced batches (fas/methods/balanced.py): fixed rows per (domain, label), and the paper's
1:1 / 1:1 sampling of the "*" rows that add extra real faces."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

from fas.methods.balanced import BalancedBatches, extra_real_batches
from fas.methods.base import WorkerContext


def context(seed: int = 0, open_stream=None) -> WorkerContext:
    return WorkerContext(rank=0, world_size=1, device=torch.device("cpu"), dtype=torch.float,
                         rng=np.random.default_rng(seed), open_stream=open_stream)


def stream_batch(domains=("a", "b", "c"), per=4) -> dict:
    """``per`` bona fide and ``per`` attack rows of each domain; image i is bytes([i])."""
    n = len(domains) * 2 * per
    return {"image": [bytes([i]) for i in range(n)], "cue": [bytes([100 + i]) for i in range(n)],
            "label": np.array([1, 0] * (n // 2)), "domain": np.repeat(list(domains), 2 * per)}


def test_draws_repeat_with_the_rng_the_engine_reseeded():
    ctx = context()
    balanced = BalancedBatches(ctx, ["a", "b"], per_group=3, pool_size=4, columns=("image", "cue"))
    balanced.add(stream_batch(("a", "b")))
    draws = []
    for _ in range(2):
        ctx.rng = np.random.default_rng(7)  # what the engine does at an epoch or a resume point
        draws.append(balanced.draw())
    assert draws[0] == draws[1]
    assert draws[0]["label"] == [0] * 3 + [1] * 3 + [0] * 3 + [1] * 3 and draws[0]["domain"] == [0] * 6 + [1] * 6
    images = [i[0] for i in draws[0]["image"]]
    assert {i % 2 for i in images[:3]} == {1} and all(i < 8 for i in images[:6])  # label 0 rows of domain a
    assert [c[0] - 100 for c in draws[0]["cue"]] == images  # each row keeps its own cue
    assert draws[0]["extra"] == [False] * 12


def test_extra_real_faces_make_every_batch_one_to_one_twice():
    """SSDG-R*, SSAN-R*, SA-FAS*: real:attack 1:1, and inside the real half dataset:extra 1:1 (AG-FAS Sec. IV)."""
    balanced = BalancedBatches(context(), ["a", "b", "c"], per_group=4, pool_size=16, extra_real=True)
    balanced.add(stream_batch())
    balanced.add_extra({"image": [bytes([200 + i]) for i in range(10)]})
    for _ in range(5):
        rows = balanced.draw()
        kinds = Counter(("extra" if e else "real" if y == 1 else "attack") for y, e in zip(rows["label"], rows["extra"]))
        assert kinds == {"attack": 12, "real": 6, "extra": 6}
        per_domain = Counter((d, y) for d, y, e in zip(rows["domain"], rows["label"], rows["extra"]) if not e)
        assert per_domain == {(d, 0): 4 for d in range(3)} | {(d, 1): 2 for d in range(3)}
        extra = [img[0] for img, e in zip(rows["image"], rows["extra"]) if e]
        assert all(200 <= i < 210 for i in extra)
        assert {d for d, e in zip(rows["domain"], rows["extra"]) if e} == {3}  # a domain of their own


def test_extra_real_needs_an_even_group_and_its_faces():
    with pytest.raises(ValueError, match="per_group must be even"):
        BalancedBatches(context(), ["a"], per_group=3, pool_size=8, extra_real=True)
    balanced = BalancedBatches(context(), ["a"], per_group=2, pool_size=8, extra_real=True)
    balanced.add(stream_batch(("a",)))
    with pytest.raises(ValueError, match="no extra real faces"):
        balanced.draw()
    plain = BalancedBatches(context(), ["a"], per_group=2, pool_size=8)
    with pytest.raises(ValueError, match="without extra_real"):
        plain.add_extra({"image": [b"x"]})


def test_extra_faces_without_a_cue_keep_none_in_that_column():
    balanced = BalancedBatches(context(), ["a"], per_group=2, pool_size=8, columns=("image", "cue"), extra_real=True)
    balanced.add(stream_batch(("a",)))
    balanced.add_extra({"image": [b"e"]})
    rows = balanced.draw()
    assert [c for c, e in zip(rows["cue"], rows["extra"]) if e] == [None]


def test_the_extra_stream_is_reopened_when_a_pass_ends():
    opened = []

    def open_stream(name, batch_size):
        opened.append((name, batch_size))
        return iter([{"image": [b"1", b"2"]}, {"image": [b"3"]}])

    stream = extra_real_batches(context(open_stream=open_stream), 2)
    seen = [next(stream)["image"] for _ in range(5)]
    assert seen == [[b"1", b"2"], [b"3"], [b"1", b"2"], [b"3"], [b"1", b"2"]]
    assert opened == [("extra_real", 2)] * 3
    empty = extra_real_batches(context(open_stream=lambda name, size: iter([])), 2)
    with pytest.raises(ValueError, match="no bona fide rows"):
        next(empty)
