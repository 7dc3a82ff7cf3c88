"""``fas predict MODEL_DIR PATH...``: liveness of local images and videos in this process, no Ray cluster.

It scores what Serve scores and evaluation evaluates: the model folder's predictor through the method registry
(or its ONNX export), the Serve face stage (``FacePipeline``: the data plane's detector and crop code), AG-FAS's
cues made by the folder's generator as Serve makes them (``fas.serve.load.LocalModel``), videos sampled as the
data plane samples them (``fas.data.video.sample_frames``) and aggregated per video as evaluation aggregates
(``fas.eval.aggregate``). Each frame gets its score, the decision at the threshold, the face box and the capture
quality warnings (``fas.quality``); each video its aggregated score and decision. An unreadable file is one row
with its error; the others go on.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import re
from pathlib import Path

import numpy as np

from fas.data.video import VIDEO_EXTENSIONS
from fas.quality import QualityConfig
from fas.serve.config import FaceConfig

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
FORMATS = ("table", "json", "csv")
CSV_COLUMNS = ("path", "level", "frame", "score", "decision", "threshold", "box", "warnings", "error")
DEV_SPLIT = "dev"  # the split evaluation chooses thresholds on (``fas.evaluate.EvaluateConfig.dev_split``)


@dataclasses.dataclass
class PredictConfig:
    """``fas predict`` options."""

    model: str = ""  # the model folder (model.pt, model_config.json, metrics.json)
    paths: list[str] = dataclasses.field(default_factory=list)  # images, videos, folders (recursed), globs
    format: str = "table"  # table | json | csv
    threshold: float | None = None  # overrides the folder's evaluated threshold
    operating_point: str | None = None  # bpcer=0.01: the threshold at that BPCER on the evaluation's dev scores
    dev_scores: str | None = None  # the evaluation's scores.csv (split, label, score); default MODEL/scores.csv
    frames: int = 10  # frames sampled per video, uniformly (as ``fas prepare`` samples)
    aggregation: str = "mean"  # per-video score from its frames' (``fas.eval.aggregate``: mean|median|max|min)
    input: str | None = None  # face | frame: the crop the model scores; default the folder's record, else face
    explain: str | None = None  # a folder for explanation PNGs (``fas.explain``)
    onnx: str | None = None  # score with this ``fas export`` file instead of the PyTorch weights
    device: str = "cpu"
    face: FaceConfig | None = None  # None: the folder's recorded face settings (``face`` in its meta), else defaults
    quality: QualityConfig = dataclasses.field(default_factory=QualityConfig)


def expand_paths(patterns: list[str]) -> list[Path]:
    """Files named by ``patterns``: files as given, folders recursed (images and videos in them, sorted), globs
    expanded; a pattern that names nothing stays as it is, so that its row says so."""
    media = IMAGE_EXTENSIONS + VIDEO_EXTENSIONS
    out: list[Path] = []
    for pattern in patterns:
        matches = [Path(p) for p in sorted(glob.glob(pattern, recursive=True))] or [Path(pattern)]
        for path in matches:
            if path.is_dir():
                out += sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in media)
            else:
                out.append(path)
    return out


def parse_operating_point(text: str) -> float:
    match = re.fullmatch(r"\s*bpcer\s*=\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*", text)
    if not match or not 0 <= float(match.group(1)) <= 1:
        raise ValueError(f"--operating-point {text!r}: expected bpcer=FRACTION with a fraction in [0, 1], "
                         f"e.g. bpcer=0.01")
    return float(match.group(1))


def read_dev_scores(folder: Path, path: str | None):
    """The evaluation's dev rows (a DataFrame of score, label; per video where the evaluation was), or an error
    saying what is missing."""
    import pandas as pd

    from fas.eval.aggregate import aggregate_by_video

    source = Path(path) if path else folder / "scores.csv"
    if not source.is_file():
        recorded = sorted(json.loads((folder / "metrics.json").read_text())) if (folder / "metrics.json").is_file() \
            else []
        raise ValueError(f"--operating-point needs the evaluation's dev scores and there are none at {source}: "
                         f"{folder}/metrics.json records only the chosen threshold (keys: {recorded or 'no file'}). "
                         f"Copy the evaluation's scores.csv (jobs/evaluate.py --out DIR writes DIR/scores.csv) into "
                         f"the folder, pass --dev-scores FILE, or give --threshold")
    df = pd.read_csv(source)
    missing = {"score", "label", "split"} - set(df.columns)
    if missing:
        raise ValueError(f"{source}: no column {sorted(missing)}; expected the scores.csv evaluation writes")
    dev = df[df["split"] == DEV_SPLIT]
    if dev.empty:
        raise ValueError(f"{source}: no rows of split {DEV_SPLIT!r} (splits: {sorted(set(df['split']))})")
    if "video" in dev.columns and "media" in dev.columns and (dev["media"] == "video").any():
        dev = aggregate_by_video(dev[["score", "label", "video"]])  # evaluation thresholds videos per video
    return dev[["score", "label"]].reset_index(drop=True)


def choose_threshold(cfg: PredictConfig) -> tuple[float | None, str | None]:
    """(threshold, rule) asked for on the command line; (None, None): the folder's evaluated one."""
    if cfg.threshold is not None and cfg.operating_point:
        raise ValueError("give --threshold or --operating-point, not both")
    if cfg.threshold is not None:
        return float(cfg.threshold), "--threshold"
    if not cfg.operating_point:
        return None, None
    from fas.eval.thresholds import select_threshold

    target = parse_operating_point(cfg.operating_point)
    choice = select_threshold(f"dev_bpcer:{target}", dev=read_dev_scores(Path(cfg.model), cfg.dev_scores))
    return choice.value, choice.rule


def face_settings(cfg: PredictConfig, meta: dict) -> tuple[FaceConfig, str]:
    """The face stage and the crop kind: the command line's, else the folder's record, else Serve's defaults."""
    from fas.config import from_dict

    recorded = dict(meta.get("face") or {})
    kind = cfg.input or recorded.pop("input", None) or "face"
    recorded.pop("input", None)
    face = cfg.face or from_dict(FaceConfig, recorded, f"{cfg.model} face settings")
    if kind not in ("face", "frame"):
        raise ValueError(f"--input {kind!r}: expected face or frame")
    return face, kind


def video_score(scores: list[float], how: str) -> float:
    """A video's score from its frames', by evaluation's own aggregation (its label column is a placeholder)."""
    import pandas as pd

    from fas.eval.aggregate import aggregate_by_video

    frame = pd.DataFrame({"score": scores, "label": 0, "video": "v"})
    return float(aggregate_by_video(frame, how)["score"].iloc[0])


def summarize_warnings(per_frame: list[list[dict]]) -> list[dict]:
    """A video's warnings: each code any frame has, with how many frames have it, in ``fas.quality.CODES`` order."""
    from fas.quality import CODES

    found = [w for frame in per_frame for w in frame]
    return [{"code": code, "detail": f"{sum(w['code'] == code for w in found)} of {len(per_frame)} frames: "
             f"{next(w['detail'] for w in found if w['code'] == code)}"}
            for code in CODES if any(w["code"] == code for w in found)]


class LocalPredict:
    """The model of one ``fas predict`` run, loaded once: face stage, predictor (+ cue generator), threshold."""

    def __init__(self, cfg: PredictConfig):
        from fas.methods import read_model_meta
        from fas.serve.config import ModelEntry, load_model_card
        from fas.serve.load import LocalModel
        from fas.serve.pipeline import FacePipeline

        self.cfg, self.meta = cfg, read_model_meta(cfg.model)
        threshold, rule = choose_threshold(cfg)
        self.face_cfg, kind = face_settings(cfg, self.meta)
        self.card = load_model_card(ModelEntry(name="predict", path=cfg.model, input=kind, threshold=threshold))
        self.threshold, self.rule = self.card.threshold, rule or self.card.threshold_rule
        self.model = LocalModel(self.card, self.face_cfg.margin, self.onnx_predictor(), cfg.device)
        self.categories = getattr(self.model.predictor, "categories", None) or self.card.categories
        self.face = FacePipeline(self.face_cfg, {kind}, cfg.quality)  # its answers carry the warnings

    def onnx_predictor(self):
        if not self.cfg.onnx:
            return None
        from fas.onnx_predictor import OnnxPredictor

        predictor = OnnxPredictor.load(self.cfg.onnx)
        if predictor.meta != self.meta:
            raise ValueError(f"{self.cfg.onnx} was exported from another model than {self.cfg.model} (its sidecar's "
                             f"meta differs from {self.cfg.model}/model_config.json)")
        return predictor

    def frames(self, path: Path) -> tuple[str, list[tuple[int | None, np.ndarray]]]:
        """("video", sampled frames) or ("image", [(None, frame)]); ``ValueError``/``OSError`` when unreadable."""
        from fas.data.video import sample_frames

        if path.suffix.lower() in VIDEO_EXTENSIONS:
            return "video", sample_frames(path, self.cfg.frames)
        return "image", [(None, self.face.decode(path.read_bytes()))]

    def crops(self, rgbs: list[np.ndarray]) -> tuple[list[bytes], list[dict]]:
        faces = [self.face.face(rgb) for rgb in rgbs]
        if self.card.input == "face":
            return [f["inputs"]["face"] for f in faces], faces
        return [self.face.frame(rgb) for rgb in rgbs], faces

    def score(self, path: Path, number: int = 0) -> list[dict]:
        """Rows of one file: a frame row per image or sampled video frame, then the video's own row; one error row
        when the file cannot be read."""
        from fas.serve.pipeline import present

        try:
            level, frames = self.frames(path)
        except (ValueError, OSError) as exc:
            level = "video" if path.suffix.lower() in VIDEO_EXTENSIONS else "image"
            return [self.row(path, level, None, None, None, [], error=str(exc) or type(exc).__name__)]
        crops, faces = self.crops([rgb for _, rgb in frames])
        columns = self.model.inputs(crops, faces)
        out = self.model.predictor.predict(*columns)
        rows = []
        for i, (index, _) in enumerate(frames):
            answer = present(out, i, self.categories)
            rows.append(self.row(path, level if level == "image" else "frame", index, answer, faces[i],
                                 faces[i]["warnings"]))
            if self.cfg.explain:
                self.write_explanation(path, number, index, answer, crops[i], columns[1][i] if len(columns) > 1
                                       else None)
        if level == "video":
            score = video_score([r["score"] for r in rows], self.cfg.aggregation)
            rows.append(self.row(path, "video", None, {"score": score}, None,
                                 summarize_warnings([r["warnings"] for r in rows]), frames=len(rows)))
        return rows

    def row(self, path: Path, level: str, frame, answer: dict | None, face: dict | None, warnings: list[dict],
            error: str = "", frames: int | None = None) -> dict:
        from fas.quality import decide

        score = None if answer is None else answer["score"]
        return {"path": str(path), "level": level, "frame": frame, "score": score,
                "decision": None if score is None else decide(score, self.threshold, self.cfg.quality.uncertain_band),
                "threshold": self.threshold, "box": None if face is None else face["box"],
                "num_faces": None if face is None else face["num_faces"], "frames": frames, "warnings": warnings,
                "error": error, "outputs": {k: v for k, v in (answer or {}).items() if k != "score"}}

    def write_explanation(self, path: Path, number: int, frame, answer: dict, crop: bytes, cue: bytes | None):
        """``DIR/<n>-<stem>[.f<frame>].<name>.png`` (and ``.json``) for one scored frame."""
        from fas.explain import explain, reconstructions

        decoded = recon = None
        if cue is not None:
            from fas.cues import decode_cues

            decoded = decode_cues([cue])[0]
            recon = reconstructions(self.model.cue_maker, [crop])[0]
        stem = Path(self.cfg.explain) / (f"{number:03d}-{path.stem}" + ("" if frame is None else f".f{frame:05d}"))
        stem.parent.mkdir(parents=True, exist_ok=True)
        for name, value in explain(answer, self.meta, crop, decoded, recon).items():
            if isinstance(value, bytes):
                Path(f"{stem}.{name}.png").write_bytes(value)
            else:
                Path(f"{stem}.{name}.json").write_text(json.dumps(value, indent=2))


def run_predict(cfg: PredictConfig) -> dict:
    """Score every file; returns the report (``rows``, counts, the threshold and where it came from)."""
    if cfg.format not in FORMATS:
        raise ValueError(f"format {cfg.format!r}: expected one of {list(FORMATS)}")
    if not cfg.paths:
        raise ValueError("no PATH given: name image files, video files, folders or globs")
    paths = expand_paths(cfg.paths)
    if any(p.suffix.lower() in VIDEO_EXTENSIONS for p in paths):  # evaluation's code (and imports) for videos only
        from fas.eval.aggregate import HOW

        if cfg.aggregation not in HOW:
            raise ValueError(f"--aggregation {cfg.aggregation!r}: expected one of {list(HOW)}")
    local = LocalPredict(cfg)
    rows = [row for n, path in enumerate(paths) for row in local.score(path, n)]
    errors = sum(1 for r in rows if r["error"])
    return {"model": str(cfg.model), "method": local.meta["method"], "onnx": cfg.onnx, "threshold": local.threshold,
            "threshold_rule": local.rule, "inputs": len(paths), "read": len(paths) - errors, "errors": errors,
            "rows": rows}


def box_text(box) -> str:
    return "" if box is None else " ".join(str(int(v)) for v in box)


def csv_rows(report: dict) -> list[dict]:
    return [{"path": r["path"], "level": r["level"], "frame": "" if r["frame"] is None else r["frame"],
             "score": "" if r["score"] is None else f"{r['score']:.6f}", "decision": r["decision"] or "",
             "threshold": f"{r['threshold']:.6f}", "box": box_text(r["box"]),
             "warnings": ";".join(w["code"] for w in r["warnings"]), "error": r["error"]} for r in report["rows"]]


def format_report(report: dict, fmt: str) -> str:
    """The report as a table (default), JSON or CSV (one line per frame, video and unreadable file)."""
    if fmt == "json":
        return json.dumps(report, indent=2)
    rows = csv_rows(report)
    if fmt == "csv":
        import csv
        import io

        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, CSV_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return buffer.getvalue().rstrip("\n")
    widths = {c: max([len(c)] + [len(str(r[c])) for r in rows]) for c in CSV_COLUMNS if c != "threshold"}
    lines = ["  ".join(c.ljust(w) for c, w in widths.items()).rstrip()]
    lines += ["  ".join(str(r[c]).ljust(w) for c, w in widths.items()).rstrip() for r in rows]
    lines.append(f"{report['inputs']} inputs, {report['read']} read, {report['errors']} unreadable; threshold "
                 f"{report['threshold']:.4f} ({report['threshold_rule']}); model {report['model']} "
                 f"({report['method']}{', ONNX ' + report['onnx'] if report['onnx'] else ''})")
    return "\n".join(lines)
