"""AG-FAS's DFG†: the face-parsing BiSeNet (released key names, ONNX path), the landmark and box face masks, the
masked cue, and the cue job writing masked cues and their masks (slow: a tiny generator on Ray)."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import torch

from fas.methods.dfg.mask import (FaceGeometry, box_mask, decode_masks, geometry_from_face, geometry_from_row,
                                  landmark_mask, masked_cue)
from fas.methods.dfg.model import anomalous_cue


def released_shapes() -> dict[str, tuple[int, ...]]:
    """The state-dict names and shapes of face-parsing.PyTorch's ``79999_iter.pth``, written out from its model.py
    and resnet.py (not from fas' BiSeNet, so that loading this file strictly checks fas' names)."""
    shapes = {}

    def bn(p, c):
        shapes.update({f"{p}.{k}": (c,) for k in ("weight", "bias", "running_mean", "running_var")})
        shapes[f"{p}.num_batches_tracked"] = ()

    def conv(p, cout, cin, k):
        shapes[f"{p}.weight"] = (cout, cin, k, k)

    def conv_bn(p, cin, cout, k):
        conv(f"{p}.conv", cout, cin, k)
        bn(f"{p}.bn", cout)

    conv("cp.resnet.conv1", 64, 3, 7)
    bn("cp.resnet.bn1", 64)
    cin = 64
    for layer, cout in enumerate((64, 128, 256, 512), 1):
        for block in (0, 1):
            p = f"cp.resnet.layer{layer}.{block}"
            conv(f"{p}.conv1", cout, cin, 3), bn(f"{p}.bn1", cout)
            conv(f"{p}.conv2", cout, cout, 3), bn(f"{p}.bn2", cout)
            if cin != cout:
                conv(f"{p}.downsample.0", cout, cin, 1), bn(f"{p}.downsample.1", cout)
            cin = cout
    for arm, c in (("arm16", 256), ("arm32", 512)):
        conv_bn(f"cp.{arm}.conv", c, 128, 3), conv(f"cp.{arm}.conv_atten", 128, 128, 1), bn(f"cp.{arm}.bn_atten", 128)
    conv_bn("cp.conv_head32", 128, 128, 3), conv_bn("cp.conv_head16", 128, 128, 3), conv_bn("cp.conv_avg", 512, 128, 1)
    conv_bn("ffm.convblk", 256, 256, 1), conv("ffm.conv1", 64, 256, 1), conv("ffm.conv2", 256, 64, 1)
    for head, c, mid in (("conv_out", 256, 256), ("conv_out16", 128, 64), ("conv_out32", 128, 64)):
        conv_bn(f"{head}.conv", c, mid, 3), conv(f"{head}.conv_out", 19, mid, 1)
    return shapes


def fabricate_parsing_weights(path: Path, seed: int = 0) -> Path:
    """A ``79999_iter.pth`` of random tensors with the released names and shapes (He-scaled convolutions and unit
    BN statistics, so that the logits are of order one and their argmax is not a coin toss of rounding)."""
    g = torch.Generator().manual_seed(seed)
    state = OrderedDict()
    for name, shape in released_shapes().items():
        leaf = name.rsplit(".", 1)[-1]
        if leaf == "num_batches_tracked":
            state[name] = torch.tensor(0)
        elif len(shape) == 4:
            state[name] = torch.randn(shape, generator=g) * (2 / (shape[1] * shape[2] * shape[3])) ** 0.5
        elif leaf in ("weight", "running_var"):
            state[name] = 1 + 0.1 * torch.rand(shape, generator=g)
        else:
            state[name] = 0.1 * torch.randn(shape, generator=g)
    torch.save(state, path)
    return path


@pytest.fixture(scope="module")
def parsing_weights(tmp_path_factory) -> Path:
    return fabricate_parsing_weights(tmp_path_factory.mktemp("parsing") / "79999_iter.pth")


def crops(astronaut_rgb, size: int = 64) -> list[np.ndarray]:
    import cv2

    face = astronaut_rgb[0:256, 100:356]
    return [cv2.resize(face, (size, size), interpolation=cv2.INTER_AREA), cv2.resize(astronaut_rgb, (size, size))]


def test_bisenet_loads_the_released_weights_strictly_and_parses_19_classes(parsing_weights):
    from fas.models.face_parsing import BiSeNet, TorchFaceParser, load_face_parser

    assert {k: tuple(v.shape) for k, v in BiSeNet().state_dict().items()} == released_shapes()
    parser = load_face_parser(parsing_weights)
    assert isinstance(parser, TorchFaceParser)
    assert parser(torch.zeros(2, 3, 128, 160)).shape == (2, 19, 128, 160)  # logits at the input's size


def test_onnx_parser_gives_the_torch_parsers_mask(parsing_weights, tmp_path, astronaut_rgb):
    from fas.models.face_parsing import OnnxFaceParser, export_onnx, face_region, load_face_parser, parsing_input

    torch_parser = load_face_parser(parsing_weights)
    onnx_parser = load_face_parser(export_onnx(torch_parser.net, tmp_path / "bisenet.onnx"))
    assert isinstance(onnx_parser, OnnxFaceParser)
    x = parsing_input(crops(astronaut_rgb))
    assert x.shape == (2, 3, 512, 512)
    by_torch, by_onnx = torch_parser(x), onnx_parser(x)
    assert by_onnx.shape == (2, 19, 512, 512) and torch.allclose(by_onnx, by_torch, atol=1e-3, rtol=1e-3)
    masks = face_region(by_torch, 64)
    assert masks.shape == (2, 64, 64) and 0 < masks.mean() < 1  # random weights: some pixels of each kind
    assert np.array_equal(face_region(by_onnx, 64), masks)


def test_missing_or_damaged_parsing_weights_say_which_file_and_where_they_come_from(tmp_path, class8_cache):
    from fas.cues import CueConfig, make_cues
    from fas.models.face_parsing import load_face_parser

    with pytest.raises(ValueError, match=r"nothere\.pth: no such file; .*79999_iter\.pth of "
                                         r"github\.com/zllrunning/face-parsing\.PyTorch"):
        load_face_parser(tmp_path / "nothere.pth")
    damaged = tmp_path / "79999_iter.pth"
    damaged.write_bytes(b"\x80\x02 not a state dict" * 10)
    with pytest.raises(ValueError, match=r"79999_iter\.pth: cannot be read as a PyTorch state dict"):
        load_face_parser(damaged)
    (tmp_path / "parser.onnx").write_bytes(b"garbage")
    with pytest.raises(ValueError, match=r"parser\.onnx: cannot be loaded as an ONNX model"):
        load_face_parser(tmp_path / "parser.onnx")
    cfg = CueConfig(generator=str(tmp_path), cache=str(class8_cache / "cache"), out=str(tmp_path / "cues"),
                    mask="parsing", parsing_weights=str(damaged))
    with pytest.raises(ValueError, match="cannot be read as a PyTorch state dict"):  # before any work
        make_cues(cfg)
    with pytest.raises(ValueError, match=r"mask 'parsing' needs parsing_weights \(--parsing-weights FILE\)"):
        make_cues(CueConfig(generator=str(tmp_path), cache=cfg.cache, out=cfg.out, mask="parsing"))
    with pytest.raises(ValueError, match=r"cue mask must be one of \('none', 'parsing', 'landmarks'\)"):
        make_cues(CueConfig(generator=str(tmp_path), cache=cfg.cache, out=cfg.out, mask="face"))


def test_make_cues_flags_come_from_the_config():
    import argparse

    from fas.config import add_config_flags, config_from_args
    from fas.cues import CueConfig

    parser = argparse.ArgumentParser()
    add_config_flags(parser, CueConfig)
    cfg = config_from_args(CueConfig, parser.parse_args(["--mask", "parsing", "--parsing-weights", "w.pth"]))
    assert (cfg.mask, cfg.parsing_weights) == ("parsing", "w.pth")


def frontal_points(yaw: float = 0.0, roll: float = 0.0) -> np.ndarray:
    """Five landmarks (normalised crop coordinates) of a face in the middle of a crop, turned by ``yaw`` and
    rolled by ``roll`` degrees."""
    from fas.data.pose import project

    points = project(yaw, 0, 640, 640) / 640
    c, s = np.cos(np.radians(roll)), np.sin(np.radians(roll))
    return (points - 0.5) @ np.array([[c, s], [-s, c]]) + 0.5


@pytest.mark.parametrize("yaw,roll", [(0, 0), (25, 0), (0, 30)])
def test_landmark_mask_covers_the_five_points_and_not_the_corners(yaw, roll):
    import cv2

    points = frontal_points(yaw, roll)
    mask = landmark_mask(points, 64)
    assert mask.dtype == np.uint8 and set(np.unique(mask)) == {0, 1}
    rows, cols = (points[:, 1] * 64).astype(int), (points[:, 0] * 64).astype(int)
    assert mask[rows, cols].tolist() == [1] * 5
    assert mask[[0, 0, -1, -1], [0, -1, 0, -1]].tolist() == [0] * 4
    hull = cv2.fillConvexPoly(np.zeros((64, 64), np.uint8), cv2.convexHull((points * 64).astype(np.int32)), 1)
    assert (mask >= hull).all()  # the hull, grown
    if roll == 0:  # the face's documented width: 2 x 1.1 eye distances along the eye line
        assert mask.sum(axis=1).max() == pytest.approx(2 * 1.1 * np.hypot(*(points[1] - points[0])) * 64, abs=2)


def test_box_mask_is_the_ellipse_inscribed_in_the_box():
    mask = box_mask((0.26, 0.13, 0.74, 0.87), 64)  # x from 16.64 to 47.36 px, y from 8.32 to 55.68 px
    # a pixel is in when its centre is: columns 17..46 and rows 8..55 at most
    assert mask[:, :17].sum() == mask[:, 47:].sum() == mask[:8].sum() == mask[56:].sum() == 0
    assert mask[32, 17] == mask[32, 46] == mask[8, 32] == mask[55, 32] == mask[32, 32] == 1
    assert mask[8, 17] == mask[55, 46] == 0  # the box's corners lie outside its ellipse
    assert np.array_equal(mask, mask[::-1]) and np.array_equal(mask, mask[:, ::-1])  # symmetric about the centre
    assert mask.sum() == pytest.approx(np.pi * 15.36 * 23.68, rel=0.02)


def test_face_geometry_from_the_cache_and_from_the_face_stage_agree(astronaut_rgb):
    """The cue job (a cache row: box in the frame, margin, landmarks in the crop) and Serve (the face stage's box and
    landmarks in the frame) place the face at the same place of the crop."""
    from fas.data.faces import detect_and_crop

    assert geometry_from_row(True, [100, 50, 200, 150], None, 0.2, 112).box == pytest.approx((1 / 7, 1 / 7, 6 / 7,
                                                                                               6 / 7))
    assert geometry_from_row(False, [0, 0, 640, 480], None, 0.2, 112) == FaceGeometry()  # the crop is the frame
    detector = LandmarkFaces()
    res = detect_and_crop(detector, astronaut_rgb, margin=0.2, size=112, no_face="keep")
    row = geometry_from_row(res.detected, list(res.box), res.crop_landmarks().reshape(-1).tolist(), 0.2, 112)
    face = {"detected": True, "box": list(res.box), "landmarks": res.landmarks.tolist(), "width": 512, "height": 512}
    served = geometry_from_face(face, 0.2)
    assert served.box == pytest.approx(row.box) and np.allclose(served.landmarks, row.landmarks, atol=1e-5)
    assert np.array_equal(landmark_mask(served.landmarks, 64), landmark_mask(row.landmarks, 64))
    assert geometry_from_face({"detected": False, "box": None}, 0.2) == FaceGeometry()


def test_masked_cue_is_zero_outside_and_the_standardised_residual_inside():
    g = torch.Generator().manual_seed(0)
    x, recon = torch.rand(3, 3, 32, 32, generator=g) * 2 - 1, torch.rand(3, 3, 32, 32, generator=g) * 2 - 1
    mask = torch.from_numpy(np.stack([box_mask((0.2, 0.1, 0.8, 0.9), 32)] * 3))
    cue, rms = masked_cue(x, recon, mask)
    inside = mask.bool().unsqueeze(1).expand_as(cue)
    assert (cue[~inside] == 0).all()
    residual = x - recon
    for i in range(3):  # inside: (residual - its mean over the face) / its std over the face
        r = residual[i][inside[i]]
        assert torch.allclose(cue[i][inside[i]], (r - r.mean()) / r.std(), atol=1e-5)
        assert rms[i] == pytest.approx(float(r.pow(2).mean().sqrt()), rel=1e-5)
    full_cue, full_rms = masked_cue(x, recon, torch.ones(3, 32, 32))
    plain_cue, plain_rms = anomalous_cue(x, recon)
    assert torch.allclose(full_cue, plain_cue, atol=1e-5) and torch.allclose(full_rms, plain_rms)


class LandmarkFaces:
    """A landmark detector (the real one, YuNet, needs its ONNX file): one frontal face in the frame's middle."""

    name = "yunet"

    def detect_faces(self, rgb):
        from fas.data.pose import project

        h, w = rgb.shape[:2]
        return [((w // 4, h // 4, 3 * w // 4, 3 * h // 4), project(0, 0, w, h))]


def generator_folder(dfg_run) -> Path:
    from fas.cues import latest_generator_checkpoint

    cfg, _ = dfg_run
    return latest_generator_checkpoint(Path(cfg.engine.storage_path) / "dfg")


def test_cue_maker_masks_reproduce_the_unmasked_cue_inside_the_face(dfg_run, class8_cache, parsing_weights):
    from fas.cues import CueGenerator, decode_cues
    from fas.data.cache import read_cache_table
    from fas.methods.dfg.generator import CueMaker
    from fas.models.face_parsing import face_masks

    table = read_cache_table(class8_cache / "cache", columns=["frame_id", "image"]).slice(0, 2)
    images, keys = table["image"].to_pylist(), table["frame_id"].to_pylist()
    folder = generator_folder(dfg_run)
    plain = decode_cues(CueMaker(folder, "cpu", ddim_steps=5)(images, keys)[0])
    faces = [FaceGeometry(landmarks=tuple(map(tuple, frontal_points()))), FaceGeometry()]
    for mask, sources in (("landmarks", ["landmarks", "box"]), ("parsing", ["parsing"] * 2)):
        maker = CueMaker(folder, "cpu", ddim_steps=5, mask=mask, parsing_weights=str(parsing_weights))
        out = maker.columns(images, keys, faces)
        assert out["cue_mask_source"] == sources
        masks, cues = decode_masks(out["cue_mask"]), decode_cues(out["cue"])
        if mask == "parsing":  # the parser's face classes on the generator's input
            assert np.array_equal(masks, face_masks(maker.masker.parser, maker.transform.decode_each(images)[0], 64))
        else:
            assert np.array_equal(masks[0], landmark_mask(frontal_points(), 64).astype(bool))
            assert np.array_equal(masks[1], box_mask((0, 0, 1, 1), 64).astype(bool))
        inside = np.broadcast_to(masks[:, None], cues.shape)
        assert (cues[~inside] == 0).all()
        for i in range(2):  # the same reconstruction (same seeds): the plain cue restandardised over the face
            u = plain[i][inside[i]]
            assert np.allclose(cues[i][inside[i]], (u - u.mean()) / u.std(ddof=1), atol=2e-2)
    # Serve's cue path with a model's cue settings: the same masks from the same face geometry
    served = CueGenerator(str(folder), {"noise_step": maker.noise_step, "ddim_steps": 5, "mask": "landmarks"}, "cpu")
    with pytest.raises(ValueError, match="pass each crop's face geometry"):
        served(images)
    cues = decode_cues(served(images, faces))
    outside = ~np.broadcast_to(np.stack([landmark_mask(frontal_points(), 64), box_mask((0, 0, 1, 1), 64)])[:, None]
                               .astype(bool), cues.shape)
    assert (cues[outside] == 0).all() and (cues[~outside] != 0).mean() > 0.99


def landmark_cache(class8_cache: Path, out: Path, rows: int = 6) -> Path:
    """Part of the CLASS-8 data prepared as `fas prepare` does, by a landmark detector (in this process: the fake
    detector cannot reach Ray's actors)."""
    from fas.data.cache import FrameStage, PrepareConfig, ShardWriter, finish, fresh_output
    from fas.data.manifest import read_manifest

    manifest = read_manifest(class8_cache / "class8.parquet").slice(0, rows)
    cfg = PrepareConfig(manifest=str(class8_cache / "class8.parquet"), out=str(out), detector="none", size=112,
                        margin=0.25)
    stage = FrameStage(cfg)
    stage.detector = LandmarkFaces()
    writer = ShardWriter(fresh_output(out), cfg.rows_per_shard)
    writer.add(stage(manifest))
    finish(cfg, manifest, writer.close(), 0.0)
    return out


def check_masked_cues(table: pa.Table, source: str, expected_mask: np.ndarray) -> None:
    """Every frame has its mask, from ``source``, and a cue that is zero outside it."""
    from fas.cues import decode_cues

    assert table["cue_mask_source"].to_pylist() == [source] * table.num_rows
    masks, cues = decode_masks(table["cue_mask"].to_pylist()), decode_cues(table["cue"].to_pylist())
    assert masks.shape == expected_mask.shape == (table.num_rows, 64, 64) and np.array_equal(masks, expected_mask)
    assert (cues[~np.broadcast_to(masks[:, None], cues.shape)] == 0).all()


def test_cue_stage_masks_a_landmark_detectors_cache_by_its_landmarks(dfg_run, class8_cache, tmp_path):
    """The cue job's stage (``CueBatch``, here in this process) on a cache cut by a landmark detector."""
    from fas.cues import CueBatch, CueConfig, mask_crop
    from fas.data.cache import read_cache_table

    source = landmark_cache(class8_cache, tmp_path / "landmarks")
    frames = read_cache_table(source)
    assert frames["landmarks"].type == pa.list_(pa.float32(), 10) and frames["landmarks"].null_count == 0
    cfg = CueConfig(cache=str(source), ddim_steps=5, mask="landmarks", cpus_per_actor=2)
    crop = mask_crop(cfg)
    assert crop == {"margin": 0.25, "size": 112}  # from the source's cache.json
    table = CueBatch(cfg, str(generator_folder(dfg_run)), crop)(frames)
    expected = [landmark_mask(np.reshape(m, (5, 2)) / 112, 64) for m in frames["landmarks"].to_pylist()]
    check_masked_cues(table, "landmarks", np.stack(expected).astype(bool))


def test_cue_job_on_the_generated_data_masks_by_the_box_and_records_the_mask(dfg_run, class8_cache, tmp_path):
    """The generated data's cache is cut without a detector (whole frames, no landmarks): each crop's own ellipse."""
    import json

    from fas.cues import CueConfig, make_cues
    from fas.data.cache import read_cache_table

    out = tmp_path / "cues"
    summary = make_cues(CueConfig(generator=str(generator_folder(dfg_run)), cache=str(class8_cache / "cache"),
                                  out=str(out), ddim_steps=5, batch_size=16, cpus_per_actor=0.5, mask="landmarks"))
    table = read_cache_table(out)
    check_masked_cues(table, "box", np.stack([box_mask((0, 0, 1, 1), 64).astype(bool)] * table.num_rows))
    index = json.loads((out / "cache.json").read_text())
    assert (index["config"]["mask"], index["config"]["parsing_weights"]) == ("landmarks", None)
    assert index["mask_sources"] == summary["mask_sources"] == {"box": table.num_rows}
