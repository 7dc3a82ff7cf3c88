"""The engine's data streams: selections that fit the memory budget are read once, larger ones stream."""

from __future__ import annotations


def test_rows_that_fit_the_budget_are_read_once_and_larger_ones_stream(class8_cache):
    from ray.data.dataset import MaterializedDataset

    from fas.engine.data import column_bytes, held, selected_rows

    cache = str(class8_cache / "cache")
    image, label = column_bytes(cache, ["image"]), column_bytes(cache, ["label"])
    assert column_bytes(cache, ["image", "label"]) == image + label and image > 100 * label
    rows = selected_rows(cache, "train", ["image", "label"])
    kept = held(rows, cache, ["image", "label"], budget=image + label)
    assert isinstance(kept, MaterializedDataset) and kept.count() == 72  # 3 per class x 8 x 3 domains
    assert sorted(kept.to_pandas()["image"].map(len)) == sorted(rows.to_pandas()["image"].map(len))
    assert not isinstance(held(rows, cache, ["image", "label"], budget=image + label - 1), MaterializedDataset)
    assert not isinstance(held(rows, cache, ["image", "label"], budget=0), MaterializedDataset)


def test_a_negative_memory_budget_is_refused_before_any_worker_starts():
    import pytest

    from fas.engine.config import EngineConfig

    with pytest.raises(ValueError, match="in_memory_mb must be >= 0"):
        EngineConfig(epochs=1, in_memory_mb=-1).check()


def test_each_epoch_reads_a_new_order_and_the_same_seed_the_same_orders(class8_cache):
    from fas.config import from_dict
    from fas.engine.data import training_datasets
    from fas.methods.base import DataNeeds
    from fas.methods.clipc8.config import CLIPC8Config

    def orders(seed):
        cfg = from_dict(CLIPC8Config, {"cache": str(class8_cache / "cache"), "seed": seed})
        train = training_datasets(cfg, DataNeeds(columns=("sample_id",)), None)["train"]
        return [list(train.to_pandas()["sample_id"]) for _ in range(2)]

    first, second = orders(0)
    assert sorted(first) == sorted(second) and first != second  # every training row, in a new order
    assert orders(0) == [first, second] and orders(1)[0] != first


def test_rows_held_in_memory_are_shuffled_whole_and_streaming_rows_by_blocks_plus_a_local_buffer(class8_cache):
    from fas.config import from_dict
    from fas.engine.data import STREAM_SHUFFLE_BATCHES, train_order
    from fas.methods.base import DataNeeds
    from fas.methods.clipc8.config import CLIPC8Config

    def order(needs, **engine):
        return train_order(from_dict(CLIPC8Config, {"cache": str(class8_cache / "cache"), **engine}), needs)

    shuffled = DataNeeds(columns=("image", "attack"))
    assert order(shuffled) == ("global", 0)  # 72 tiny rows fit the default budget
    assert order(shuffled, in_memory_mb=0) == ("blocks", STREAM_SHUFFLE_BATCHES)  # no all-to-all per epoch
    blocks = DataNeeds(columns=("image",), order="blocks", local_shuffle=4)
    assert order(blocks, steps=10) == ("blocks", 4) and order(blocks, epochs=2) == ("blocks", 0)


def test_a_fraction_of_the_samples_is_seeded_nested_and_reaches_the_training_rows(class8_cache):
    """AG-FAS's real-face ablation (Table VII) trains the generator on 25 / 50 / 100 % of the real faces: the
    subsets are the same on every run of a seed and nested, and the training stream holds exactly them."""
    import pytest

    from fas.data.selection import sample_fraction, selected_ids
    from fas.engine.data import selected_rows

    cache = str(class8_cache / "cache")
    real = selected_ids(cache, "train", real_only=True)
    quarter, half = (selected_ids(cache, "train", real_only=True, fraction=f, seed=7) for f in (0.25, 0.5))
    assert (len(quarter), len(half)) == (round(0.25 * len(real)), round(0.5 * len(real)))
    assert set(quarter) < set(half) < set(real)
    assert quarter == sample_fraction(real, 0.25, 7) and quarter != sample_fraction(real, 0.25, 8)
    rows = selected_rows(cache, "train", ["sample_id", "label"], fraction=0.5, seed=7, real_only=True)
    got = rows.to_pandas()
    assert set(got["sample_id"]) == set(half) and set(got["label"]) == {1}
    assert sample_fraction(["a"], 0.1) == ["a"]
    with pytest.raises(ValueError, match=r"in \(0, 1\], got 0"):
        sample_fraction(real, 0)
