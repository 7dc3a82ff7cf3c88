"""The frame cache: streaming preparation on Ray Data, skipped files counted, atomic completion."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import cv2
import numpy as np
import pyarrow.parquet as pq
import pytest

from fas.data.cache import (CacheError, PrepareConfig, format_prepare_summary, manifest_blocks, prepare, read_cache,
                            read_cache_table)
from fas.data.manifest import make_manifest, write_manifest
from tests.conftest import write_truncated, write_video


def _row(path, media, label, subject, split="train"):
    return {"sample_id": path.stem, "path": str(path), "media": media, "label": label,
            "attack": "real" if label else "print", "domain": "unit", "subject": subject, "split": split}


@pytest.fixture
def mixed_manifest(tmp_path, astronaut_rgb):
    rows = []
    for i in range(3):
        rows.append(_row(write_video(tmp_path / f"good{i}.avi", num_frames=15, seed=i), "video", i % 2, f"s{i}"))
    bad = write_truncated(tmp_path / "bad.avi", write_video(tmp_path / "src.avi", num_frames=40))
    rows.append(_row(bad, "video", 0, "s9"))
    face = tmp_path / "astronaut.png"
    cv2.imwrite(str(face), cv2.cvtColor(astronaut_rgb, cv2.COLOR_RGB2BGR))
    rows.append(_row(face, "image", 1, "s5", "test"))
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated jpeg")
    rows.append(_row(tmp_path / "broken.jpg", "image", 0, "s6", "test"))
    return write_manifest(make_manifest(rows), tmp_path / "manifest.parquet")


def test_prepare_keeps_every_good_frame_and_names_the_bad_files(ray_local, tmp_path, mixed_manifest):
    cfg = PrepareConfig(manifest=str(mixed_manifest), out=str(tmp_path / "cache"), frames=5, detector="haar",
                        size=64, no_face="keep", rows_per_shard=4, face_workers=1, progress=False)
    summary = prepare(cfg)
    assert summary["frames_sampled"] == 3 * 5 + 1 and summary["frames_written"] == 16
    assert summary["faces_found"] >= 1 and summary["no_face_kept"] == 15  # flat-grey videos have no face
    assert sorted(s["path"].rsplit("/", 1)[-1] for s in summary["skipped_files"]) == ["bad.avi", "broken.jpg"]
    text = format_prepare_summary(summary)
    assert "bad.avi" in text and "files skipped: 2" in text

    table = read_cache_table(cfg.out)
    assert table.num_rows == 16
    # the driver's writer cuts exact shards, whatever the blocks the workers returned
    assert [pq.read_metadata(cfg.out + "/shards/" + s).num_rows for s in summary["shards"]] == [4, 4, 4, 4]
    assert table.column_names[:8] == ["sample_id", "path", "media", "label", "attack", "domain", "subject", "split"]
    df = table.to_pandas()
    per_video = df[df.media == "video"].groupby("sample_id").frame_index.apply(sorted).to_dict()
    assert per_video == {f"good{i}": [0, 4, 7, 10, 14] for i in range(3)}
    face_row = df[df.sample_id == "astronaut"].iloc[0]
    assert face_row["face_detected"] and len(face_row["face_box"]) == 4
    assert cv2.imdecode(np.frombuffer(face_row["image"], np.uint8), cv2.IMREAD_COLOR).shape == (64, 64, 3)
    assert read_cache(cfg.out).count() == 16


def test_drop_policy_removes_faceless_frames(ray_local, tmp_path, mixed_manifest):
    cfg = PrepareConfig(manifest=str(mixed_manifest), out=str(tmp_path / "cache"), frames=5, size=64,
                        no_face="drop", face_workers=1, progress=False)
    summary = prepare(cfg)
    assert summary["no_face_dropped"] == 15 and summary["frames_written"] == 1
    assert read_cache_table(cfg.out)["sample_id"].to_pylist() == ["astronaut"]


def test_an_interrupted_cache_is_refused_and_half_written_shards_are_ignored(ray_local, tmp_path, mixed_manifest,
                                                                             monkeypatch):
    out = tmp_path / "cache"
    writes, renames = [], []
    write_table, replace = pq.write_table, os.replace

    def recording_write(table, where, *args, **kwargs):
        # while a shard is being written nothing sits under its final name, and the cache is not yet complete
        where = Path(where)
        final = where.with_name(where.name.removeprefix(".").removesuffix(".tmp"))
        writes.append((where, final.exists(), (out / "cache.json").exists()))
        return write_table(table, where, *args, **kwargs)

    def recording_replace(source, target):
        renames.append((Path(source), Path(target)))
        return replace(source, target)

    monkeypatch.setattr(pq, "write_table", recording_write)
    monkeypatch.setattr(os, "replace", recording_replace)  # fas.integrity.write_atomic renames with os.replace
    prepare(PrepareConfig(manifest=str(mixed_manifest), out=str(out), frames=2, size=32, face_workers=1,
                          detector="none", rows_per_shard=3, progress=False))
    monkeypatch.undo()
    index = json.loads((out / "cache.json").read_text())
    # every shard was written under a temporary name (nothing yet under its final name, no cache.json yet) ...
    written = [w for w, _, _ in writes]
    assert len(written) == len(index["shards"]) == 3  # 7 frames, 3 rows per shard
    assert all(w.parent == out / "shards" and re.fullmatch(r"\.part-[0-9a-f]+\.parquet\.tmp", w.name) for w in written)
    assert not any(final_existed or complete for _, final_existed, complete in writes)
    # ... then renamed to the final part-*.parquet name that cache.json lists; cache.json is renamed in last
    shard_renames = [(src, dst) for src, dst in renames if dst.parent == out / "shards"]
    assert shard_renames == [(w, w.with_name(w.name[1:-len(".tmp")])) for w in written]
    assert sorted(dst.name for _, dst in shard_renames) == sorted(index["shards"])
    assert renames[-1] == (out / ".cache.json.tmp", out / "cache.json")
    assert sorted(p.name for p in (out / "shards").iterdir()) == sorted(index["shards"])  # no temporary file left
    # a shard still being written when the job died has a temporary name and is not listed
    (out / "shards" / ".part-dead.parquet.tmp").write_bytes(b"PAR1 half")
    assert read_cache_table(out).num_rows == sum(pq.read_metadata(out / "shards" / s).num_rows
                                                 for s in index["shards"])
    (out / "cache.json").unlink()  # as if the job had been killed before finishing
    with pytest.raises(CacheError, match="not a complete frame cache"):
        read_cache_table(out)


def test_manifest_blocks_weigh_videos_by_their_frames_and_keep_every_row(tmp_path):
    rows = [_row(tmp_path / f"v{i}.avi", "video", 1, "s1") for i in range(10)]
    rows += [_row(tmp_path / f"i{i}.png", "image", 1, "s1") for i in range(100)]
    manifest = make_manifest(rows)
    blocks = manifest_blocks(manifest, PrepareConfig(frames=10, frames_per_block=32), workers=1)
    assert [b.num_rows for b in blocks[:3]] == [3, 3, 3]  # 30 frames each: a 4th video would pass 32
    assert max(b.num_rows for b in blocks) == 32  # images count one frame each
    assert [r for b in blocks for r in b["sample_id"].to_pylist()] == manifest["sample_id"].to_pylist()
    few = manifest_blocks(manifest.slice(0, 4), PrepareConfig(frames=10, frames_per_block=32), workers=1)
    assert len(few) == 4  # at least 4 blocks per worker, so that no worker idles long at the end


def _images(folder: Path, domain: str, count: int, astronaut_rgb) -> Path:
    rows = []
    for i in range(count):
        path = folder / f"{domain}_{i}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), cv2.cvtColor(astronaut_rgb[::8, ::8], cv2.COLOR_RGB2BGR))
        rows.append({**_row(path, "image", i % 2, f"s{i}"), "sample_id": f"{domain}/{path.stem}", "domain": domain})
    return write_manifest(make_manifest(rows), folder / "manifest.parquet")


def test_several_manifests_prepare_into_one_cache_with_counts_per_source(ray_local, tmp_path, astronaut_rgb, capsys):
    """`fas prepare A B=domain --out CACHE`: leave-one-domain-out and the unseen protocol need several datasets in
    one cache; each source is counted, and a renamed source carries its new domain into its ids."""
    from fas.cli import main

    oulu, casia = _images(tmp_path / "o", "oulu_npu", 3, astronaut_rgb), _images(tmp_path / "c", "unit", 2,
                                                                                 astronaut_rgb)
    out = tmp_path / "cache"
    assert main(["prepare", str(oulu), f"{casia}=casia_fasd", "--out", str(out), "--detector", "none",
                 "--size", "32", "--face-workers", "1"]) == 0
    printed = capsys.readouterr().out
    assert f"source {oulu}: oulu_npu, 3 samples (1 bona fide, 2 attacks)" in printed
    assert f"source {casia}: casia_fasd, 2 samples (1 bona fide, 1 attacks)" in printed
    table = read_cache_table(out)
    assert sorted(table["sample_id"].to_pylist()) == [
        "casia_fasd/unit_0", "casia_fasd/unit_1", "oulu_npu/oulu_npu_0", "oulu_npu/oulu_npu_1", "oulu_npu/oulu_npu_2"]
    summary = json.loads((out / "cache.json").read_text())
    assert summary["sources"][str(casia)] == {"domains": ["casia_fasd"], "samples": 2, "real": 1, "attack": 1}
    assert summary["config"]["manifest"] == str(out / "manifest.parquet")


def test_merging_manifests_refuses_clashing_ids_and_keeps_extra_columns(tmp_path):
    from fas.data.manifest import ManifestError, merge_manifests

    def manifest(name, domain, extra):
        rows = [{**_row(Path(f"/d/{name}.png"), "image", 1, "s1"), "sample_id": f"{domain}/x", "domain": domain,
                 **extra}]
        return write_manifest(make_manifest(rows), tmp_path / f"{name}.parquet")

    a, b = manifest("a", "siw", {"light": "constant"}), manifest("b", "siw", {"take": "1"})
    with pytest.raises(ManifestError, match=r"sample_id 'siw/x' is in both .*a\.parquet and .*b\.parquet"):
        merge_manifests([(a, None), (b, None)])
    merged, counts = merge_manifests([(a, None), (b, "siw_copy")])
    assert merged.to_pylist()[1]["sample_id"] == "siw_copy/x" and merged["take"].to_pylist() == [None, "1"]
    assert merged["light"].to_pylist() == ["constant", None]
    assert counts[str(b)] == {"domains": ["siw_copy"], "samples": 1, "real": 1, "attack": 0}


def test_head_pose_is_read_back_from_five_landmarks():
    from fas.data.pose import head_pose, project

    for yaw, pitch in [(0, 0), (20, -10), (-35, 15), (50, 5), (10, 30)]:
        assert head_pose(project(yaw, pitch, 640, 480), 640, 480) == pytest.approx((yaw, pitch), abs=1e-3)


class PosedFaces:
    """A landmark detector that finds one face at a given pose (the real one, YuNet, needs its ONNX file)."""

    name = "yunet"

    def __init__(self, yaw: float, pitch: float):
        self.yaw, self.pitch = yaw, pitch

    def detect_faces(self, rgb):
        from fas.data.pose import project

        h, w = rgb.shape[:2]
        return [((w // 4, h // 4, 3 * w // 4, 3 * h // 4), project(self.yaw, self.pitch, w, h))]


@pytest.mark.parametrize("yaw,pitch,dropped", [(10, -5, False), (40, 0, True), (0, 28, True)])
def test_faces_of_deviated_pose_are_dropped_and_counted(tmp_path, astronaut_rgb, yaw, pitch, dropped):
    """AG-FAS's real-face set leaves out faces turned or tilted beyond a threshold (here 30 and 25 degrees)."""
    from fas.data.cache import FrameStage, ShardWriter, check_pose_filter

    path = tmp_path / "face.png"
    cv2.imwrite(str(path), cv2.cvtColor(astronaut_rgb, cv2.COLOR_RGB2BGR))
    cfg = PrepareConfig(manifest="unused", out=str(tmp_path / "c"), detector="none", size=32, max_yaw=30,
                        max_pitch=25)
    stage = FrameStage(cfg)
    stage.detector = PosedFaces(yaw, pitch)
    out = stage(make_manifest([_row(path, "image", 1, "s1")]))
    assert out["yaw"][0].as_py() == pytest.approx(yaw, abs=1e-3)
    assert out["pitch"][0].as_py() == pytest.approx(pitch, abs=1e-3)
    writer = ShardWriter(tmp_path / "shards", 8)
    (tmp_path / "shards").mkdir()
    writer.add(out)
    counts = writer.close()
    assert (counts["pose_dropped"], counts["frames_written"], counts["no_face_dropped"]) == (
        (1, 0, 0) if dropped else (0, 1, 0))
    with pytest.raises(CacheError, match=r"need face landmarks: use a detector that gives them \(\['yunet'\]"):
        check_pose_filter(PrepareConfig(detector="haar", max_yaw=30))
    check_pose_filter(PrepareConfig(detector="haar"))  # no threshold, no landmarks needed
