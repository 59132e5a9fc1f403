"""Batches of in-memory tensors: slices of one permutation per epoch."""

from __future__ import annotations

import torch


class ArrayLoader:
    """Iterates (x, y) batches of tensors that already live on the training device.

    Shuffling gathers the whole epoch once (one index op) and then yields contiguous slices,
    which costs far less than a gather per batch or a per-sample Dataset + collate.
    A trailing batch of one sample is dropped when shuffling: it carries almost no signal and
    breaks batch norm (statistics of one sample).

    Sharded (`shard(rank, world)`, data-parallel runs), `batch_size` stays the global batch: every
    rank draws the same permutation and takes its own contiguous part of each global batch, so the
    ranks together see exactly the batches one process would. A shuffled trailing batch with fewer
    samples than ranks is dropped (with 2 ranks: the same one-sample rule as above).
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, *, shuffle: bool,
                 generator: torch.Generator | None = None):
        self.x, self.y = x, y
        self.n = x.shape[0]
        self.batch_size = min(batch_size, self.n) if self.n else batch_size
        self.shuffle = shuffle
        self.generator = generator
        self.rank, self.world = 0, 1

    def shard(self, rank: int, world: int) -> None:
        """From now on yield rank `rank`'s part of every batch, out of `world` ranks."""
        self.rank, self.world = rank, world

    def __len__(self) -> int:
        full, rest = divmod(self.n, self.batch_size)
        smallest = max(2, self.world) if self.shuffle else 1  # the smallest trailing batch kept
        return full + (1 if rest >= smallest else 0)

    def __iter__(self):
        return self.iterate()

    def _bounds(self, i: int) -> tuple[int, int]:
        """Where this rank's part of batch i starts and ends in the epoch's order."""
        start = i * self.batch_size
        size = min(self.batch_size, self.n - start)
        if self.world == 1:
            return start, start + size
        base, extra = divmod(size, self.world)  # the first `extra` ranks take one sample more
        begin = start + self.rank * base + min(self.rank, extra)
        return begin, begin + base + (1 if self.rank < extra else 0)

    def share(self, i: int) -> float:
        """This rank's part of batch i relative to an even split (its size * world / the batch's size).
        Scaling a rank's mean loss by it makes the average of the ranks' gradients, which is what
        DistributedDataParallel computes, the gradient of the whole batch's mean loss."""
        if self.world == 1:
            return 1.0
        begin, end = self._bounds(i)
        return (end - begin) * self.world / min(self.batch_size, self.n - i * self.batch_size)

    def iterate(self, start: int = 0):
        """The epoch's batches from batch `start` on. The permutation is drawn whole either way, so
        a resumed epoch (generator state restored, `start` > 0) sees exactly the order it had.
        Sharded evaluation (unshuffled) skips a rank's empty parts of a batch smaller than world."""
        x, y = self.x, self.y
        if self.shuffle:
            # randperm on the CPU generator keeps the order identical on CPU and CUDA runs
            perm = torch.randperm(self.n, generator=self.generator).to(x.device, non_blocking=True)
            x, y = x[perm], y[perm]
        for i in range(start, len(self)):
            begin, end = self._bounds(i)
            if end > begin:
                yield x[begin:end], y[begin:end]
