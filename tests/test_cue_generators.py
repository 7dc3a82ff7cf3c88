"""MemAE and Deep SVDD as AG-FAS cue generators (Table IV): their pieces against the papers, then each trained on
the generated real faces by 2 DeepSpeed workers, its cues made by the cue job, and OA-Net trained on them and
served from its folder."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pytest
import torch
from sklearn.metrics import roc_auc_score

from fas.methods import deepsvdd, memae
from fas.methods.deepsvdd.model import DeepSVDD, svdd_center, svdd_loss
from fas.methods.memae.model import Memory, addressing_entropy, hard_shrink

METHODS = (memae.METHOD.name, deepsvdd.METHOD.name)  # importing them registers them, as fas.methods.BUILTIN will
# MemAE shorter than its tiny config (a step re-reads the 9 real training faces: ~0.4 s on 2 CPUs); Deep SVDD its
# tiny config (40 autoencoder steps, then 20 one-class ones), stopped once inside the pre-training and resumed
RUNS = {"memae": dict(steps=24, checkpoint_every=12), "deepsvdd": {}}
MIDWAY = {"deepsvdd": 20}


# ------------------------------------------------------------------------------------------------- MemAE pieces
def test_hard_shrinkage_zeroes_weights_up_to_lambda_and_renormalises():
    weights = torch.tensor([[0.5, 0.3, 0.15, 0.05], [0.4, 0.35, 0.15, 0.1]])
    shrunk = hard_shrink(weights, threshold=0.1)
    # kept weights pass unchanged (w * (w - l) / |w - l|), the rest (0.05, and 0.1 = lambda itself) become 0
    assert torch.allclose(shrunk[0], torch.tensor([0.5, 0.3, 0.15, 0.0]) / 0.95)
    assert torch.allclose(shrunk[1], torch.tensor([0.4, 0.35, 0.15, 0.0]) / 0.9)
    assert torch.allclose(shrunk.sum(dim=1), torch.ones(2))


def test_addressing_entropy_is_the_mean_entropy_of_the_rows():
    weights = torch.tensor([[0.5, 0.5, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0], [0.25] * 4])
    assert addressing_entropy(weights).item() == pytest.approx((math.log(2) + 0.0 + math.log(4)) / 3)


def test_cosine_addressing_ignores_the_query_length_and_defaults_lambda_to_one_over_n():
    torch.manual_seed(0)
    memory = Memory(slots=20, dim=8)
    z = torch.randn(2, 8, 3, 3)
    readout, weights = memory(z)
    assert memory.threshold == 1 / 20 and readout.shape == z.shape and weights.shape == (18, 20)
    assert torch.allclose(weights.sum(dim=1), torch.ones(18)) and (weights[weights > 0] > 1 / 20).all()
    assert torch.allclose(memory(3.0 * z)[1], weights)
    assert torch.allclose(readout[1, :, 2, 0], weights[1 * 9 + 2 * 3 + 0] @ memory.items)  # query (b=1, h=2, w=0)
    with pytest.raises(ValueError, match="addressing must be one of"):
        Memory(4, 8, addressing="l2")


# --------------------------------------------------------------------------------------------- Deep SVDD pieces
def test_deepsvdd_centre_is_the_mean_encoding_pushed_out_of_eps():
    encodings = torch.tensor([[0.05, -0.3, 0.0, -0.02, 0.5], [0.05, -0.1, 0.0, 0.0, -0.3]])
    # means 0.05, -0.2, 0, -0.01, 0.1: the two inside (-0.1, 0.1) go out to +-0.1 by their sign, 0 stays 0
    assert torch.allclose(svdd_center(encodings, eps=0.1), torch.tensor([0.1, -0.2, 0.0, -0.1, 0.1]))
    assert svdd_loss(encodings, torch.zeros(5)).item() == pytest.approx(
        float((encodings ** 2).sum(dim=1).mean()))


def test_deepsvdd_encoder_has_no_bias_terms():
    model = DeepSVDD(image_size=32, channels=[8, 16], rep_dim=64)
    with_parameters = [m for m in model.encoder.modules() if list(m.parameters(recurse=False))]
    assert {type(m) for m in with_parameters} == {torch.nn.Conv2d, torch.nn.Linear}
    assert all(m.bias is None for m in with_parameters)
    assert all(name.endswith("weight") for name, _ in model.encoder.named_parameters())
    with pytest.raises(ValueError, match="rep_dim 60"):
        DeepSVDD(image_size=32, channels=[8, 16], rep_dim=60)


def test_deepsvdd_schedule_freezes_the_decoder_in_the_one_class_phase():
    """The task's own optimizer and scheduler, stepped as the engine steps them: both groups at ae_lr until the
    pre-training milestone, x gamma after it; from pretrain_steps the decoder at 0 and the encoder at lr, x gamma
    after the one-class milestone."""
    from fas.methods import get_method
    from fas.methods.base import WorkerContext
    from fas.methods.deepsvdd.task import DeepSVDDTask

    cfg = get_method("deepsvdd").load_config("deepsvdd_tiny.yaml")  # 40 pre-training steps, milestones 30 and 10
    ctx = WorkerContext(rank=0, world_size=1, device=torch.device("cpu"), dtype=torch.float,
                        rng=np.random.default_rng(0), open_stream=None)
    task = DeepSVDDTask(cfg, ctx)
    lrs = []
    for _ in range(cfg.engine.steps):
        lrs.append([group["lr"] for group in task.optimizer.param_groups])
        task.optimizer.step()  # no gradients: nothing moves; the engine steps the optimizer first
        task.scheduler.step()
    ae, low = cfg.ae_lr, [pytest.approx(cfg.ae_lr * cfg.lr_gamma)] * 2
    assert cfg.ae_lr != cfg.lr and lrs[0] == lrs[29] == [ae, ae] and lrs[30] == lrs[39] == low
    assert lrs[40] == lrs[49] == [cfg.lr, 0.0] and lrs[50] == lrs[59] == [pytest.approx(cfg.lr * cfg.lr_gamma), 0.0]


def test_deepsvdd_is_a_step_run_with_a_pretraining_length():
    from fas.methods import get_method
    from fas.methods.deepsvdd.task import prepare

    method = get_method("deepsvdd")
    cfg = method.load_config("deepsvdd_tiny.yaml")
    with pytest.raises(ValueError, match="Deep SVDD is a step run"):
        prepare(dataclasses.replace(cfg, engine=dataclasses.replace(cfg.engine, steps=None, epochs=3)))
    with pytest.raises(ValueError, match="pretrain_steps must be >= 0"):
        prepare(method.load_config("deepsvdd_tiny.yaml", {"pretrain_steps": -1}))
    stopped_early = method.load_config("deepsvdd_tiny.yaml", {"steps": 10})  # resumed later past pretrain_steps
    assert prepare(stopped_early) is stopped_early


def test_an_untrained_folder_gives_face_masked_cues_and_refuses_another_methods_folder(tmp_path, astronaut_rgb):
    """The face-masked cue (``mask``, DFG's option) with these generators: zero outside the face region, which
    without a detected face is the ellipse inscribed in the crop."""
    import cv2

    from fas.cues import decode_cues, load_cue_maker
    from fas.methods import get_method
    from fas.methods.cue_maker import generator_meta, write_generator
    from fas.methods.deepsvdd.generator import CueMaker as DeepSVDDCueMaker
    from fas.methods.dfg.mask import decode_masks
    from fas.methods.memae.model import create_memae, read_model_config

    cfg = get_method("memae").load_config("memae_tiny.yaml")
    torch.manual_seed(0)
    write_generator(tmp_path / "memae", create_memae(cfg.model).state_dict(),
                    generator_meta("memae", cfg, read_model_config(cfg.model)))
    crop = cv2.imencode(".png", cv2.resize(astronaut_rgb, (112, 112))[:, :, ::-1])[1].tobytes()
    columns = load_cue_maker(tmp_path / "memae", "cpu", mask="landmarks").columns([crop, b"junk"], ["a", "b"])
    assert columns["cue_mask_source"] == ["box", None] and columns["cue"][1] is None
    mask, cue = decode_masks(columns["cue_mask"][:1])[0], decode_cues(columns["cue"][:1])[0]
    assert mask.shape == (64, 64) and 0 < mask.mean() < 1 and not mask[0, 0] and mask[32, 32]
    assert (cue[:, ~mask] == 0).all() and (cue[:, mask] != 0).all()
    with pytest.raises(ValueError, match="holds a 'memae' generator, not a deepsvdd one"):
        DeepSVDDCueMaker(tmp_path / "memae", "cpu")


# ---------------------------------------------------------------------------------------- trained (Ray, slow)
@dataclasses.dataclass
class Trained:
    method: object
    cfg: object
    run: object  # the final TrainRun
    storage: Path

    @property
    def folder(self) -> Path:  # the run folder: what `generator:` and `--generator` take
        return self.storage / self.cfg.engine.name

    def checkpoint(self, step: int) -> Path:
        return self.folder / f"checkpoint_step_{step:06d}"

    def cue_maker(self, **settings):
        from fas.cues import load_cue_maker

        return load_cue_maker(self.run.checkpoint.path, "cpu", **settings)


@pytest.fixture(scope="module", params=METHODS)
def trained(request, class8_cache, tmp_path_factory) -> Trained:
    """The tiny config (``RUNS``' length) trained by 2 DeepSpeed workers; stopped at ``MIDWAY`` and resumed."""
    from fas.config import replace
    from fas.engine import train
    from fas.methods import get_method

    method = get_method(request.param)
    storage = tmp_path_factory.mktemp(f"{request.param}_runs")
    cfg = method.load_config(method.tiny_config, {"cache": str(class8_cache / "cache"), "storage_path": str(storage),
                                                  "name": request.param, "keep_checkpoints": 10,
                                                  **RUNS[request.param]})
    if request.param in MIDWAY:
        train(replace(cfg, steps=MIDWAY[request.param]))
    return Trained(method, cfg, train(cfg), storage)


@pytest.fixture(scope="module")
def oanet_run(trained, class8_cache, tmp_path_factory):
    """OA-Net's `generator:` route (oanet.yaml, the sweeps): the cue job (``make_cues`` with a ``CueConfig``) makes
    the cues of every CLASS-8 frame from the generator's run folder, then tiny OA-Net trains on them a few steps."""
    from fas.engine import train
    from fas.methods import get_method

    oanet = get_method("oanet")
    storage = tmp_path_factory.mktemp(f"oanet_on_{trained.method.name}")
    cfg = oanet.load_config(oanet.tiny_config, {"cache": str(class8_cache / "cache"), "generator": str(trained.folder),
                                                "storage_path": str(storage), "name": "oanet", "steps": 4,
                                                "checkpoint_every": 4})
    return train(cfg), storage / "oanet" / "cues"


def frames(cache: Path, split: str | None = None):
    """(frame ids, images, labels) of the cache's frames (of one split)."""
    from fas.data.cache import read_cache_table

    table = read_cache_table(cache, columns=["frame_id", "image", "label", "split"])
    if split:
        table = table.filter(pc.equal(table["split"], split))
    return table["frame_id"].to_pylist(), table["image"].to_pylist(), np.asarray(table["label"].to_pylist())


def untrained(trained: Trained, meta: dict) -> torch.nn.Module:
    """The run's initial weights: the engine seeds torch with the run's seed before every worker builds them."""
    from fas.methods.base import place, resolve

    torch.manual_seed(trained.cfg.engine.seed)
    return place(resolve(trained.method.cue_maker).build(meta), "cpu")


def reconstruction_errors(model, images, image_size: int) -> np.ndarray:
    """Mean squared residual per image of ``model``'s reconstructions, in [-1, 1] pixel units."""
    from fas.preprocess import SIGNED, Preprocess

    x = Preprocess(image_size, *SIGNED)(images)
    with torch.no_grad():
        return (x - model.reconstruct(x)).pow(2).flatten(1).mean(dim=1).numpy()


def cue_index(cues: Path) -> dict:
    import json

    return json.loads((cues / "cache.json").read_text())


@pytest.mark.slow
def test_training_resumes_and_learns_the_real_faces(trained, oanet_run, class8_cache):
    """After training, the dev split's real faces come back closer than from the untrained model, and the cue job's
    residual RMS (the trained model's, recomputed here) tells the dev split's real faces from its attacks."""
    import json

    state = json.loads((Path(trained.run.checkpoint.path) / "train_state.json").read_text())
    every, midway = trained.cfg.engine.checkpoint_every, MIDWAY.get(trained.method.name, 0)
    assert state["step"] == trained.cfg.engine.steps
    assert [h["step"] for h in state["history"]] == list(range(every, trained.cfg.engine.steps + 1, every))
    assert [h["resumed_from"] for h in state["history"]] == [0 if h["step"] <= midway else midway
                                                            for h in state["history"]]

    maker = trained.cue_maker()
    size = maker.meta["image_size"]
    _, images, labels = frames(class8_cache / "cache", "dev")
    error = reconstruction_errors(maker.model, images, size)
    before = reconstruction_errors(untrained(trained, maker.meta), images, size)
    assert error[labels == 1].mean() < before[labels == 1].mean()

    dev = cue_index(oanet_run[1])["separation"]["dev"]
    assert dev["frames"] == len(labels) and dev["auc"] == pytest.approx(roc_auc_score(labels, -np.sqrt(error)))
    assert dev["auc"] > 0.5


@pytest.mark.slow
def test_cue_job_covers_every_frame_and_a_crop_always_gets_the_same_cue(trained, oanet_run, class8_cache):
    from fas.cues import decode_cues
    from fas.data.cache import read_cache_table

    cues = oanet_run[1]
    summary = cue_index(cues)
    ids, images, _ = frames(class8_cache / "cache")
    assert summary["frames_written"] == summary["frames_with_cue"] == len(ids) and summary["skipped_frames"] == []
    assert summary["generator"] == str(trained.run.checkpoint.path)  # the run folder's latest checkpoint
    table = read_cache_table(cues, columns=["frame_id", "cue"])
    assert sorted(table["frame_id"].to_pylist()) == sorted(ids)
    by_id = dict(zip(table["frame_id"].to_pylist(), table["cue"].to_pylist()))

    maker = trained.cue_maker(noise_step=801, ddim_steps=5, seed=3)  # diffusion settings: accepted, unused
    batch = images[:6] + [b"not an image"]
    made, rms, errors = maker(batch, ids[:6] + ["broken"])
    again, again_rms, _ = maker(batch, ["other keys"] * 7)
    assert made[:6] == again[:6] and rms[:6] == again_rms[:6]  # no noise: byte-identical, whatever the keys
    assert made[6] is None and errors == [""] * 6 + ["undecodable image: bytes are not a decodable image"]
    alone = maker(images[:1], ids[:1])[0][0]  # its batch does not change a crop's cue (BatchNorm in eval)
    assert np.allclose(decode_cues([alone]), decode_cues(made[:1]), atol=2e-3)
    assert np.allclose(decode_cues([by_id[i] for i in ids[:6]]), decode_cues(made[:6]), atol=2e-3)
    size = maker.meta["image_size"]
    assert decode_cues(made[:6]).shape == (6, 3, size, size)


@pytest.mark.slow
def test_oanet_trained_on_its_cues_serves_from_its_folder(trained, oanet_run):
    """OA-Net's folder loads with ``load_predictor`` and scores frames; the generator it names (what Serve runs)
    makes the cues it was trained on again, so served scores are the scores of the cached cues."""
    from fas.cues import CueGenerator
    from fas.data.cache import read_cache_table
    from fas.methods import load_predictor

    run, cues = oanet_run
    predictor = load_predictor(run.checkpoint.path, "cpu")
    assert predictor.meta["cue"]["generator"] == str(trained.run.checkpoint.path)
    table = read_cache_table(cues, columns=["image", "cue"]).slice(0, 12)
    images, cached = table["image"].to_pylist(), table["cue"].to_pylist()
    served = CueGenerator(predictor.meta["cue"]["generator"], predictor.meta["cue"], "cpu")(images)
    scores = predictor.predict(images, cached)["score"]
    assert scores.shape == (12,)
    assert np.allclose(predictor.predict(images, served)["score"], scores, atol=1e-3)


@pytest.mark.slow
@pytest.mark.parametrize("trained", ["deepsvdd"], indirect=True)
def test_deepsvdd_centre_is_the_pretrained_encoders_mean_and_the_decoder_stays(trained, class8_cache):
    """The one-class phase's centre is the mean encoding of the training real faces by the pre-trained encoder;
    the decoder is the pre-trained one, to the bit; the encoder has moved towards the centre."""
    from fas.data.selection import selected_images
    from fas.methods.cue_maker import read_generator
    from fas.preprocess import SIGNED, Preprocess

    meta, pretrained = read_generator(trained.checkpoint(trained.cfg.pretrain_steps), "deepsvdd")
    _, final = read_generator(trained.run.checkpoint.path, "deepsvdd")
    assert torch.equal(pretrained["center"], torch.zeros_like(final["center"]))
    assert all(torch.equal(final[k], v) for k, v in pretrained.items() if k.startswith("decoder."))
    assert not torch.equal(final["encoder.fc.weight"], pretrained["encoder.fc.weight"])

    images = selected_images(str(class8_cache / "cache"), "train", limit=10_000, real_only=True)
    x = Preprocess(meta["image_size"], *SIGNED)(images)
    encodings = {}
    for name, state in (("pretrained", pretrained), ("final", final)):
        model = DeepSVDD.from_config(meta["architecture"]).eval()
        model.load_state_dict(state)
        with torch.no_grad():
            encodings[name] = model.encoder(x)
    center = final["center"]
    assert torch.allclose(center, svdd_center(encodings["pretrained"], trained.cfg.center_eps), atol=1e-5)
    assert svdd_loss(encodings["final"], center) < svdd_loss(encodings["pretrained"], center)
