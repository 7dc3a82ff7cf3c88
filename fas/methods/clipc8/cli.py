"""CLIPC8's own subcommand: ``fas zero-shot`` (the pretrained model with the class texts, as a model folder)."""

from __future__ import annotations


def cmd_zero_shot(args) -> int:
    from fas.config import config_from_args
    from fas.methods.clipc8.config import CLIPC8Config
    from fas.methods.clipc8.task import export_zero_shot

    folder = export_zero_shot(config_from_args(CLIPC8Config, args), args.out)
    print(f"zero-shot CLIPC8 checkpoint: {folder}\nevaluate it: python jobs/evaluate.py --checkpoint {folder} "
          "--cache CACHE --protocol clipc8_zeroshot --threshold-rule 0.5")
    return 0


def add_commands(sub) -> None:
    from fas.config import add_config_flags
    from fas.methods.clipc8.config import CLIPC8Config

    p = sub.add_parser("zero-shot", help="write pretrained CLIPC8 (no fine-tuning) as a checkpoint to evaluate")
    p.add_argument("--out", required=True, help="checkpoint folder to write")
    add_config_flags(p, CLIPC8Config, skip=("name", "storage_path", "cache"))
    p.set_defaults(func=cmd_zero_shot, config="clipc8.yaml")
