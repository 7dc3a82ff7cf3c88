"""The papers' cross-dataset and unseen-data protocols end to end on generated data: stand-ins of the public datasets
(`fas synth --public`, each in its own layout and file names) read by their readers, merged into one cache, and
CLIPC8 (fine-tuned and zero-shot) and a model trained for AG-FAS's unseen-data protocol reported per dataset."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from fas.data.synth_public import CROSS_SETS, UNSEEN_SETS, mask_frames, wax_figure

@pytest.mark.parametrize("number", [1, 2, 3])
def test_masks_and_wax_change_the_face_only_and_each_in_its_own_direction(number):
    """Thatsmyface's printed resin is less saturated than skin, REAL-f's silicone pinker, a wax figure warmer than
    the same person's photo; nothing outside the face (and its edge) changes."""
    from fas.data import synth as S
    from fas.data.synth_public import MASK_MAKERS, _head_region, mask_material

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


@pytest.fixture(scope="module")
def public_cache(ray_local, tmp_path_factory):
    """Every generated public dataset (and OULU-NPU) read by its reader and prepared into one cache."""
    from fas.cli import main
    from fas.data.synth import generate

    root = tmp_path_factory.mktemp("public")
    data, manifests = root / "data", root / "manifests"
    summary = generate(data, seed=0, size="tiny", public=True)
    readers = {"oulu_npu": data / "oulu_npu", **{name: data / "public" / name for name in summary["public"]}}
    for name, folder in readers.items():
        assert main(["manifest", name, str(folder), "--out", str(manifests / f"{name}.parquet")]) == 0
    assert main(["prepare", *(str(manifests / f"{name}.parquet") for name in readers), "--out", str(root / "cache"),
                 "--detector", "none", "--size", "64", "--frames", "3", "--face-workers", "1"]) == 0
    return root


def test_the_cache_holds_every_dataset_counted_by_source(public_cache):
    summary = json.loads((public_cache / "cache" / "cache.json").read_text())
    per_source = {Path(path).stem: counts for path, counts in summary["sources"].items()}
    assert set(per_source) == {"oulu_npu", *CROSS_SETS, *UNSEEN_SETS}
    assert per_source["wffd"] == {"domains": ["wffd"], "samples": 8, "real": 4, "attack": 4}
    assert per_source["nuaa"] == {"domains": ["nuaa"], "samples": 12, "real": 6, "attack": 6}
    assert summary["skipped_files"] == []


@pytest.mark.slow
def test_agfas_unseen_runs_on_generated_data(public_cache, tmp_path):
    """AG-FAS itself: the generator trained on the sources' real faces, cues of every frame made by it, OA-Net
    trained on M, C, I and O, then one report per unseen dataset."""
    from fas.engine import train
    from fas.eval.protocols import AGFAS_UNSEEN_DOMAINS, PUBLISHED
    from fas.evaluate import EvaluateConfig, evaluate
    from fas.methods import get_method

    assert set(UNSEEN_SETS) == set(AGFAS_UNSEEN_DOMAINS)
    cache, runs = public_cache / "cache", tmp_path / "runs"
    tiny = dict(storage_path=str(runs), protocol="agfas_unseen", steps=2, checkpoint_every=2, num_workers=1,
                cpus_per_worker=0.9)
    generator = train(get_method("dfg").load_config("dfg_tiny.yaml", {
        **tiny, "cache": str(cache), "name": "generator", "vae_fit_steps": 2, "vae_fit_images": 32}))
    oanet = train(get_method("oanet").load_config("oanet_tiny.yaml", {
        **tiny, "cache": str(cache), "name": "oanet", "generator": generator.checkpoint.path, "ddim_steps": 2}))
    cues = runs / "oanet" / "cues"
    assert json.loads((cues / "cache.json").read_text())["generator"] == generator.checkpoint.path
    out = tmp_path / "eval"
    metrics = evaluate(EvaluateConfig(checkpoint=oanet.checkpoint.path, cache=str(cues), out=str(out),
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


@pytest.mark.slow
def test_clipc8_cross_dataset_table_fine_tuned_and_zero_shot(public_cache, class8_cache, tmp_path):
    """CLIPC8's cross-dataset evaluation: fine-tuned on CLASS-8, and the pretrained model without fine-tuning, each
    scored on NUAA, CASIA-FASD, Replay-Attack, OULU-NPU and MSU-MFSD with one block per dataset."""
    import open_clip
    import torch

    from fas.cli import main
    from fas.config import from_dict
    from fas.engine import train
    from fas.eval.protocols import CLIPC8_ZERO_SHOT_DOMAINS
    from fas.evaluate import EvaluateConfig, evaluate
    from fas.methods.clipc8.config import CLIPC8Config
    from fas.methods.clipc8.model import create_clipc8

    cfg = from_dict(CLIPC8Config, dict(cache=str(class8_cache / "cache"), storage_path=str(tmp_path / "runs"),
                                       name="cross", model="clipc8-tiny", pretrained=None, epochs=1, lr=3e-4,
                                       num_workers=1, cpus_per_worker=1.0, batch_size=16))
    fine_tuned = Path(train(cfg).checkpoint.path)
    torch.manual_seed(3)
    create_clipc8("clipc8-tiny", None)  # registers our tiny open_clip configs (the method's model file does)
    torch.save(open_clip.create_model("clipc8-tiny").state_dict(), tmp_path / "clip.pt")
    assert main(["zero-shot", "--model", "clipc8-tiny", "--pretrained", str(tmp_path / "clip.pt"),
                 "--out", str(tmp_path / "zero_shot")]) == 0
    # bona fide / attack videos each dataset offers outside its dev split (the protocol's cross-domain rows)
    expected = {"nuaa": (6, 6), "casia_fasd": (6, 12), "replay_attack": (4, 8), "oulu_npu": (2, 4),
                "msu_mfsd": (6, 12)}
    blocks = {}
    for name, checkpoint in (("fine-tuned", fine_tuned), ("zero-shot", tmp_path / "zero_shot")):
        metrics = evaluate(EvaluateConfig(checkpoint=str(checkpoint), cache=str(public_cache / "cache"),
                                          out=str(tmp_path / name), protocol="clipc8_zeroshot", threshold_rule="0.5"))
        assert list(metrics["per_domain"]) == list(CLIPC8_ZERO_SHOT_DOMAINS)
        assert {d: (b["n_real"], b["n_attack"]) for d, b in metrics["per_domain"].items()} == expected
        assert {b["threshold"] for b in metrics["per_domain"].values()} == {0.5}
        blocks[name] = metrics["per_domain"]
    assert blocks["fine-tuned"] != blocks["zero-shot"]  # two models, two tables
    assert "| method | nuaa | casia_fasd | replay_attack | oulu_npu | msu_mfsd |" in (
        tmp_path / "zero-shot" / "report.md").read_text()
