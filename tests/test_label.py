"""Issue 23's pieces without a model: uncertainty and order, duplicate flags, the versioned merge and its frozen
held-out set, the per-category comparison, and ``init_from``'s checks (the whole loop: tests/test_label_loop.py)."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fas.label.compare import compare_rows
from fas.label.dataset import check_heldout, freeze, merge, tree_manifest, version_of, versions
from fas.label.queue import QueueError, write_decision, write_queue
from fas.label.suggest import flag_duplicates, image_hashes, uncertain_first, uncertainty


def test_uncertainty_is_the_top_two_margin_and_the_entropy_in_nats():
    margin, entropy = uncertainty(np.array([0.5, 0.3, 0.2, 0, 0, 0, 0, 0]))
    assert margin == pytest.approx(0.2)
    assert entropy == pytest.approx(-(0.5 * math.log(0.5) + 0.3 * math.log(0.3) + 0.2 * math.log(0.2)))
    assert uncertainty(np.eye(8)[3]) == (1.0, 0.0)


def test_the_queue_is_most_uncertain_first_with_ties_broken_by_entropy_then_path():
    items = [{"source": s, "frame": f, "margin": m, "entropy": e}
             for s, f, m, e in [("z", None, 0.9, 0.1), ("b", None, 0.1, 0.5), ("a", None, 0.1, 0.5),
                                ("c", None, 0.1, 0.9), ("v", 3, 0.4, 0.2), ("v", 1, 0.4, 0.2)]]
    order = [(i["source"], i["frame"]) for i in uncertain_first(items)]
    assert order == [("c", None), ("a", None), ("b", None), ("v", 1), ("v", 3), ("z", None)]


def picture(seed: int, size: int = 64) -> np.ndarray:
    """A smooth random picture (a perceptual hash needs structure, not per-pixel noise)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(small).resize((size, size), Image.BILINEAR))


def test_exact_and_near_duplicates_of_the_tree_and_of_earlier_items_are_flagged():
    base, other = picture(1), picture(2)
    brighter = np.clip(base.astype(int) + 3, 0, 255).astype(np.uint8)  # the same picture, re-exposed
    known = [(*image_hashes(base), "tree/a/x.png")]
    items = [{"image": f"{n}.png", "frame": None, "source": f"{n}.png", **dict(zip(("sha256", "phash"),
                                                                                   image_hashes(rgb))),
              "margin": 0.0, "entropy": 0.0} for n, rgb in enumerate([base, brighter, other, other])]
    flag_duplicates(items, known, near=6)
    assert items[0]["duplicate"] == {"kind": "exact", "of": "tree/a/x.png", "distance": 0}
    assert items[1]["duplicate"]["kind"] == "near" and items[1]["duplicate"]["of"] == "tree/a/x.png"
    assert items[2]["duplicate"] is None
    assert items[3]["duplicate"] == {"kind": "exact", "of": "2.png", "distance": 0}  # an earlier item of the queue
    flag_duplicates(items[1:2], known, near=0)
    assert items[1]["duplicate"] is None or items[1]["duplicate"]["distance"] == 0


def write_png(path, rgb) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path)


def small_tree(root) -> None:
    for split, n in (("train", 2), ("test", 2)):
        for letter, name in (("a", "a_real"), ("b", "b_id_card")):
            for i in range(n):
                write_png(root / split / name / f"s{i}_{letter}.png",
                          picture({"train": 0, "test": 100}[split] + 10 * (letter == "b") + i))


def reviewed_queue(folder, images: list[tuple], decisions: list[str | None]) -> None:
    items = []
    for n, (path, rgb) in enumerate(images):
        write_png(path, rgb)
        sha, phash = image_hashes(rgb)
        items.append({"id": f"{n:06d}", "source": str(path), "frame": None, "image": str(path), "category": "a",
                      "probs": dict.fromkeys("abcdefgh", 0.125), "margin": 0.0, "entropy": 0.0, "sha256": sha,
                      "phash": phash, "duplicate": None})
    write_queue(folder, {"categories": {"a": "real", "b": "id_card", "c": "face_mask"}, "items": items})
    for item, category in zip(items, decisions):
        if category != "undecided":
            write_decision(folder, item["id"], category)


def test_merge_adds_reviewed_images_as_a_version_and_never_overwrites_or_leaks_into_the_held_out_set(tmp_path):
    root, queue = tmp_path / "class8", tmp_path / "queue"
    small_tree(root)
    test_image = np.asarray(Image.open(root / "test" / "a_real" / "s0_a.png").convert("RGB")) + np.uint8(2)
    same_name = picture(500)
    reviewed_queue(queue, [(tmp_path / "in" / "s0_a.png", same_name), (tmp_path / "in" / "new.png", picture(501)),
                           (tmp_path / "in" / "leak.png", test_image), (tmp_path / "in" / "skip.png", picture(502)),
                           (tmp_path / "in" / "later.png", picture(503)),
                           (tmp_path / "in2" / "dup.png", np.asarray(Image.open(root / "train" / "b_id_card" /
                                                                                 "s1_b.png").convert("RGB")))],
                   ["a", "c", "b", None, "undecided", "b"])
    before = tree_manifest(root)
    entry = merge(queue, root)
    assert entry["added"] == 2 and entry["left_out"] == {"skipped": 1, "undecided": 1, "in_tree": 1, "heldout": 1}
    first, second = versions(root)
    assert first["version"] == version_of(before) and first["parent"] is None and second["parent"] == first["version"]
    assert second["version"] == version_of(tree_manifest(root)) and len(second["added"]) == 2
    digest = tree_manifest(root)
    renamed = [p for p in second["added"] if p.startswith("train/a_real/s0_a-")]
    assert renamed and digest["train/a_real/s0_a.png"] == before["train/a_real/s0_a.png"]  # not overwritten
    assert "train/c_face_mask/new.png" in second["added"]  # a new category folder: <letter>_<name>
    assert {k: v for k, v in digest.items() if k.startswith("test/")} == \
        {k: v for k, v in before.items() if k.startswith("test/")}
    with pytest.raises(QueueError, match="held-out set is frozen"):
        merge(queue, root, split="test")
    write_png(root / "test" / "b_id_card" / "extra.png", picture(900))
    with pytest.raises(QueueError, match=r"was changed \(0 files changed or removed.*1 added, e.g. test/b_id_card/"):
        check_heldout(root)


def test_a_multi_domain_tree_needs_the_domain_named(tmp_path):
    root = tmp_path / "class8"
    for domain in ("cam-a", "cam-b"):
        small_tree(root / domain)
    reviewed_queue(tmp_path / "queue", [(tmp_path / "in" / "x.png", picture(700))], ["a"])
    with pytest.raises(QueueError, match=r"domains \['cam-a', 'cam-b'\]: name the one"):
        merge(tmp_path / "queue", root)
    assert merge(tmp_path / "queue", root, domain="cam-b")["added"] == 1
    assert (root / "cam-b" / "train" / "a_real" / "x.png").is_file()
    assert freeze(root) == versions(root)[0] and len(json.loads((root / ".fas" / "heldout.json").read_text())[
        "sha256"]) == 8  # two domains' test splits


def test_a_change_is_better_or_worse_only_when_its_paired_interval_excludes_zero():
    true = np.array([0] * 20 + [1] * 20 + [2] * 20)
    old = np.array([0] * 20 + [0] * 10 + [1] * 10 + [1] * 20)  # b: half its attacks taken for real
    new = np.array([0] * 20 + [1] * 20 + [0] * 2 + [2] * 18)  # b fixed; c: two attacks now taken for real
    rows = {r["category"]: r for r in compare_rows(true, old, new, ["real", "id_card", "face_mask"])}
    assert rows["a"]["previous"] == rows["a"]["new"] == 1.0 and rows["a"]["interval"] == [0.0, 0.0]
    assert rows["a"]["verdict"] == "within the interval"
    assert (rows["b"]["previous"], rows["b"]["new"], rows["b"]["change"]) == (0.5, 1.0, 0.5)
    assert rows["b"]["verdict"] == "better" and rows["b"]["interval"][0] > 0
    assert rows["c"]["change"] == pytest.approx(-0.1) and rows["c"]["verdict"] == "within the interval"
    assert rows["c"]["interval"][0] < 0 <= rows["c"]["interval"][1]


def test_init_from_names_a_model_folder_or_a_runs_newest_complete_checkpoint(tmp_path):
    from fas.engine.loop import DS_TAG, STATE_FILE, init_folder
    from fas.methods.base import MODEL_CONFIG_FILE, WEIGHTS_FILE

    run = tmp_path / "run"
    for name, whole in (("checkpoint_epoch_000000", True), ("checkpoint_epoch_000001", True),
                        ("checkpoint_epoch_000002", False)):
        folder = run / name
        (folder / DS_TAG).mkdir(parents=True)
        (folder / WEIGHTS_FILE).write_bytes(b"")
        (folder / MODEL_CONFIG_FILE).write_text(json.dumps({"method": "clipc8"}))
        if whole:
            (folder / STATE_FILE).write_text("{}")
    with pytest.warns(UserWarning, match="no checksums.json"):
        assert init_folder(str(run), "clipc8") == (run / "checkpoint_epoch_000001").resolve()
        assert init_folder(str(run / "checkpoint_epoch_000000"), "clipc8") == (
            run / "checkpoint_epoch_000000").resolve()
        with pytest.raises(ValueError, match="holds a clipc8 model; this run trains pdle"):
            init_folder(str(run), "pdle")
    shutil.rmtree(run)
    with pytest.raises(ValueError, match="neither a model folder .* nor a run folder with a complete checkpoint"):
        init_folder(str(run), "clipc8")


def test_the_label_commands_from_suggest_to_merge(tmp_path, capsys):
    """`fas label suggest | review --export-csv/--import-csv | merge` as a user types them (a random tiny CLIPC8:
    the commands, not the model, are under test); an unreadable capture is counted, not fatal."""
    from fas.cli import main
    from fas.label.queue import load_queue, read_decisions
    from fas.predict import LocalPredict, PredictConfig
    from tests.test_serve import build_clipc8_folder

    root, captures, queue, sheet = tmp_path / "class8", tmp_path / "captures", tmp_path / "queue", tmp_path / "q.csv"
    small_tree(root)
    build_clipc8_folder(tmp_path / "model", seed=0)
    for n in range(3):
        write_png(captures / f"new_{n}.png", picture(300 + n))
    (captures / "broken.png").write_bytes(b"not a png")
    assert main(["label", "suggest", str(tmp_path / "model"), str(captures), "--out", str(queue),
                 "--dataset", str(root)]) == 0
    assert "3 items from 4 files (1 unreadable, 0 duplicates flagged, 0 exact)" in capsys.readouterr().out
    items = load_queue(queue)["items"]
    assert load_queue(queue)["unreadable"] == [{"source": str(captures / "broken.png"),
                                                "error": "bytes are not a decodable image"}]
    local = LocalPredict(PredictConfig(model=str(tmp_path / "model"), threshold=0.5))
    for item in items:  # the reviewer sees the quality notes `fas predict` gives the same capture (no face, blur, ...)
        row = local.score(Path(item["source"]))[0]
        assert (item["warnings"], item["num_faces"], item["box"]) == (row["warnings"], row["num_faces"], row["box"])
    assert any(item["warnings"] for item in items)  # the generated captures do draw notes: the check has content
    assert main(["label", "review", str(queue), "--export-csv", str(sheet)]) == 0
    lines = sheet.read_text().splitlines()
    decided = [lines[0]] + [line + value for line, value in zip(lines[1:], ("b", "c", "skip"))]
    sheet.write_text("\n".join(decided) + "\n")
    assert main(["label", "review", str(queue), "--import-csv", str(sheet)]) == 0
    assert {d["id"]: d["category"] for d in read_decisions(queue).values()} == {
        items[0]["id"]: "b", items[1]["id"]: "c", items[2]["id"]: None}
    capsys.readouterr()
    assert main(["label", "merge", str(queue), "--into", str(root)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"2 images added to {root}: version {versions(root)[1]['version']} (parent "
                          f"{versions(root)[0]['version']}); left out: 1 skipped")
    assert main(["label", "merge", str(queue), "--into", str(root), "--split", "test"]) == 2  # refused, said why
    assert "the held-out set is frozen" in capsys.readouterr().err
