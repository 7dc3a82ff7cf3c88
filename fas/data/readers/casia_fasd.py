"""CASIA-FASD: ``ROOT/{train_release,test_release}/<subject number>/<video>.avi``.

Videos 1, 2 and HR_1 are real; 3/4 and HR_2 warped photos, 5/6 and HR_3 cut photos, 7/8 and HR_4 video replays,
at low, normal and high quality respectively (stored as ``device``). Subject folders are numbered afresh in each
release (train 1-20, test 1-30 are different people), so the subject carries the split.
The optional protocol is one of the paper's seven test scenarios (see ``PROTOCOLS``).
"""

from __future__ import annotations

from pathlib import Path

from fas.data.manifest import REAL, ManifestError
from fas.data.readers import register
from fas.data.readers._common import make_row, no_samples, walk_videos

DOMAIN = "casia_fasd"
RELEASES = {"train_release": "train", "test_release": "test"}
VIDEOS = {
    "1": (REAL, "low"),
    "2": (REAL, "normal"),
    "hr_1": (REAL, "high"),
    "3": ("warped_photo", "low"),
    "4": ("warped_photo", "normal"),
    "hr_2": ("warped_photo", "high"),
    "5": ("cut_photo", "low"),
    "6": ("cut_photo", "normal"),
    "hr_3": ("cut_photo", "high"),
    "7": ("video_replay", "low"),
    "8": ("video_replay", "normal"),
    "hr_4": ("video_replay", "high"),
}
# The paper's scenarios: a quality keeps that quality's real and attack videos; an attack keeps every real video
# and that attack's videos; overall keeps everything.
PROTOCOLS = {
    "low": lambda attack, quality: quality == "low",
    "normal": lambda attack, quality: quality == "normal",
    "high": lambda attack, quality: quality == "high",
    "warped": lambda attack, quality: attack in (REAL, "warped_photo"),
    "cut": lambda attack, quality: attack in (REAL, "cut_photo"),
    "video": lambda attack, quality: attack in (REAL, "video_replay"),
    "overall": lambda attack, quality: True,
}
_EXPECTED = "<release>/<subject number>/<1..8 or HR_1..HR_4>.avi"


def _row(path: Path, root: Path, release: Path, split: str) -> dict:
    rel = path.relative_to(release)
    video = VIDEOS.get(path.stem.lower())
    if len(rel.parts) != 2 or video is None:
        raise ManifestError(f"{path}: unexpected CASIA-FASD video; expected {_EXPECTED}")
    attack, quality = video
    return make_row(path, path.relative_to(root), domain=DOMAIN, label=int(attack == REAL), attack=attack,
                    subject=f"{split}_{rel.parts[0]}", split=split, device=quality)


def _keep(protocol: str | None):
    if protocol is None:
        return PROTOCOLS["overall"]
    if protocol.lower() not in PROTOCOLS:
        raise ManifestError(f"unknown CASIA-FASD protocol {protocol!r}; expected one of {', '.join(PROTOCOLS)}")
    return PROTOCOLS[protocol.lower()]


@register("casia_fasd")
def read_casia_fasd(root: Path, protocol: str | None) -> list[dict]:
    """Every release video, optionally narrowed to one test scenario of the paper."""
    keep = _keep(protocol)
    releases = [(root / name, split) for name, split in RELEASES.items() if (root / name).is_dir()]
    if not releases:
        raise no_samples(root, f"folders {' and '.join(RELEASES)} holding {_EXPECTED}")
    rows = [_row(path, root, release, split) for release, split in releases for path in walk_videos(release)]
    rows = [row for row in rows if keep(row["attack"], row["device"])]
    if not rows:
        raise no_samples(root, f"folders {' and '.join(RELEASES)} holding {_EXPECTED}")
    return rows
