"""SSDG losses (Jia et al., "Single-Side Domain Generalization for Face Anti-Spoofing", CVPR 2020).

Real faces of all source domains are pulled into one domain-invariant cluster (a domain discriminator behind gradient
reversal sees only real faces), while spoofs stay free to spread per domain (asymmetric triplet loss: each domain's
spoofs are their own class). Labels: 1 = real, 0 = spoof; domains are source-domain indices 0..D-1.

Default weights follow the authors' released code (``configs/config.py``: ``lambda_triplet = 2``,
``lambda_adreal = 0.1``, ``HardTripletLoss(margin=0.1)``) and its GRL ramp (alpha = 10). One deliberate difference:
the triplet loss here is batch-hard (hardest positive and negative per anchor).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fas.models.layers import reverse_gradient


def graph_zero(*tensors: torch.Tensor) -> torch.Tensor:
    """A zero connected to every tensor given, so backward and DDP see all of them used."""
    return sum(t.sum() for t in tensors) * 0.0


class SingleSideDiscriminator(nn.Module):
    """Domain classifier behind gradient reversal that only ever receives real faces' features."""

    def __init__(self, in_features: int, num_domains: int, hidden: int = 512, dropout: float = 0.5):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout),
                                 nn.Linear(hidden, num_domains))

    def forward(self, features: torch.Tensor, labels: torch.Tensor, domains: torch.Tensor,
                coeff: float = 1.0) -> torch.Tensor:
        """Cross-entropy over source domains on the real rows; the features get its reversed gradient."""
        real = labels == 1
        if not real.any():
            return graph_zero(features, *self.parameters())
        logits = self.mlp(reverse_gradient(features[real], coeff))
        return F.cross_entropy(logits, domains[real])


def pairwise_distances(x: torch.Tensor) -> torch.Tensor:
    """Euclidean distances with exact zeros and a finite gradient there (sqrt'(0) is infinite)."""
    sq = (x[:, None] - x[None]).pow(2).sum(-1)  # differences, not |a|^2 + |b|^2 - 2ab: equal rows give exactly 0
    zero = sq == 0
    return (sq + zero * 1e-16).sqrt() * ~zero


def asymmetric_triplet_loss(features: torch.Tensor, labels: torch.Tensor, domains: torch.Tensor,
                            margin: float = 0.1) -> torch.Tensor:
    """Batch-hard triplet loss on L2-normalised features; all reals are one class, each domain's spoofs another.

    Averaged over anchors that have both a positive and a negative; a graph-connected 0 when there are none.
    """
    classes = torch.where(labels == 1, torch.full_like(domains, -1), domains)
    dist = pairwise_distances(F.normalize(features, dim=1))
    same = classes[:, None] == classes[None, :]
    positive = same & ~torch.eye(len(classes), dtype=torch.bool, device=features.device)
    hardest_pos = (dist * positive).max(dim=1).values  # distances are >= 0, so masked-out zeros never win
    hardest_neg = dist.masked_fill(same, float("inf")).min(dim=1).values
    valid = positive.any(dim=1) & (~same).any(dim=1)
    if not valid.any():
        return graph_zero(features)
    return F.relu(hardest_pos - hardest_neg + margin)[valid].mean()


class SSDGLoss(nn.Module):
    """CE(real/spoof) + lambda_adv * single-side adversarial + lambda_triplet * asymmetric triplet.

    Holds the discriminator, so its parameters belong in the optimiser alongside the model's.
    """

    def __init__(self, feature_dim: int, num_domains: int, *, lambda_adv: float = 0.1, lambda_triplet: float = 2.0,
                 margin: float = 0.1, hidden: int = 512, dropout: float = 0.5):
        super().__init__()
        self.discriminator = SingleSideDiscriminator(feature_dim, num_domains, hidden, dropout)
        self.lambda_adv, self.lambda_triplet, self.margin = lambda_adv, lambda_triplet, margin

    def forward(self, logits: torch.Tensor, features: torch.Tensor, labels: torch.Tensor, domains: torch.Tensor,
                grl_coeff: float = 1.0) -> dict[str, torch.Tensor]:
        """A dict of losses; ``loss`` is the weighted total to backpropagate."""
        cls = F.cross_entropy(logits, labels.long())
        adv = self.discriminator(features, labels, domains, grl_coeff)
        triplet = asymmetric_triplet_loss(features, labels, domains, self.margin)
        return {"loss": cls + self.lambda_adv * adv + self.lambda_triplet * triplet, "cls": cls, "adv": adv,
                "triplet": triplet}
