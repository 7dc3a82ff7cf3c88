"""Issue 21's pictures of what a model looked at: attention rollout (CLIPC8), OA-Net's cross-attention over the cue,
the AG-FAS cue gallery and CLIPC8's attention page in an evaluation report."""

from __future__ import annotations

import base64
import json
import re

import numpy as np
import pandas as pd
import pytest
import torch

from fas.eval.attention import clip_rollout, oanet_cue_attention, rollout
from tests.test_serve import build_agfas_folder, build_clipc8_folder

# --- rollout arithmetic -----------------------------------------------------------------------------------------------


def uniform(layers: int, heads: int, n: int) -> list[torch.Tensor]:
    return [torch.full((heads, n, n), 1.0 / n) for _ in range(layers)]


def test_rollout_of_uniform_attention_is_the_hand_computed_mix_of_identity_and_uniform():
    # (I + U) / 2 per layer, U idempotent: the product over L layers is 0.5^L I + (1 - 0.5^L) U
    result = rollout(uniform(3, 2, 5))
    expected = 0.125 * torch.eye(5) + 0.875 * torch.full((5, 5), 0.2)
    assert torch.allclose(result, expected, atol=1e-7)
    assert torch.allclose(result.sum(dim=-1), torch.ones(5), atol=1e-7)


def test_rollout_of_identity_attention_is_the_identity_so_no_patch_reaches_the_class_token():
    result = rollout([torch.eye(4).expand(3, 4, 4)] * 2)
    assert torch.equal(result, torch.eye(4))


def test_rollout_averages_heads_and_multiplies_later_layers_on_the_left():
    first = torch.tensor([[[0.0, 1.0], [0.0, 1.0]], [[0.0, 1.0], [0.0, 1.0]]])  # both heads: all to token 1
    second = torch.tensor([[[1.0, 0.0], [1.0, 0.0]], [[1.0, 0.0], [0.0, 1.0]]])  # heads disagree on token 1's row
    # head means + identity, rows renormalised: [[.5, .5], [0, 1]] then [[1, 0], [.25, .75]]; product second @ first
    assert torch.allclose(rollout([first, second]), torch.tensor([[0.5, 0.5], [0.125, 0.875]]), atol=1e-7)


def test_rows_sum_to_one_for_any_row_stochastic_layers():
    layers = [torch.rand(4, 9, 9, generator=torch.Generator().manual_seed(i)).softmax(dim=-1) for i in range(6)]
    assert torch.allclose(rollout(layers).sum(dim=-1), torch.ones(9), atol=1e-6)


def test_rollout_without_layers_is_a_clear_error():
    with pytest.raises(ValueError, match="at least one layer"):
        rollout([])


# --- the maps of the real models --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def clip_visual():
    from fas.methods.clipc8.model import create_clipc8

    torch.manual_seed(0)
    return create_clipc8("clipc8-tiny", None)[0].visual.eval()


def zero_query_and_key(attention: torch.nn.MultiheadAttention) -> None:
    """Every query-key product 0: each query attends uniformly."""
    dim = attention.embed_dim
    attention.in_proj_weight.data[: 2 * dim] = 0
    attention.in_proj_bias.data[: 2 * dim] = 0


def attend_to(attention: torch.nn.MultiheadAttention, key: torch.Tensor, scale: float = 10.0) -> None:
    """Every query = scale * ``key``, keys = the (normed) tokens: all attention goes to the token equal to ``key``,
    none to zero tokens."""
    dim = attention.embed_dim
    attention.in_proj_weight.data[:dim] = 0
    attention.in_proj_bias.data[:dim] = scale * key
    attention.in_proj_weight.data[dim: 2 * dim] = torch.eye(dim)
    attention.in_proj_bias.data[dim: 2 * dim] = 0


def test_capturing_attention_leaves_the_features_unchanged(clip_visual):
    from fas.eval.attention import captured_attention

    image = torch.randn(1, 3, 112, 112, generator=torch.Generator().manual_seed(1))
    plain = clip_visual(image)
    with captured_attention(b.attn for b in clip_visual.transformer.resblocks) as layers:
        hooked = clip_visual(image)
    assert torch.allclose(plain, hooked, atol=1e-5)
    assert [tuple(w.shape) for w in layers] == [(1, 4, 50, 50)] * 4  # 4 blocks, 4 heads, class token + 7x7 patches
    assert torch.allclose(layers[0].sum(dim=-1), torch.ones(1, 4, 50), atol=1e-5)


def test_clip_rollout_of_uniform_attention_is_the_hand_computed_value_on_the_patch_grid(clip_visual):
    import copy

    visual = copy.deepcopy(clip_visual)
    for block in visual.transformer.resblocks:
        zero_query_and_key(block.attn)
    heat = clip_rollout(visual, torch.randn(1, 3, 112, 112))
    layers, tokens = 4, 50
    assert heat.shape == visual.grid_size == (7, 7)
    assert np.allclose(heat, (1 - 0.5 ** layers) / tokens, atol=1e-6)


def test_clip_rollout_peaks_at_the_patch_every_query_attends_to(clip_visual):
    import copy

    visual = copy.deepcopy(clip_visual)
    visual.positional_embedding.data.zero_()
    visual.class_embedding.data.zero_()
    image = torch.zeros(1, 3, 112, 112)
    image[:, :, 32:48, 80:96] = 1.0  # patch (row 2, column 5) of the 16 px grid: the only nonzero token
    with torch.no_grad():
        token = visual.conv1(image).flatten(2)[0, :, 2 * 7 + 5]
        key = visual.transformer.resblocks[0].ln_1(visual.ln_pre(token))
    for block in visual.transformer.resblocks:  # every block passes the tokens on unchanged and attends to the patch
        attend_to(block.attn, key)
        for linear in (block.attn.out_proj, block.mlp.c_proj):
            linear.weight.data.zero_()
            linear.bias.data.zero_()
    heat = clip_rollout(visual, image)
    assert np.unravel_index(heat.argmax(), heat.shape) == (2, 5)
    assert heat[2, 5] == pytest.approx(1 - 0.5 ** 4, abs=1e-3) and np.delete(heat.ravel(), 19).max() < 1e-3


def test_clip_rollout_wants_one_frame_of_an_open_clip_vit(clip_visual):
    with pytest.raises(ValueError, match="one preprocessed frame"):
        clip_rollout(clip_visual, torch.zeros(2, 3, 112, 112))
    with pytest.raises(ValueError, match="not an open_clip VisionTransformer"):
        clip_rollout(torch.nn.Linear(2, 2), torch.zeros(1, 3, 112, 112))


@pytest.fixture(scope="module")
def oanet():
    from fas.methods.oanet.model import create_oanet

    torch.manual_seed(0)
    return create_oanet("oanet-tiny", None, "oanet", None).eval()


def test_oanet_cue_attention_of_uniform_attention_is_one_over_the_cue_cells(oanet):
    import copy

    model = copy.deepcopy(oanet)
    for block in model.cross_blocks:
        zero_query_and_key(block.attn)
    heat = oanet_cue_attention(model, torch.randn(1, 3, 64, 64), torch.randn(1, 3, 64, 64))
    assert heat.shape == (model.cue_encoder.grid,) * 2 == (2, 2)
    assert np.allclose(heat, 0.25, atol=1e-6)


def test_oanet_cue_attention_peaks_at_the_cue_cell_every_query_attends_to(oanet):
    import copy

    model = copy.deepcopy(oanet)
    encoder = model.cue_encoder
    encoder.proj.weight.data.zero_()
    encoder.proj.bias.data.zero_()
    encoder.pos_embed.data.zero_()
    encoder.pos_embed.data[0, 3] = torch.randn(encoder.pos_embed.shape[-1], generator=torch.Generator().manual_seed(2))
    for block in model.cross_blocks:  # cue tokens: zero but cell (1, 1); every query asks for that cell
        with torch.no_grad():
            attend_to(block.attn, block.norm_kv(encoder.pos_embed[0, 3]))
    heat = oanet_cue_attention(model, torch.randn(1, 3, 64, 64), torch.randn(1, 3, 64, 64))
    assert np.unravel_index(heat.argmax(), heat.shape) == (1, 1) and heat[1, 1] == pytest.approx(1.0, abs=1e-4)


def test_oanet_cue_attention_needs_the_cross_attention_mode():
    from fas.methods.oanet.model import create_oanet

    with pytest.raises(ValueError, match="mode 'oanet'"):
        oanet_cue_attention(create_oanet("oanet-tiny", None, "image_only", None), torch.zeros(1, 3, 64, 64),
                            torch.zeros(1, 3, 64, 64))


def test_overlay_keeps_the_frame_where_the_map_is_zero_and_colours_its_peak():
    from matplotlib import colormaps

    from fas.eval.attention import overlay

    frame = np.full((32, 32, 3), 100, np.uint8)
    heat = np.zeros((4, 4), np.float32)
    assert np.array_equal(overlay(frame, heat), frame)
    heat[0, 0] = 3.0  # scaled to its maximum: the corner pixel gets the colour map's top, half blended
    peak = np.clip(0.5 * np.asarray(colormaps["jet"](1.0)[:3]) * 255 + 50, 0, 255).astype(np.uint8)
    far = np.clip(0.5 * np.asarray(colormaps["jet"](0.0)[:3]) * 255 + 50, 0, 255).astype(np.uint8)
    shown = overlay(frame, heat)
    assert shown.shape == frame.shape
    assert np.array_equal(shown[0, 0], peak) and np.array_equal(shown[31, 31], far)


# --- the report's pages -----------------------------------------------------------------------------------------------


def test_best_and_worst_picks_each_group_once():
    from fas.eval.gallery import best_and_worst

    scores = pd.DataFrame({"frame_id": list("abcdefgh"), "label": [1, 1, 1, 1, 0, 0, 0, 0],
                           "score": [0.9, 0.2, 0.6, 0.4, 0.1, 0.8, 0.3, 0.5]})
    chosen = best_and_worst(scores, per_group=1)
    assert chosen[["group", "frame_id"]].values.tolist() == [
        ["bona fide, best", "a"], ["bona fide, worst", "b"], ["attack, best", "e"], ["attack, worst", "f"]]
    assert best_and_worst(scores.iloc[[0, 4]], per_group=2)["frame_id"].tolist() == ["a", "e"]  # one group each


def synth_frames(size: int = 112) -> pd.DataFrame:
    """Four bona fide selfies and four attacks (recaptured screens, masks) of the generated data's renderers."""
    from fas.data.faces import encode_image
    from fas.data.synth import cat_face_mask, cat_real, cat_recaptured, make_subject, to_uint8

    rng, rows = np.random.default_rng(0), []
    for i in range(8):
        make, label, attack = [(cat_real, 1, "none"), (cat_recaptured, 0, "replay"), (cat_face_mask, 0, "print")][
            0 if i < 4 else 1 + i % 2]
        rgb = to_uint8(make(rng, make_subject(0, i % 4), size))
        rows.append({"frame_id": f"f{i:02d}", "image": encode_image(rgb), "label": label, "attack": attack})
    return pd.DataFrame(rows)


def write_cache(folder, frames: pd.DataFrame, index: dict | None = None) -> str:
    import pyarrow as pa
    import pyarrow.parquet as pq

    (folder / "shards").mkdir(parents=True)
    pq.write_table(pa.Table.from_pandas(frames, preserve_index=False), folder / "shards" / "part-0.parquet")
    (folder / "cache.json").write_text(json.dumps({"shards": ["part-0.parquet"], **(index or {})}))
    return str(folder)


def evaluated_report(tmp_path, folder, cache: str, frames: pd.DataFrame, columns: list[str]) -> str:
    """Score the frames with the model folder's predictor and write the report as ``fas evaluate`` does."""
    from fas.eval.report import evaluate_scores, write_results
    from fas.evaluate import model_pictures
    from fas.methods import load_predictor

    predictor = load_predictor(folder, device="cpu")
    scores = frames[["frame_id", "label", "attack"]].assign(
        score=predictor.predict(*[frames[c].tolist() for c in columns])["score"])
    metrics = evaluate_scores(scores, None, threshold_rule="0.5", interval=False)
    out = tmp_path / "eval"
    config = {"evaluate": {"checkpoint": str(folder), "cache": cache}, "model": predictor.meta}
    write_results(out, scores, metrics, config,
                  model_pictures=lambda where, threshold: model_pictures(where, scores, threshold, config))
    return out


def assert_linked_and_inlined(out, caption: str, name: str) -> None:
    png = (out / name).read_bytes()
    assert png[:4] == b"\x89PNG"
    assert f"![{caption}]({name})" in (out / "report.md").read_text()
    assert base64.b64encode(png).decode() in (out / "report.html").read_text()


def test_clipc8_report_has_the_attention_page_linked_and_inlined(tmp_path):
    from PIL import Image

    folder = tmp_path / "clipc8"
    folder.mkdir()
    build_clipc8_folder(folder, seed=0)
    frames = synth_frames()
    out = evaluated_report(tmp_path, folder, write_cache(tmp_path / "cache", frames), frames, ["image"])
    assert_linked_and_inlined(out, "CLIPC8 attention rollout (best and worst frames)", "attention.png")
    # 8 frames (2 per group) in columns, frame and overlay in rows: 1.25 in per frame + 1.4 in, 1.45 in per row + 0.9
    assert Image.open(out / "attention.png").size == (round(110 * (8 * 1.25 + 1.4)), round(110 * (2 * 1.45 + 0.9)))


def test_agfas_report_has_the_cue_gallery_and_its_reconstruction_is_the_one_the_cue_came_from(tmp_path):
    from fas.cues import decode_cues
    from fas.evaluate import model_pictures
    from fas.methods.oanet.pictures import gallery_generator
    from fas.explain import reconstructions
    from fas.methods.dfg.generator import CueMaker
    from fas.methods.dfg.model import anomalous_cue

    folder = tmp_path / "agfas"
    folder.mkdir()
    build_agfas_folder(folder, seed=0)
    frames = synth_frames(64)  # cues on a 2-step DDIM grid from t = 801 (the model's own says 3: the cache's rule)
    ids = frames["frame_id"].tolist()
    made = CueMaker(folder / "generator", "cpu", noise_step=801, ddim_steps=2, seed=0).columns(frames["image"], ids)
    frames = frames.assign(cue=made["cue"], cue_rms=made["cue_rms"])
    cache = write_cache(tmp_path / "cues", frames, {"generator": str(folder / "generator"),
                                                    "config": {"noise_step": 801, "ddim_steps": 2, "seed": 0}})
    out = evaluated_report(tmp_path, folder, cache, frames, ["image", "cue"])
    assert_linked_and_inlined(out, "AG-FAS cue gallery (best and worst frames)", "cue_gallery.png")
    generator = gallery_generator(folder, cache)  # the gallery's reconstruction, by frame id: the cue's own
    some = [0, 5, 6]
    recon = torch.from_numpy(reconstructions(generator, [frames["image"][i] for i in some], [ids[i] for i in some]))
    cue, _ = anomalous_cue(generator.maker.transform([frames["image"][i] for i in some]), recon)
    assert np.allclose(cue.numpy(), decode_cues([made["cue"][i] for i in some]), atol=5e-3)  # float16 storage
    (folder / "generator").rename(tmp_path / "moved")  # a gallery without its generator says so, and still draws
    (tmp_path / "again").mkdir()
    with pytest.warns(UserWarning, match=re.escape(f"no generator checkpoint in {folder / 'generator'}")):
        drawn = model_pictures(tmp_path / "again", pd.read_csv(out / "scores.csv"), 0.5,
                               {"evaluate": {"checkpoint": str(folder), "cache": cache}})
    assert drawn == {"AG-FAS cue gallery (best and worst frames)": "cue_gallery.png"}
    assert (tmp_path / "again" / "cue_gallery.png").read_bytes()[:4] == b"\x89PNG"
