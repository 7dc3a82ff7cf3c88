"""AG-FAS's unseen-data protocol end to end on generated data: the OCIM-shaped training domains and the five unseen
sets (written by `fas synth --unseen` in each dataset's own layout) read by their readers, merged into one cache,
a model trained on the four sources and one report per unseen dataset beside the published table."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from fas.data.synth_unseen import UNSEEN_SETS, mask_frames, wax_figure

@pytest.mark.parametrize("number", [1, 2, 3])
def test_masks_and_wax_change_the_face_only_and_each_in_its_own_direction(number):
    """Thatsmyface's printed resin is less saturated than skin, REAL-f's silicone pinker, a wax figure warmer than
    the same person's photo; nothing outside the face (and its edge) changes."""
    from fas.data import synth as S
    from fas.data.synth_unseen import MASK_MAKERS, _head_region, mask_material

    subject = S.make_subject(0, number)
    room = S.natural_background(np.random.default_rng(0), (96, 96))
    img, m = S.portrait(np.random.default_rng(3), subject, room, S.jitter_pose(np.random.default_rng(5), 96))
    region = _head_region(subject, m, img.shape[:2])
    outside = cv2.dilate((region > 0).astype(np.uint8), np.ones((5, 5), np.uint8)) == 0
    inside = region > 0.99
    saturation = {"skin": np.ptp(img[inside], axis=-1).mean()}
    red_blue = {"skin": (img[inside][:, 0] / img[inside][:, 2]).mean()}
    for maker in MASK_MAKERS:
        out = mask_material(img, region, subject, m, maker, np.random.default_rng(4))
        assert np.array_equal(out[outside], img[outside])
        saturation[maker] = np.ptp(out[inside], axis=-1).mean()
        red_blue[maker] = (out[inside][:, 0] / np.maximum(out[inside][:, 2], 1e-3)).mean()
    assert saturation["Thatsmyface"] < 0.7 * saturation["skin"] and red_blue["REAL-f"] > red_blue["skin"]
    wax, photo = wax_figure(np.random.default_rng(2), subject, 96), S.cat_real(np.random.default_rng(2), subject, 96)
    centre = (slice(30, 66), slice(30, 66))
    assert (wax[centre][..., 0] / wax[centre][..., 2]).mean() > (photo[centre][..., 0] / photo[centre][..., 2]).mean()
    assert np.array_equal(wax, wax_figure(np.random.default_rng(2), subject, 96))  # seeded: the same file each run
    assert not np.array_equal(mask_frames(np.random.default_rng(1), subject, room, 3, 96, "REAL-f")[0], img)


@pytest.mark.slow
def test_agfas_unseen_runs_on_generated_data(ray_local, tmp_path, capsys):
    from fas.cli import main
    from fas.config import from_dict
    from fas.data.synth import generate
    from fas.engine import train
    from fas.eval.protocols import AGFAS_UNSEEN_DOMAINS, PUBLISHED
    from fas.evaluate import EvaluateConfig, evaluate
    from fas.methods.pdle.config import PDLEConfig

    data, manifests = tmp_path / "data", tmp_path / "manifests"
    summary = generate(data, seed=0, size="tiny", unseen=True)
    assert set(summary["unseen"]) == set(UNSEEN_SETS) == set(AGFAS_UNSEEN_DOMAINS)
    sources = []
    for camera, domain in zip(("synth-cam-a", "synth-cam-b", "synth-cam-c"), ("msu_mfsd", "casia_fasd", "replay_attack")):
        assert main(["manifest", "class8", str(data / "class8" / camera), "--out", str(manifests / f"{domain}.parquet")]) == 0
        sources.append(f"{manifests / domain}.parquet={domain}")
    readers = {"oulu_npu": data / "oulu_npu", **{name: data / "unseen" / name for name in UNSEEN_SETS}}
    for name, root in readers.items():
        assert main(["manifest", name, str(root), "--out", str(manifests / f"{name}.parquet")]) == 0
        sources.append(str(manifests / f"{name}.parquet"))
    cache = tmp_path / "cache"
    assert main(["prepare", *sources, "--out", str(cache), "--detector", "none", "--size", "64", "--frames", "3",
                 "--face-workers", "1"]) == 0
    printed = capsys.readouterr().out
    assert f"source {manifests / 'wffd.parquet'}: wffd, 8 samples (4 bona fide, 4 attacks)" in printed

    cfg = from_dict(PDLEConfig, dict(cache=str(cache), storage_path=str(tmp_path / "runs"), name="unseen",
                                     model="pdle-tiny", pretrained=None, epochs=2, batch_size=32, lr=1e-3,
                                     image_size=64, crop_size=56, num_workers=1, cpus_per_worker=1.0,
                                     protocol="agfas_unseen"))
    checkpoint = Path(train(cfg).checkpoint.path)
    out = tmp_path / "eval"
    metrics = evaluate(EvaluateConfig(checkpoint=str(checkpoint), cache=str(cache), out=str(out),
                                      protocol="agfas_unseen"))
    videos = {"hkbu_mars": (2, 2), "wffd": (4, 4), "rose_youtu": (2, 6), "siw": (2, 4), "wmca": (2, 4)}
    assert {d: (b["n_real"], b["n_attack"]) for d, b in metrics["per_domain"].items()} == videos
    assert (metrics["n_real"], metrics["n_attack"]) == (12, 20)  # the pool of the five
    assert json.loads((out / "metrics.json").read_text())["published"] == json.loads(
        json.dumps(PUBLISHED["agfas_unseen"]))
    report = (out / "report.md").read_text()
    assert "| method | hkbu_mars | wffd | rose_youtu | siw | wmca |" in report
    assert "| AG-FAS (published) | 17.98% / 90.43% | 35.44% / 67.23% | 11.77% / 95.13% | 3.18% / 99.50% | " \
           "9.95% / 96.84% |" in report
