"""Idiap Replay-Attack: ``ROOT/{train,devel,test}/real/`` and ``ROOT/{train,devel,test}/attack/{fixed,hand}/``.

Real: ``client<NNN>_session<NN>_webcam_authenticate_<controlled|adverse>_<n>.mov``. Attack:
``attack_<highdef|mobile|print>_client<NNN>_session<NN>_<highdef|mobile>_<photo|video>_<controlled|adverse>.mov``,
where the first token is the presenting medium (iPad, iPhone, paper). Attacks are ``print``, ``mobile_photo``,
``mobile_video``, ``highdef_photo``, ``highdef_video``; the attack support (fixed/hand) is the ``support`` column.
Enrollment videos (``enroll`` folders) are not anti-spoofing samples and are skipped. The optional protocol is one
of bob.db.replay's attack subsets (see ``PROTOCOLS``); real videos are kept in all of them.
"""

from __future__ import annotations

import re
from pathlib import Path

from fas.data.manifest import REAL, ManifestError
from fas.data.readers import register
from fas.data.readers._common import make_row, no_samples, walk_videos

DOMAIN = "replay_attack"
SPLITS = {"train": "train", "devel": "dev", "test": "test"}
SUPPORTS = ("fixed", "hand")
PROTOCOLS = {
    "grandtest": None,
    "print": {"print"},
    "mobile": {"mobile_photo", "mobile_video"},
    "highdef": {"highdef_photo", "highdef_video"},
    "photo": {"print", "mobile_photo", "highdef_photo"},
    "video": {"mobile_video", "highdef_video"},
}
_REAL = re.compile(r"^client(\d{3})_session(\d{2})_([a-z]+)_authenticate_(controlled|adverse)_(\d+)$")
_ATTACK = re.compile(r"^attack_(highdef|mobile|print)_client(\d{3})_session(\d{2})_(highdef|mobile)_(photo|video)_"
                     r"(controlled|adverse)$")
_REAL_HELP = "real/client<NNN>_session<NN>_webcam_authenticate_<controlled|adverse>_<n>.mov"
_ATTACK_HELP = ("attack/<fixed|hand>/attack_<highdef|mobile|print>_client<NNN>_session<NN>_<highdef|mobile>_"
                "<photo|video>_<controlled|adverse>.mov")


def _real_row(path: Path, rel: Path, split: str) -> dict | None:
    match = _REAL.match(path.stem)
    if len(rel.parts) != 3 or not match:
        return None
    client, session, device, light, _ = match.groups()
    return make_row(path, rel, domain=DOMAIN, label=1, attack=REAL, subject=client, split=split, session=session,
                    device=device, light=light, support=None)


def _attack_row(path: Path, rel: Path, split: str) -> dict | None:
    match = _ATTACK.match(path.stem)
    if len(rel.parts) != 4 or rel.parts[2] not in SUPPORTS or not match:
        return None
    medium, client, session, _, kind, light = match.groups()
    attack = "print" if medium == "print" else f"{medium}_{kind}"
    return make_row(path, rel, domain=DOMAIN, label=0, attack=attack, subject=client, split=split, session=session,
                    device="webcam", light=light, support=rel.parts[2])


def _row(path: Path, root: Path, split: str) -> dict | None:
    """The row of one video, None for enrollment videos; ManifestError for anything else unexpected."""
    rel = path.relative_to(root)
    if "enroll" in rel.parts[1:-1]:
        return None
    read = {"real": _real_row, "attack": _attack_row}.get(rel.parts[1])
    row = read(path, rel, split) if read else None
    if row is None:
        raise ManifestError(f"{path}: unexpected Replay-Attack video; expected <split>/{_REAL_HELP} "
                            f"or <split>/{_ATTACK_HELP}")
    return row


def _attacks_kept(protocol: str | None) -> set[str] | None:
    """The attacks a protocol keeps (None: all)."""
    if protocol is None:
        return None
    if protocol.lower() not in PROTOCOLS:
        raise ManifestError(f"unknown Replay-Attack protocol {protocol!r}; expected one of {', '.join(PROTOCOLS)}")
    return PROTOCOLS[protocol.lower()]


@register("replay_attack")
def read_replay_attack(root: Path, protocol: str | None) -> list[dict]:
    """Real and attack videos of every split folder present, optionally narrowed to one attack subset."""
    kept = _attacks_kept(protocol)
    folders = [(root / name, split) for name, split in SPLITS.items() if (root / name).is_dir()]
    if not folders:
        raise no_samples(root, f"folders {', '.join(SPLITS)} holding {_REAL_HELP} and {_ATTACK_HELP}")
    rows = [_row(path, root, split) for folder, split in folders for path in walk_videos(folder)]
    rows = [row for row in rows if row and (kept is None or row["attack"] in kept or row["label"] == 1)]
    if not rows:
        raise no_samples(root, f"folders {', '.join(SPLITS)} holding {_REAL_HELP} and {_ATTACK_HELP}")
    return rows
