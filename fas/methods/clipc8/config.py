"""CLIPC8's config: the paper's defaults (Adam lr 4e-6, wd 0.05, cosine period 10 epochs to 0.01 x lr, batch 16,
100 epochs, DeepSpeed ZeRO-2, fp16 on GPU)."""

from __future__ import annotations

import dataclasses

from fas.config import flat
from fas.engine.config import EngineConfig, TrainConfig
from fas.eval.categories import CLIPC8_CATEGORIES

# Table 1 of the CLIPC8 paper, in the order of CLIPC8_CATEGORIES. The first one is the only real class.
CLASS8_TEXTS = (
    "A normal selfie photo of a person taken with the front camera of a mobile phone under well-lit conditions, "
    "and the image has not been altered.",
    "Partial or complete photos of identification cards, with visible address and identification number "
    "information in the photos.",
    "A face photo printed on paper, a person wearing a face mask, and partial information of the hands may be "
    "visible in the photo.",
    "Online verification of citizens photo with a white background, the person in the photo is not wearing a hat "
    "and has black hair.",
    "A person's work identification photo, usually with a person in a suit and a white, blue or red background.",
    "Displaying personal photos or identification card photos on a mobile phone, where the attack samples may "
    "reveal the borders of the phone or computer, moiré patterns, and partial information of the hands.",
    "The photo has been manipulated using PS, resulting in distorted details in certain areas.",
    "The photo was taken in a dark environment, making it impossible to discern facial details. The entire frame "
    "is dominated by black, providing no visible information.",
)
CLASS8_PROMPTS: list[tuple[str, str]] = list(zip(CLIPC8_CATEGORIES, CLASS8_TEXTS))


@dataclasses.dataclass
class CLIPC8Config(TrainConfig):
    model: str = "ViT-L-14"
    pretrained: str | None = "openai"
    categories: list[str] = dataclasses.field(default_factory=lambda: [k for k, _ in CLASS8_PROMPTS])
    prompts: list[str] = dataclasses.field(default_factory=lambda: [t for _, t in CLASS8_PROMPTS])
    attack_to_category: dict = dataclasses.field(default_factory=dict)  # e.g. {print: face_mask} for binary data
    # the cross-entropy's class weights (the paper's future work: CLASS-8's categories are uneven): null (none),
    # inverse_frequency (n_rows / (n_categories x rows of the category), over the training rows, as scikit-learn's
    # "balanced"), or one weight per category; the weights used are filled in before launch
    class_weights: str | list[float] | None = None
    class_weight_values: list[float] = dataclasses.field(default_factory=list)
    batch_size: int = 16
    lr: float = 4e-6
    weight_decay: float = 0.05
    cosine_period: int = 10
    min_lr_ratio: float = 0.01
    engine: EngineConfig = flat(lambda: EngineConfig(name="clipc8", epochs=100, backend="deepspeed"), "backend")
