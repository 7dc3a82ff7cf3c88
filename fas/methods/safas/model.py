"""SA-FAS (Sun et al., "Rethinking Domain Generalization for Face Anti-spoofing: Separability and Alignment",
CVPR 2023) on a ResNet-18, after the official code (github.com/sunyiyou/SAFAS: ``networks/resnet_lgt.py``,
``loss/__init__.py``, ``train.py``).

Separability: supervised contrastive learning (SupCon) on two augmented views, each (domain, label) pair its own
class, so domains stay apart in feature space and live/spoof stay apart inside each domain. Alignment: one logistic
head per source domain, whose weight vector is that domain's live-to-spoof direction; after every optimiser step
the official "v4" projection of PG-IRM (projected-gradient invariant risk minimisation) moves each head towards the
head it is farthest from (lowest cosine), keeping its norm, so the directions of all domains converge to one.
The liveness score is the mean of the heads' sigmoids.

As in the official defaults: unnormalised heads (``normfc`` false) with the fixed logit scale 1, SupCon temperature
0.1 with the 0.07 base temperature, alpha 0.995.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fas.methods.ssan.common import backbone_weights, create_backbone, read_arch


class SAFASNet(nn.Module):
    """ResNet features -> one logit per source-domain head (label 1 = real)."""

    def __init__(self, backbone: nn.Module, num_heads: int):
        super().__init__()
        if num_heads < 1:
            raise ValueError(f"SA-FAS needs at least one source domain head, got {num_heads}")
        self.backbone = backbone
        self.heads = nn.Linear(backbone.num_features, num_heads)  # row d: domain d's logistic regression

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.backbone(images)
        logits = self.heads(features)
        return {"features": features, "logits": logits, "score": logits.float().sigmoid().mean(dim=-1)}

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"score": self(images)["score"]}


def supcon_loss(features: torch.Tensor, classes: torch.Tensor, temperature: float = 0.1,
                base_temperature: float = 0.07) -> torch.Tensor:
    """Supervised contrastive loss (Khosla et al.) as the official ``supcon_loss``: ``features`` (N, views, D)
    L2-normalised, ``classes`` (N,); every other view of the same class is a positive of an anchor."""
    n, views = features.shape[:2]
    z = features.transpose(0, 1).reshape(n * views, -1)  # view-major, as torch.cat(torch.unbind(f, 1))
    c = classes.repeat(views)
    self_pair = torch.eye(len(z), dtype=torch.bool, device=z.device)
    logits = (z @ z.T / temperature).masked_fill(self_pair, float("-inf"))
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    positive = (c[:, None] == c[None, :]) & ~self_pair
    if not positive.any(dim=1).all():
        raise ValueError("every anchor needs a positive: give two views, or two rows of each class")
    mean_log_prob = log_prob.masked_fill(~positive, 0.0).sum(dim=1) / positive.sum(dim=1)
    return -(temperature / base_temperature) * mean_log_prob.mean()


def domain_bce(logits: torch.Tensor, labels: torch.Tensor, heads: torch.Tensor) -> torch.Tensor:
    """Each head's binary cross-entropy on its own rows, averaged over the heads (official ``binary_func_sep``;
    a head without rows adds 0, as there)."""
    own = logits.gather(1, heads[:, None]).squeeze(1).float()
    per_head = [F.binary_cross_entropy_with_logits(own[heads == d], labels[heads == d].float())
                for d in range(logits.shape[1]) if (heads == d).any()]
    return torch.stack(per_head).sum() / logits.shape[1]


def farthest_heads(weight: torch.Tensor) -> torch.Tensor:
    """For each head, the other head with the lowest cosine (itself when it is the only one)."""
    unit = F.normalize(weight, dim=1)
    cos = unit @ unit.T
    if len(weight) > 1:
        cos.fill_diagonal_(float("inf"))
    return cos.argmin(dim=1)


def head_misalignment(weight: torch.Tensor) -> torch.Tensor:
    """Mean of 1 - cos(head, its farthest head): 0 when every domain's live-to-spoof direction is the same."""
    unit = F.normalize(weight.detach().float(), dim=1)
    return (1 - (unit * unit[farthest_heads(unit)]).sum(dim=1)).mean()


@torch.no_grad()
def pg_irm_project_(weight: torch.Tensor, alpha: float) -> None:
    """The official ``update_weight_v4`` in place: beta_d <- normalize(alpha beta_d + (1 - alpha) beta_far(d)) times
    |w_d|, with beta the unit directions before the update and far(d) the head farthest from d."""
    unit = F.normalize(weight.float(), dim=1)
    moved = F.normalize(alpha * unit + (1 - alpha) * unit[farthest_heads(unit)], dim=1)
    weight.copy_((moved * weight.float().norm(dim=1, keepdim=True)).to(weight.dtype))


def safas_weights(model: str, pretrained: str | None):
    return backbone_weights("SA-FAS", read_arch(model, "SA-FAS", "safas-"), pretrained)


def config_weights(cfg) -> list:
    """Every pretrained file an SA-FAS config needs (``fas doctor``)."""
    return [safas_weights(cfg.model, cfg.pretrained)]


def create_safas(model: str = "safas-resnet18", pretrained: str | None = None, num_heads: int = 1) -> SAFASNet:
    """SA-FAS from an architecture config with one head per source domain; ``pretrained`` names backbone weights
    (a file or the config's hub tag)."""
    arch = read_arch(model, "SA-FAS", "safas-")
    return SAFASNet(create_backbone(arch, safas_weights(model, pretrained).resolve()), num_heads)
