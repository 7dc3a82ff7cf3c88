"""``fas label suggest | review | merge | retrain | compare``: growing a CLASS-8 dataset (CLIPC8 paper, 5.11)."""

from __future__ import annotations

import json


def cmd_suggest(args) -> int:
    from fas.label.suggest import SuggestConfig, run_suggest

    cfg = SuggestConfig(model=args.model, images=args.images, out=args.out, dataset=args.dataset, frames=args.frames,
                        near_distance=args.near_distance, ray=args.ray, address=args.address, workers=args.workers)
    summary = run_suggest(cfg)
    print(f"{summary['items']} items from {summary['files']} files ({summary['unreadable']} unreadable, "
          f"{summary['duplicates']} duplicates flagged, {summary['exact_duplicates']} exact) -> {summary['queue']}; "
          f"review: fas label review {summary['queue']}")
    return 0


def cmd_review(args) -> int:
    from fas.label.queue import export_csv, import_csv

    if args.export_csv:
        print(f"{export_csv(args.queue, args.export_csv)} rows -> {args.export_csv}")
        return 0
    if args.import_csv:
        counts = import_csv(args.queue, args.import_csv)
        print(f"{counts['decided']} decisions of {counts['rows']} rows recorded in {args.queue}")
        return 0
    from fas.label.review import serve_review

    serve_review(args.queue, host=args.host, port=args.port)
    return 0


def cmd_merge(args) -> int:
    from fas.label.dataset import merge

    entry = merge(args.queue, args.into, split=args.split, domain=args.domain)
    left = ", ".join(f"{n} {why}" for why, n in entry["left_out"].items() if n) or "none"
    print(f"{entry['added']} images added to {args.into}: version {entry['version']} (parent {entry['parent']}); "
          f"left out: {left}")
    return 0


def cmd_retrain(args) -> int:
    from fas.config import config_from_args
    from fas.label.compare import compare_markdown
    from fas.label.retrain import retrain
    from fas.methods.clipc8.config import CLIPC8Config

    result = retrain(args.root, config_from_args(CLIPC8Config, args), args.out, size=args.size)
    print(compare_markdown(result))
    return 0


def cmd_compare(args) -> int:
    from fas.label.compare import compare_markdown, compare_models

    result = compare_models(args.previous, args.new, args.dataset, out=args.out)
    print(json.dumps(result, indent=2) if args.json else compare_markdown(result))
    return 0


def add_label_parser(sub) -> None:
    from fas.config import add_config_flags
    from fas.methods.clipc8.config import CLIPC8Config

    label = sub.add_parser("label", help="grow a CLASS-8 dataset: pre-label, review, merge, retrain, compare")
    steps = label.add_subparsers(dest="step", required=True)
    p = steps.add_parser("suggest", help="CLIPC8's category and uncertainty for unlabelled images, most uncertain "
                                          "first, duplicates flagged")
    p.add_argument("model", help="a CLIPC8 model folder")
    p.add_argument("images", nargs="+", help="folders, files or globs of images and videos")
    p.add_argument("--out", required=True, help="the queue folder to write")
    p.add_argument("--dataset", help="the CLASS-8 tree being grown (its images are flagged as known)")
    p.add_argument("--frames", type=int, default=10, help="frames sampled per video")
    p.add_argument("--near-distance", type=int, default=6, help="perceptual-hash bits within which images match")
    p.add_argument("--ray", action="store_true", help="stream through Ray Data (embedded cluster unless --address)")
    p.add_argument("--address", help="a Ray cluster to run on")
    p.add_argument("--workers", type=int, default=1, help="model actors (with --ray/--address)")
    p.set_defaults(func=cmd_suggest)

    p = steps.add_parser("review", help="a local web page to accept or correct each suggestion (a..h, s, z)")
    p.add_argument("queue")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--export-csv", metavar="FILE", help="write the queue and its decisions as CSV and exit")
    p.add_argument("--import-csv", metavar="FILE", help="record the decisions of an edited CSV and exit")
    p.set_defaults(func=cmd_review)

    p = steps.add_parser("merge", help="copy the reviewed images into the CLASS-8 tree as a new version")
    p.add_argument("queue")
    p.add_argument("--into", required=True, help="the CLASS-8 root")
    p.add_argument("--split", default="train", help="train or dev (the test split is the frozen held-out set)")
    p.add_argument("--domain", help="the domain folder, in a multi-domain tree")
    p.set_defaults(func=cmd_merge)

    p = steps.add_parser("retrain", help="fine-tune the previous CLIPC8 model on the grown tree and compare them")
    p.add_argument("root", help="the CLASS-8 root")
    p.add_argument("--out", required=True, help="folder for its manifest, cache and comparison")
    p.add_argument("--size", type=int, default=256, help="the cache's frame size")
    add_config_flags(p, CLIPC8Config, skip=("cache",))
    p.set_defaults(func=cmd_retrain, config="clipc8.yaml")

    p = steps.add_parser("compare", help="two CLIPC8 models on the tree's frozen held-out set, per category")
    p.add_argument("previous")
    p.add_argument("new")
    p.add_argument("--dataset", required=True, help="the CLASS-8 root")
    p.add_argument("--out", help="write compare.json and compare.md here")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_compare)
