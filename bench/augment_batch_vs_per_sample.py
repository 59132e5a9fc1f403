"""Whole-batch augmentation (dltrain.data.augment) vs the usual per-sample transforms.

What it measures: the time to augment one epoch of CIFAR-shaped images (N, 3, 32, 32) with
hflip + random_crop(padding 4), done (a) by dltrain on whole batches with tensor ops, and
(b) per image with torchvision.transforms.v2 (RandomHorizontalFlip, RandomCrop), as a
Dataset.__getitem__ pipeline does, then stacked into batches. Same device (CPU here), side by side
in one process; the ratio is what to read, the absolute times depend on the machine's load.

Run: PYTHONPATH=$PWD python bench/augment_batch_vs_per_sample.py [--n 5000] [--batch 256] [--device cuda]

Found (2026-11-22, 2 CPU cores shared with other jobs, load 5-7), 8 runs of --n 5000:
per sample took 410-880 ms every time; whole batch 80-1570 ms, ratio 0.3x to 7.0x. The batch
path's kernels run on 2 intra-op threads, which suffer most when the cores are oversubscribed;
its best run was 7.0x faster. Not a clean measurement: rerun on an idle machine.
The main reason for whole-batch ops is the GPU (per-sample transforms mean several tiny kernel
launches per image); not measured here, no GPU for this task. Check with --device cuda.
"""

from __future__ import annotations

import argparse
import time

import torch


def batch_augment(x: torch.Tensor, batch: int) -> None:
    from dltrain.data.augment import AUGMENTATIONS, Augment
    transforms = [AUGMENTATIONS.build(AUGMENTATIONS.entry("hflip").model(name="hflip")),
                  AUGMENTATIONS.build(AUGMENTATIONS.entry("random_crop").model(name="random_crop", padding=4))]
    augment = Augment(transforms, x.device, seed=0)
    for i in range(0, len(x), batch):
        augment(x[i:i + batch])


def per_sample_augment(x: torch.Tensor, batch: int) -> None:
    from torchvision.transforms import v2
    pipeline = v2.Compose([v2.RandomHorizontalFlip(), v2.RandomCrop(32, padding=4)])
    for i in range(0, len(x), batch):
        torch.stack([pipeline(img) for img in x[i:i + batch]])


def best_of(fn, x, *args, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(x, *args)
        if x.is_cuda:
            torch.cuda.synchronize()  # kernels are asynchronous: wait for them before reading the clock
        times.append(time.perf_counter() - start)
    return min(times)  # the least disturbed run: the machine is shared


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    x = torch.randn(args.n, 3, 32, 32, device=args.device)
    ours = best_of(batch_augment, x, args.batch)
    theirs = best_of(per_sample_augment, x, args.batch)
    print(f"{args.n} images 3x32x32 on {args.device}, batch {args.batch}, hflip + random_crop(padding 4), best of 3")
    print(f"  whole batch (dltrain)      {ours * 1000:8.1f} ms")
    print(f"  per sample (transforms.v2) {theirs * 1000:8.1f} ms")
    print(f"  ratio per-sample / batch   {theirs / ours:8.1f}x")


if __name__ == "__main__":
    main()
