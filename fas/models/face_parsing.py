"""Face parsing with the BiSeNet of face-parsing.PyTorch (github.com/zllrunning/face-parsing.PyTorch, ``model.py``),
trained on CelebAMask-HQ's 19 classes; its released weights are ``79999_iter.pth``. AG-FAS (Table IV, "DFG†")
keeps the anomalous cue inside the face region this network finds.

The modules below are that file's network written out, with its exact state-dict names and shapes, so that the
released file loads strictly: the context path (a ResNet-18, torchvision's, whose key names are the ones the repo's
``resnet.py`` uses, then attention refinement on the 1/16 and 1/32 maps plus a global-context branch), the
feature fusion module, and the output heads. As in that repo, the spatial path is the ResNet's 1/8 feature map (its
``SpatialPath`` is defined but unused, so the weights hold none), and the two auxiliary heads ``conv_out16`` /
``conv_out32`` (deep supervision while training) are kept for loading but not run: inference reads the main head.

Input as the repo's ``test.py``: RGB resized to 512 x 512 (bilinear), scaled to [0, 1], normalised with ImageNet's
mean/std; output: logits N x 19 x H x W at the input's size. An ONNX export of the same network runs in
onnxruntime (first output = the main logits, so an export of the repo's three-output forward works too).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

# CelebAMask-HQ's labels in the repo's order (prepropess_data.py: 0 = background, then these attributes)
CELEBAMASK_CLASSES = ("background", "skin", "l_brow", "r_brow", "l_eye", "r_eye", "eye_g", "l_ear", "r_ear", "ear_r",
                      "nose", "mouth", "u_lip", "l_lip", "neck", "neck_l", "cloth", "hair", "hat")
# "The face region": skin and the parts on it, eyeglasses included (they lie on the face and would otherwise punch
# holes in it), ears included (part of the head's outline). Left out: background, earrings (``ear_r``, jewellery
# hanging off the face), neck, necklace, cloth, hair and hat.
FACE_CLASSES = ("skin", "l_brow", "r_brow", "l_eye", "r_eye", "eye_g", "l_ear", "r_ear", "nose", "mouth", "u_lip",
                "l_lip")
FACE_CLASS_IDS = tuple(CELEBAMASK_CLASSES.index(c) for c in FACE_CLASSES)
PARSING_SIZE = 512
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
WEIGHTS_HOWTO = ("the face-parsing weights are 79999_iter.pth of github.com/zllrunning/face-parsing.PyTorch (its "
                 "README's 'pre-trained model' link; nothing is downloaded here), or an ONNX export of that network; "
                 "without them use the landmark mask (mask: landmarks)")


class ConvBNReLU(nn.Module):
    def __init__(self, cin: int, cout: int, kernel: int = 3):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


class AttentionRefinement(nn.Module):
    """A 3x3 conv, then a channel attention from its global average (1x1 conv, BN, sigmoid) that rescales it."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = ConvBNReLU(cin, cout)
        self.conv_atten = nn.Conv2d(cout, cout, 1, bias=False)
        self.bn_atten = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.conv(x)
        return feat * torch.sigmoid(self.bn_atten(self.conv_atten(F.adaptive_avg_pool2d(feat, 1))))


class ContextPath(nn.Module):
    """ResNet-18 -> (1/8 map, refined 1/16 context upsampled to 1/8, refined 1/32 context upsampled to 1/16)."""

    def __init__(self):
        super().__init__()
        from torchvision.models import resnet18

        self.resnet = resnet18(weights=None)
        del self.resnet.fc  # the repo's ResNet has no classifier
        self.arm16 = AttentionRefinement(256, 128)
        self.arm32 = AttentionRefinement(512, 128)
        self.conv_head32 = ConvBNReLU(128, 128)
        self.conv_head16 = ConvBNReLU(128, 128)
        self.conv_avg = ConvBNReLU(512, 128, kernel=1)

    def backbone(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        r = self.resnet
        x = r.layer1(r.maxpool(r.relu(r.bn1(r.conv1(x)))))
        feat8 = r.layer2(x)
        feat16 = r.layer3(feat8)
        return feat8, feat16, r.layer4(feat16)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        feat8, feat16, feat32 = self.backbone(x)
        global_context = self.conv_avg(F.adaptive_avg_pool2d(feat32, 1))  # broadcast over the 1/32 map
        up32 = self.conv_head32(F.interpolate(self.arm32(feat32) + global_context, feat16.shape[2:], mode="nearest"))
        up16 = self.conv_head16(F.interpolate(self.arm16(feat16) + up32, feat8.shape[2:], mode="nearest"))
        return feat8, up16, up32


class FeatureFusion(nn.Module):
    """Concatenate the spatial and context features, fuse them (1x1 conv), add a channel-attended copy."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.convblk = ConvBNReLU(cin, cout, kernel=1)
        self.conv1 = nn.Conv2d(cout, cout // 4, 1, bias=False)
        self.conv2 = nn.Conv2d(cout // 4, cout, 1, bias=False)

    def forward(self, spatial: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        feat = self.convblk(torch.cat([spatial, context], dim=1))
        atten = torch.sigmoid(self.conv2(F.relu(self.conv1(F.adaptive_avg_pool2d(feat, 1)))))
        return feat + feat * atten


class ParsingHead(nn.Module):
    def __init__(self, cin: int, mid: int, classes: int):
        super().__init__()
        self.conv = ConvBNReLU(cin, mid)
        self.conv_out = nn.Conv2d(mid, classes, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_out(self.conv(x))


class BiSeNet(nn.Module):
    """The face-parsing BiSeNet: (N, 3, H, W) normalised RGB -> (N, classes, H, W) logits of the main head."""

    def __init__(self, classes: int = len(CELEBAMASK_CLASSES)):
        super().__init__()
        self.cp = ContextPath()
        self.ffm = FeatureFusion(256, 256)
        self.conv_out = ParsingHead(256, 256, classes)
        self.conv_out16 = ParsingHead(128, 64, classes)  # auxiliary heads: trained with, loaded, not run
        self.conv_out32 = ParsingHead(128, 64, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spatial, context, _ = self.cp(x)
        logits = self.conv_out(self.ffm(spatial, context))
        return F.interpolate(logits, x.shape[2:], mode="bilinear", align_corners=True)


def weights_error(path: Path, problem: str) -> ValueError:
    return ValueError(f"face-parsing weights {path}: {problem}; {WEIGHTS_HOWTO}")


class TorchFaceParser:
    """The BiSeNet with the weights of a ``.pth``/``.pt`` state dict (loaded with ``weights_only``, strictly)."""

    def __init__(self, path: Path, device: str | torch.device = "cpu"):
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises several types (pickle, zip, EOF, runtime) for a damaged file
            raise weights_error(path, f"cannot be read as a PyTorch state dict ({type(exc).__name__}: {exc})") from None
        if not isinstance(state, dict):
            raise weights_error(path, f"holds a {type(state).__name__}, not a state dict")
        self.net = BiSeNet()
        missing, unexpected = self.net.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise weights_error(path, f"do not fit face-parsing.PyTorch's BiSeNet: missing {missing[:5]}, unexpected "
                                      f"{unexpected[:5]}")
        self.device = torch.device(device)
        self.net.to(self.device).eval().requires_grad_(False)

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.to(self.device)).float()


class OnnxFaceParser:
    """An ONNX export of the BiSeNet, run with onnxruntime (CUDA when onnxruntime-gpu has it, else CPU)."""

    def __init__(self, path: Path):
        import onnxruntime

        available = onnxruntime.get_available_providers()
        providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
        try:
            self.session = onnxruntime.InferenceSession(str(path), providers=providers)
        except Exception as exc:  # onnxruntime's errors (InvalidProtobuf, Fail, ...) have no common public base
            raise weights_error(path, f"cannot be loaded as an ONNX model ({type(exc).__name__}: {exc})") from None
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.session.run(None, {self.input_name: x.detach().float().cpu().numpy()})[0]
        return torch.from_numpy(logits)


def load_face_parser(path: str | Path, device: str | torch.device = "cpu"):
    """The parser of a weights file by its suffix: ``.pth``/``.pt`` (the released state dict) or ``.onnx``."""
    path = Path(path)
    if not path.is_file():
        raise weights_error(path, "no such file")
    if path.suffix in (".pth", ".pt"):
        return TorchFaceParser(path, device)
    if path.suffix == ".onnx":
        return OnnxFaceParser(path)
    raise weights_error(path, f"unknown kind {path.suffix!r}; give a .pth/.pt state dict or an .onnx export")


def parsing_input(arrays) -> torch.Tensor:
    """RGB uint8 crops (any size) -> (N, 3, 512, 512) as the repo's test script feeds them."""
    import cv2

    from fas.preprocess import to_tensor

    resized = [cv2.resize(np.asarray(a), (PARSING_SIZE, PARSING_SIZE), interpolation=cv2.INTER_LINEAR) for a in arrays]
    return to_tensor(resized, IMAGENET_MEAN, IMAGENET_STD)


def face_region(logits: torch.Tensor, size: int) -> np.ndarray:
    """(N, 19, H, W) logits -> (N, size, size) bool: pixels whose class is a face class, each output pixel by the
    majority of the parsing pixels it covers (area resampling, >= 1/2)."""
    labels = logits.argmax(dim=1)
    face = torch.isin(labels, torch.tensor(FACE_CLASS_IDS, device=labels.device)).float()
    return (F.interpolate(face[:, None], size=(size, size), mode="area")[:, 0] >= 0.5).cpu().numpy()


def face_masks(parser, arrays, size: int) -> np.ndarray:
    """The face region of each RGB uint8 crop at ``size`` x ``size`` (bool)."""
    return face_region(parser(parsing_input(arrays)), size)


def export_onnx(net: BiSeNet, path: str | Path, opset: int = 17) -> Path:
    """Write ``net`` as ONNX (input ``image`` N x 3 x 512 x 512, output ``logits``, dynamic batch), e.g. for
    onnxruntime on machines without torch's CUDA build."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(net.eval(), torch.zeros(1, 3, PARSING_SIZE, PARSING_SIZE), str(path), dynamo=False,
                      input_names=["image"], output_names=["logits"], opset_version=opset,
                      dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}})
    return path
