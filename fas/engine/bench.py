"""Training throughput: CLIPC8 on Ray Train + DeepSpeed against a bare single-process PyTorch loop.

Same model config, same frame cache, same batch size and augmentation; images/s of the last epoch (the first
includes start-up). ``python -m fas.engine.bench --cache DIR [--workers 1 2]``.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F

from fas.config import replace
from fas.data.cache import read_cache_table
from fas.engine import train
from fas.methods.clipc8.config import CLIPC8Config
from fas.methods.clipc8.model import create_clipc8
from fas.methods.clipc8.task import category_index
from fas.preprocess import clipc8_augment, decode_batch


def bare_loop(cfg: CLIPC8Config, epochs: int) -> float:
    table = read_cache_table(cfg.cache, columns=["image", "attack", "split"]).to_pandas()
    table = table[table.split == "train"]
    model, pre = create_clipc8(cfg.model, cfg.pretrained, cfg.prompts)
    optimizer = torch.optim.Adam(model.visual.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    rate = 0.0
    for _ in range(epochs):
        tick, seen = time.perf_counter(), 0
        for start in range(0, len(table), cfg.batch_size):
            rows = table.iloc[start:start + cfg.batch_size]
            x = clipc8_augment(decode_batch(rows["image"], pre["image_size"], pre["mean"], pre["std"]))
            loss = F.cross_entropy(model(x), category_index(rows["attack"], cfg))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            seen += len(rows)
        rate = seen / (time.perf_counter() - tick)
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cache", required=True)
    parser.add_argument("--config", default="clipc8_tiny.yaml")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--storage-path", default="runs/bench")
    args = parser.parse_args()
    from fas.config import load_config

    cfg = load_config(CLIPC8Config, args.config, {"cache": args.cache, "storage_path": args.storage_path})
    results = {"bare_single_process_images_per_s": round(bare_loop(cfg, args.epochs), 1)}
    for n in args.workers:
        run = replace(cfg, num_workers=n, epochs=args.epochs, name=f"bench_{n}w_{int(time.time())}",
                      cpus_per_worker=1.0 if n == 1 else 0.5)
        results[f"ray_deepspeed_{n}_workers_images_per_s"] = round(train(run).metrics["images_per_s"], 1)
    for n in args.workers:
        key = f"ray_deepspeed_{n}_workers_images_per_s"
        results[f"ratio_{n}_workers_over_bare"] = round(results[key] / results["bare_single_process_images_per_s"], 2)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
