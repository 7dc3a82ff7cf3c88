"""Head pose (yaw and pitch, in degrees) from a face detector's five landmarks, as AG-FAS filters the real-face set
of its generator: faces turned or tilted beyond a threshold are left out.

The five points (YuNet's order: right eye, left eye, nose tip, right and left mouth corners; the subject's right
eye is on the image's left) are fitted to a generic 3D face with ``cv2.solvePnP`` (focal length = image width,
principal point = image centre: a camera model is not known for web photos, and the angle it gives is what a
threshold of tens of degrees needs). Yaw is the turn about the vertical axis, pitch the nod about the horizontal
one, both 0 for a frontal face.
"""

from __future__ import annotations

import cv2
import numpy as np

# A generic adult face in millimetres, camera axes (x to the image's right, y down, z away from the camera) with
# the nose tip at the origin: eyes 64 mm apart and 30 mm behind the tip, mouth corners 50 mm apart.
FACE_MODEL = np.array([[-32.0, -35.0, 30.0], [32.0, -35.0, 30.0], [0.0, 0.0, 0.0], [-25.0, 38.0, 25.0],
                       [25.0, 38.0, 25.0]])


def camera(width: int, height: int) -> np.ndarray:
    return np.array([[width, 0.0, width / 2], [0.0, width, height / 2], [0.0, 0.0, 1.0]])


def head_pose(landmarks, width: int, height: int) -> tuple[float, float]:
    """(yaw, pitch) in degrees of the face whose five landmarks (pixels, shape 5 x 2) are given."""
    points = np.asarray(landmarks, np.float64).reshape(5, 2)
    ok, rvec, _ = cv2.solvePnP(FACE_MODEL, points, camera(width, height), None, flags=cv2.SOLVEPNP_EPNP)
    if ok:
        ok, rvec, tvec = cv2.solvePnP(FACE_MODEL, points, camera(width, height), None, rvec, _, True,
                                      flags=cv2.SOLVEPNP_ITERATIVE)
    if not ok:
        raise ValueError(f"no head pose fits the landmarks {points.tolist()}")
    angles = cv2.RQDecomp3x3(cv2.Rodrigues(rvec)[0])[0]
    return float(angles[1]), float(angles[0])


def project(yaw: float, pitch: float, width: int, height: int, distance: float = 600.0) -> np.ndarray:
    """The five landmarks of the generic face at this pose in front of the camera (what ``head_pose`` inverts)."""
    rotation = _rotation(pitch, yaw)
    points, _ = cv2.projectPoints(FACE_MODEL, cv2.Rodrigues(rotation)[0], np.array([0.0, 0.0, distance]),
                                  camera(width, height), None)
    return points.reshape(5, 2)


def _rotation(pitch: float, yaw: float) -> np.ndarray:
    """R = Ry(yaw) Rx(pitch), the order ``cv2.RQDecomp3x3`` reads Euler angles back in (with no roll)."""
    p, y = np.radians(pitch), np.radians(yaw)
    rx = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
    ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    return ry @ rx
