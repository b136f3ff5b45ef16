"""Batches that are the same whatever the number of processes, and that can resume."""
import torch
from torch.utils.data import Sampler

from lib.errors import UserError


class GlobalBatchSampler(Sampler):
    """Shuffled global batches of ``batch_size``, of which each process takes its share.

    The order is one seeded permutation of the dataset, cut into global batches (the last
    partial batch dropped), so every process agrees on it and every sample is seen as often
    as on one device. Process ``rank`` of ``world_size`` takes a contiguous slice of each
    global batch; the slices differ by at most one sample when the batch does not divide.
    Iteration starts at global batch ``start_batch`` (for resuming).
    """

    def __init__(self, num_samples, batch_size, seed, rank=0, world_size=1, start_batch=0):
        if batch_size < world_size:
            raise UserError(f"config key 'batch_size' ({batch_size}) is smaller than the "
                            f"{world_size} processes")
        self.num_samples = num_samples
        self.batch_size = batch_size
        self.seed = seed
        self.start_batch = start_batch
        bounds = [batch_size * r // world_size for r in range(world_size + 1)]
        self.share = slice(bounds[rank], bounds[rank + 1])

    @property
    def num_batches(self):
        return self.num_samples // self.batch_size

    def __len__(self):
        return max(0, self.num_batches - self.start_batch)

    def __iter__(self):
        order = torch.randperm(self.num_samples, generator=torch.Generator().manual_seed(self.seed))
        for b in range(self.start_batch, self.num_batches):
            batch = order[b * self.batch_size:(b + 1) * self.batch_size]
            yield batch[self.share].tolist()
