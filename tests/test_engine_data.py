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
