"""Generated stand-ins for the public datasets the papers evaluate on, each written in the layout its reader reads:
the cross-dataset sources (MSU-MFSD, CASIA-FASD, Replay-Attack, NUAA; OULU-NPU is ``fas.data.synth``'s own) and
AG-FAS's unseen sets (HKBU-MARs, WFFD, Rose-Youtu, SiW, WMCA), so that the cross-dataset and unseen-data protocols
run end to end on generated data (``fas synth OUT --public``).

Besides the attacks the generator already draws (halftone prints, screen replays), these sets need the two that
the OCIM training sets never show: a worn 3D mask (rigid, one expression for the whole video, a material that is
not skin, eye holes and an edge where the mask meets the neck) and a wax figure (waxy over-smooth skin, a warm cast,
glossy highlights, a museum's spotlight). Cartoons, as everything the generator draws; marked SYNTHETIC.
"""

from __future__ import annotations

import collections
import math
from pathlib import Path

import cv2
import numpy as np

from fas.data import synth as S

MASK_MAKERS = ("Thatsmyface", "REAL-f")  # HKBU-MARs V1+: half the subjects' masks by each maker
UNSEEN_SETS = ("hkbu_mars", "wffd", "rose_youtu", "siw", "wmca")
CROSS_SETS = ("msu_mfsd", "casia_fasd", "replay_attack", "nuaa")  # with OULU-NPU: M, C, I, O and NUAA


def _head_region(subject, m: np.ndarray, hw) -> np.ndarray:
    """The face ellipse of a placed portrait (float mask in the frame), where a mask or wax replaces skin."""
    canvas = np.zeros((S.FACE_PATCH, S.FACE_PATCH), np.float32)
    S._ellipse(canvas, S.FACE_CENTER, (S.FACE_HALF_HEIGHT * subject.width, S.FACE_HALF_HEIGHT), 1.0)
    return cv2.warpAffine(canvas, m, (hw[1], hw[0]), flags=cv2.INTER_LINEAR)


def _blend(img, changed, region) -> np.ndarray:
    return img * (1 - region[..., None]) + changed * region[..., None]


def _sheen(hw, points, sigma: float, strength: float) -> np.ndarray:
    out = np.zeros(hw, np.float32)
    for x, y in points:
        out += S._gauss_blob(hw, (x, y), sigma, sigma * 0.7)
    return strength * np.clip(out, 0, 1)


def mask_material(img, region, subject, m, maker: str, rng) -> np.ndarray:
    """A 3D mask over the face: Thatsmyface's printed resin (matte, halftone, desaturated) or REAL-f's silicone
    (smooth, a pink cast, a sheen); both with dark eye holes and a visible edge at the mask's border."""
    hw = img.shape[:2]
    marks = S.face_landmarks(subject)
    if maker == "Thatsmyface":
        grey = img.mean(-1, keepdims=True)
        changed = S.halftone(np.clip(grey + (img - grey) * 0.55, 0, 1), rng, 3.0, 0.35)
        changed = cv2.GaussianBlur(changed, (0, 0), 0.6) * 1.05
    else:
        changed = cv2.GaussianBlur(img, (0, 0), 1.4) * np.array([1.06, 0.95, 0.93], np.float32)
        nose, centre = S.map_point(m, marks["nose"]), S.map_point(m, marks["center"])
        changed = changed + _sheen(hw, [nose, (centre[0], centre[1] - 0.4 * hw[0] * 0.25)], hw[0] * 0.04, 0.25)[..., None]
    out = _blend(img, changed, region)
    scale = math.hypot(m[0, 0], m[1, 0])
    for eye in ("left_eye", "right_eye"):  # the wearer's eyes behind holes: a dark ring around each
        x, y = S.map_point(m, marks[eye])
        cv2.ellipse(out, (int(x), int(y)), (max(2, int(14 * scale)), max(1, int(8 * scale))), 0, 0, 360,
                    (0.05, 0.04, 0.04), max(1, int(3 * scale)), cv2.LINE_AA)
    edge = cv2.Canny((region > 0.5).astype(np.uint8) * 255, 50, 150) > 0
    out[cv2.dilate(edge.astype(np.uint8), np.ones((2, 2), np.uint8)) > 0] *= 0.55
    return out


def mask_frames(rng, subject, background, n: int, size: int, maker: str) -> list[np.ndarray]:
    """A person wearing a 3D mask: the head moves as a live one does, but the face never changes (one expression,
    no blink), and its material is the mask's."""
    base = S.jitter_pose(rng, size, 1.0, 0.03, 4.0)
    face_seed = int(rng.integers(1 << 31))
    ph = rng.uniform(0, 2 * np.pi, 3)
    frames = []
    for t in range(n):
        pose = S.Pose(cx=base.cx + 0.03 * size * math.sin(0.5 * t + ph[0]),
                      cy=base.cy + 0.015 * size * math.sin(0.7 * t + ph[1]), height=base.height,
                      angle=base.angle + 3.0 * math.sin(0.4 * t + ph[2]))
        img, m = S.portrait(np.random.default_rng(face_seed), subject, background, pose)
        frames.append(mask_material(img, _head_region(subject, m, img.shape[:2]), subject, m, maker, rng))
    return frames


def wax_figure(rng, subject, size: int) -> np.ndarray:
    """A photo of the subject's wax figure: waxy over-smooth skin with a warm cast and glossy highlights, flat
    shading, under a museum's spotlight on a dark backdrop."""
    backdrop = S.gradient((size, size), rng.uniform(0.1, 0.25, 3), rng.uniform(0.02, 0.1, 3))
    img, m = S.portrait(rng, subject, backdrop, S.jitter_pose(rng, size))
    region = _head_region(subject, m, img.shape[:2])
    waxy = cv2.bilateralFilter(img.astype(np.float32), 9, 0.15, 6) * np.array([1.1, 1.0, 0.82], np.float32)
    marks = S.face_landmarks(subject)
    shine = [S.map_point(m, marks[k]) for k in ("nose", "center")] + [S.map_point(m, marks["mouth"])]
    waxy = waxy + _sheen(img.shape[:2], shine, size * 0.035, 0.3)[..., None]
    out = _blend(img, waxy, region)
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    spot = np.exp(-(((xs - size / 2) / (0.45 * size)) ** 2 + ((ys - 0.35 * size) / (0.5 * size)) ** 2))
    return out * (0.55 + 0.6 * spot)[..., None]


# --- the trees ------------------------------------------------------------------------------------------------------

def _video(path: Path, frames, rng, camera) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    container = {".mov": "mov", ".mp4": "mp4"}.get(path.suffix, "avi")
    S.write_video(path, [S.apply_camera(f, camera, rng, jitter=False) for f in frames], container=container)


def _room(seed: int, *key) -> np.ndarray:
    return S.natural_background(np.random.default_rng([seed, 9101, *key]), (S.VIDEO_SIZE, S.VIDEO_SIZE))


def write_hkbu_mars(root: Path, seed: int, subjects: int, takes: int) -> collections.Counter:
    """``real/<NN>/<take>.avi`` and ``mask/<maker>/<NN>/<take>.avi``; odd subjects wear Thatsmyface masks."""
    counts = collections.Counter()
    for number in range(1, subjects + 1):
        subject, maker = S.make_subject(seed, 800 + number), MASK_MAKERS[(number + 1) % 2]
        for take in range(1, takes + 1):
            rng = np.random.default_rng([seed, 9102, number, take])
            room = _room(seed, number)
            _video(root / "real" / f"{number:02d}" / f"{take:02d}.avi",
                   S.real_frames(rng, subject, room, S.VIDEO_FRAMES, S.VIDEO_SIZE), rng, S.PHONES[1])
            _video(root / "mask" / maker / f"{number:02d}" / f"{take:02d}.avi",
                   mask_frames(rng, subject, room, S.VIDEO_FRAMES, S.VIDEO_SIZE, maker), rng, S.PHONES[1])
            counts["real"] += 1
            counts[f"mask_{maker}"] += 1
    return counts


def write_wffd(root: Path, seed: int, subjects: int) -> collections.Counter:
    """``images/real/<name>_1.png`` and ``images/wax/<name>_1.png``: each person beside their wax figure."""
    counts = collections.Counter()
    for number in range(1, subjects + 1):
        subject = S.make_subject(seed, 900 + number)
        rng = np.random.default_rng([seed, 9103, number])
        for kind, img in (("real", S.cat_real(rng, subject, S.IMAGE_SIZE)),
                          ("wax", wax_figure(rng, subject, S.IMAGE_SIZE))):
            path = root / "images" / kind / f"person_{number:02d}_1.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(path), S.apply_camera(img, S.CAMERAS["synth-cam-a"], rng)[..., ::-1])
            counts[kind] += 1
    return counts


ROSE_CODES = ("G", "Ps", "Vm", "Mc")  # genuine, still print, replay on a Mac screen, a cropped paper mask


def _rose_frames(code: str, rng, subject, room) -> list[np.ndarray]:
    n, size = S.VIDEO_FRAMES, S.VIDEO_SIZE
    if code == "G":
        return S.real_frames(rng, subject, room, n, size)
    if code == "Ps":
        return S.print_frames(rng, subject, room, n, size, 2)
    if code == "Vm":
        return S.replay_frames(rng, subject, room, n, size)
    return mask_frames(rng, subject, room, n, size, "Thatsmyface")  # paper: printed, matte, eye holes cut


def write_rose_youtu(root: Path, seed: int, subjects: int) -> collections.Counter:
    """``test/<subject>/<code>_NT_HW_wg_E_<subject>_1.avi`` for the genuine and three attack codes."""
    counts = collections.Counter()
    for number in range(1, subjects + 1):
        subject = S.make_subject(seed, 1000 + number)
        for code in ROSE_CODES:
            rng = np.random.default_rng([seed, 9104, number, ROSE_CODES.index(code)])
            _video(root / "test" / str(number) / f"{code}_NT_HW_wg_E_{number}_1.avi",
                   _rose_frames(code, rng, subject, _room(seed, 1000 + number)), rng, S.PHONES[2])
            counts[code] += 1
    return counts


def write_siw(root: Path, seed: int, subjects: int) -> collections.Counter:
    """``Test/{live,spoof}/<sss>/<sss>-1-<type>-1-1.mov``: a live video, a print and a replay per subject."""
    counts = collections.Counter()
    for number in range(1, subjects + 1):
        subject, sid = S.make_subject(seed, 1100 + number), f"{90 + number:03d}"
        room = _room(seed, 1100 + number)
        for kind, folder in ((1, "live"), (2, "spoof"), (3, "spoof")):
            rng = np.random.default_rng([seed, 9105, number, kind])
            frames = (S.real_frames(rng, subject, room, S.VIDEO_FRAMES, S.VIDEO_SIZE) if kind == 1 else
                      S.print_frames(rng, subject, room, S.VIDEO_FRAMES, S.VIDEO_SIZE, 2) if kind == 2 else
                      S.replay_frames(rng, subject, room, S.VIDEO_FRAMES, S.VIDEO_SIZE))
            _video(root / "Test" / folder / sid / f"{sid}-1-{kind}-1-1.mov", frames, rng, S.PHONES[1])
            counts[folder] += 1
    return counts


WMCA_KINDS = (("0_00", "bonafide"), ("2_12", "attack/3D/rigidmask"), ("3_01", "attack/2D/prints"))


def write_wmca(root: Path, seed: int, subjects: int) -> collections.Counter:
    """``WMCA_preprocessed_RGB/WMCA/face-station/<date>/<name>.hdf5`` (bob FrameContainers: ``Frame_<n>/array``,
    3 x H x W) and ``wmca-protocols-csv/PROTOCOL-grandtest.csv`` listing them all in eval: a bona fide video, a
    rigid mask and a print per client."""
    import h5py

    counts, lines = collections.Counter(), []
    for number in range(1, subjects + 1):
        subject, room = S.make_subject(seed, 1200 + number), _room(seed, 1200 + number)
        for kind, attack in WMCA_KINDS:
            rng = np.random.default_rng([seed, 9106, number, WMCA_KINDS.index((kind, attack))])
            n, size = S.VIDEO_FRAMES // 2, S.VIDEO_SIZE
            frames = (S.real_frames(rng, subject, room, n, size) if kind == "0_00" else
                      mask_frames(rng, subject, room, n, size, "REAL-f") if kind == "2_12" else
                      S.print_frames(rng, subject, room, n, size, 2))
            name = f"face-station/01.02.18/{number:03d}_01_000_{kind}"
            path = root / "WMCA_preprocessed_RGB" / "WMCA" / f"{name}.hdf5"
            path.parent.mkdir(parents=True, exist_ok=True)
            with h5py.File(path, "w") as h5:
                for index, frame in enumerate(frames):
                    rgb = S.apply_camera(frame, S.PHONES[2], rng, jitter=False)
                    h5.create_group(f"Frame_{index}").create_dataset("array", data=rgb.transpose(2, 0, 1))
            lines.append(f"{name},{int(kind != '0_00')},{attack},eval")
            counts[attack.rsplit("/", 1)[-1]] += 1
    lists = root / "wmca-protocols-csv"
    lists.mkdir(parents=True, exist_ok=True)
    (lists / "PROTOCOL-grandtest.csv").write_text("".join(line + "\n" for line in lines))
    return counts


def _attack_frames(kind: str, rng, subject, room) -> list[np.ndarray]:
    n, size = S.VIDEO_FRAMES, S.VIDEO_SIZE
    if kind == "real":
        return S.real_frames(rng, subject, room, n, size)
    return S.print_frames(rng, subject, room, n, size, 2) if kind == "print" else S.replay_frames(rng, subject, room,
                                                                                               n, size)


def write_msu_mfsd(root: Path, seed: int, subjects: int) -> collections.Counter:
    """``scene01/{real,attack}/`` with the official ``{train,test}_sub_list.txt`` (clients alternate)."""
    counts, lists = collections.Counter(), {"train": [], "test": []}
    for number in range(1, subjects + 1):
        subject, room, client = S.make_subject(seed, 1300 + number), _room(seed, 1300 + number), f"{number:03d}"
        lists["train" if number % 2 else "test"].append(str(number))
        for kind, name in (("real", f"real_client{client}_laptop_SD_scene01"),
                           ("print", f"attack_client{client}_laptop_SD_printed_photo_scene01"),
                           ("replay", f"attack_client{client}_laptop_SD_ipad_video_scene01")):
            rng = np.random.default_rng([seed, 9107, number, len(name)])
            folder = "real" if kind == "real" else "attack"
            _video(root / "scene01" / folder / f"{name}.mp4", _attack_frames(kind, rng, subject, room), rng,
                   S.PHONES[1])
            counts[kind] += 1
    for split, clients in lists.items():
        (root / f"{split}_sub_list.txt").write_text("".join(c + "\n" for c in clients))
    return counts


def write_casia_fasd(root: Path, seed: int, subjects: int) -> collections.Counter:
    """``{train,test}_release/<n>/{1,3,7}.avi``: a real video, a warped print and a replay per subject."""
    counts = collections.Counter()
    for number in range(1, subjects + 1):
        release, folder = ("train_release", (number + 1) // 2) if number % 2 else ("test_release", number // 2)
        subject, room = S.make_subject(seed, 1400 + number), _room(seed, 1400 + number)
        for kind, video in (("real", "1"), ("print", "3"), ("replay", "7")):
            rng = np.random.default_rng([seed, 9108, number, int(video)])
            _video(root / release / str(folder) / f"{video}.avi", _attack_frames(kind, rng, subject, room), rng,
                   S.PHONES[2])
            counts[kind] += 1
    return counts


def write_replay_attack(root: Path, seed: int, subjects: int) -> collections.Counter:
    """``{train,devel,test}/real/`` and ``.../attack/{fixed,hand}/`` with Idiap's file names."""
    counts, splits = collections.Counter(), ("train", "devel", "test")
    for number in range(1, subjects + 1):
        split, client = splits[(number - 1) % 3], f"{number:03d}"
        subject, room = S.make_subject(seed, 1500 + number), _room(seed, 1500 + number)
        for kind, rel in (("real", f"real/client{client}_session01_webcam_authenticate_controlled_1.mov"),
                          ("print", f"attack/fixed/attack_print_client{client}_session01_highdef_photo_controlled.mov"),
                          ("replay", f"attack/hand/attack_mobile_client{client}_session01_mobile_video_adverse.mov")):
            rng = np.random.default_rng([seed, 9109, number, len(rel)])
            _video(root / split / rel, _attack_frames(kind, rng, subject, room), rng, S.PHONES[1])
            counts[kind] += 1
    return counts


def write_nuaa(root: Path, seed: int, subjects: int) -> collections.Counter:
    """``{Client,Imposter}Raw/<NNNN>/<NNNN>_00_00_01_<i>.jpg`` with the official Windows-path lists."""
    counts = collections.Counter()
    lists = {f"{kind}_{split}_raw.txt": [] for kind in ("client", "imposter") for split in ("train", "test")}
    for number in range(1, subjects + 1):
        subject, sid = S.make_subject(seed, 1600 + number), f"{number:04d}"
        split = "train" if number % 2 else "test"
        for kind, folder in (("client", "ClientRaw"), ("imposter", "ImposterRaw")):
            rng = np.random.default_rng([seed, 9110, number, len(kind)])
            img = S.cat_real(rng, subject, S.IMAGE_SIZE)
            if kind == "imposter":
                img = S.printed(img, rng, 4.5, 0.45)
            name = f"{sid}_00_00_01_0.jpg"
            path = root / folder / sid / name
            path.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(path), S.apply_camera(img, S.CAMERAS["synth-cam-b"], rng)[..., ::-1])
            lists[f"{kind}_{split}_raw.txt"].append(f"{sid}\\{name}")
            counts[kind] += 1
    for name, lines in lists.items():
        (root / name).write_text("".join(line + "\r\n" for line in lines))
    return counts


WRITERS = {"msu_mfsd": write_msu_mfsd, "casia_fasd": write_casia_fasd, "replay_attack": write_replay_attack,
           "nuaa": write_nuaa, "hkbu_mars": lambda root, seed, n: write_hkbu_mars(root, seed, n, 1),
           "wffd": lambda root, seed, n: write_wffd(root, seed, 2 * n), "rose_youtu": write_rose_youtu,
           "siw": write_siw, "wmca": write_wmca}


def generate_public(out: str | Path, seed: int = 0, subjects: int = 2) -> dict:
    """Write every stand-in under ``out/<dataset>``; each root is marked SYNTHETIC. Returns counts per dataset.
    The cross-dataset sources get ``3 * subjects`` subjects, so each split holds someone."""
    out = Path(out)
    summary = {}
    for name, write in WRITERS.items():
        root = out / name
        summary[name] = dict(sorted(write(root, seed, 3 * subjects if name in CROSS_SETS else subjects).items()))
        S.write_marker(root, seed, f"public-{subjects}")
    return summary
