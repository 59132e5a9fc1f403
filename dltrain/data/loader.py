"""Batches of in-memory tensors: slices of one permutation per epoch."""

from __future__ import annotations

import torch


class ArrayLoader:
    """Iterates (x, y) batches of tensors that already live on the training device.

    Shuffling gathers the whole epoch once (one index op) and then yields contiguous slices,
    which costs far less than a gather per batch or a per-sample Dataset + collate.
    A trailing batch of one sample is dropped when shuffling: it carries almost no signal and
    breaks batch norm (statistics of one sample).
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, *, shuffle: bool,
                 generator: torch.Generator | None = None):
        self.x, self.y = x, y
        self.n = x.shape[0]
        self.batch_size = min(batch_size, self.n) if self.n else batch_size
        self.shuffle = shuffle
        self.generator = generator

    def __len__(self) -> int:
        full, rest = divmod(self.n, self.batch_size)
        return full + (1 if rest > 1 or (rest == 1 and not self.shuffle) else 0)

    def __iter__(self):
        return self.iterate()

    def iterate(self, start: int = 0):
        """The epoch's batches from batch `start` on. The permutation is drawn whole either way, so
        a resumed epoch (generator state restored, `start` > 0) sees exactly the order it had."""
        x, y = self.x, self.y
        if self.shuffle:
            # randperm on the CPU generator keeps the order identical on CPU and CUDA runs
            perm = torch.randperm(self.n, generator=self.generator).to(x.device, non_blocking=True)
            x, y = x[perm], y[perm]
        for i in range(start, len(self)):
            yield x[i * self.batch_size:(i + 1) * self.batch_size], y[i * self.batch_size:(i + 1) * self.batch_size]
