"""Data loading: samples/s per worker and bytes per batch, against a published-style loader."""
import time

import numpy as np
import torch

from lib.dataset.voc12_sgan import VOC12ClsSalDataset
from lib.image import read_grey, read_image, scipy_zoom_to
from lib.normalisation import normalise_image
from lib.tooling.bench.common import bench_config, format_table, mebibytes, sync
from lib.training.distributed import DistContext
from lib.training.loop import build_train_loader, prepare_batch


class PublishedStyleDataset(VOC12ClsSalDataset):
    """For comparison only: training items made the way the published loader makes them.

    scipy.ndimage.zoom for every resize, a float32 image, and per sample the two N x N
    float32 attention matrices of recipe 3 built with NumPy: ``fg_pairs`` F = s s^T
    and ``bg_average`` B = (1-s)(1-s)^T / (sum(1-s) + 1e-5). The other keys equal
    VOC12ClsSalDataset's.
    """

    def __getitem__(self, index):
        name = self.samples[index]
        s, h = self.new_size, self.feat_size
        image = read_image(self.image_path(name))
        size = image.shape[:2]
        image = normalise_image(scipy_zoom_to(image, (s, s), 1), self.mean, self.std)
        sal = scipy_zoom_to(read_grey(self.sal_path(name)), (s, s), 1)
        seed = scipy_zoom_to(read_grey(self.seed_path(name)), (s, s), 0)
        if self.mirror and np.random.default_rng((self.flip_seed, index)).random() < 0.5:
            image, sal, seed = image[:, :, ::-1], sal[:, ::-1], seed[:, ::-1]
        small = scipy_zoom_to(np.ascontiguousarray(sal), (h, h), 1).astype(np.float64) / 255.0
        mask = (small > self.sal_thresh).astype(np.float32)
        mask[0, :] = mask[-1, :] = mask[:, 0] = mask[:, -1] = 0
        seed = scipy_zoom_to(np.ascontiguousarray(seed), (h, h), 0).astype(np.int64)
        last = self.description.num_fg_classes  # class c -> c - 1, else the ignore index C
        seed = np.where((seed >= 1) & (seed <= last), seed - 1, last)
        fg = mask.reshape(-1, 1)
        bg = 1.0 - fg
        return {
            "name": name,
            "image": torch.from_numpy(np.ascontiguousarray(image)),
            "label": torch.from_numpy(self.label(name)),
            "sal": torch.from_numpy(mask.astype(np.uint8)),
            "seed": torch.from_numpy(seed),
            "size": torch.tensor(size, dtype=torch.int64),
            "fg_pairs": torch.from_numpy(np.dot(fg, fg.T)),
            "bg_average": torch.from_numpy(np.dot(bg, bg.T) / (bg.sum() + 1e-5)),
        }


LOADERS = (  # (key, description, dataset class, keyword arguments)
    ("published", "published-style: scipy, float32, N x N masks", PublishedStyleDataset, {}),
    ("float32", "this repository, float32 items (default)", VOC12ClsSalDataset, {}),
    ("uint8", "this repository, uint8 items (training)", VOC12ClsSalDataset,
     {"normalise": False}),
)


def batch_bytes(batch):
    """Bytes of the tensors in a collated batch."""
    return sum(v.numel() * v.element_size() for v in batch.values() if torch.is_tensor(v))


def _loader_row(dataset, cfg, options, device):
    loader = build_train_loader(dataset, cfg, DistContext(0, 1, device), workers=options.workers)
    batches = iter(loader)
    first = next(batches)  # starts the workers
    start = time.perf_counter()
    for _ in range(options.data_batches):
        next(batches)
    elapsed = time.perf_counter() - start
    del batches, loader
    prepare_batch(first, cfg, device)
    sync(device)
    start = time.perf_counter()
    prepare_batch(first, cfg, device)
    sync(device)
    to_device = time.perf_counter() - start
    samples = options.data_batches * options.data_batch
    return {"samples_per_s_per_worker": samples / elapsed / max(options.workers, 1),
            "batch_bytes": batch_bytes(first), "to_device_ms": 1e3 * to_device}


def bench_data(root, options, device):
    """Samples/s per worker, bytes per batch and batch-to-device time of each loader."""
    cfg = bench_config(root, options, batch_size=options.data_batch, num_worker=options.workers)
    samples = (options.data_batches + 1) * options.data_batch
    rows = {}
    for key, _, dataset_class, kwargs in LOADERS:
        dataset = dataset_class(root, cfg.cue_file, max_iters=samples, new_size=options.size,
                                mean=cfg.mean, std=cfg.std, **kwargs)
        rows[key] = _loader_row(dataset, cfg, options, device)
    published, ours = rows["published"], rows["uint8"]
    return {"batch": options.data_batch, "workers": options.workers, "loaders": rows,
            "speedup": ours["samples_per_s_per_worker"] / published["samples_per_s_per_worker"],
            "bytes_ratio": published["batch_bytes"] / ours["batch_bytes"]}


def data_table(data):
    rows = []
    for key, description, _, _ in LOADERS:
        row = data["loaders"][key]
        rows.append([description, f"{row['samples_per_s_per_worker']:.1f}",
                     mebibytes(row["batch_bytes"]), f"{row['to_device_ms']:.1f}"])
    return (f"\ndata loading: batch {data['batch']}, {data['workers']} worker(s)\n"
            + format_table(["loader", "samples/s per worker", "MiB per batch",
                            "batch to device, ms"], rows)
            + f"\nuint8 items vs published-style: {data['speedup']:.1f}x the samples/s, "
              f"{data['bytes_ratio']:.0f}x fewer bytes per batch")
