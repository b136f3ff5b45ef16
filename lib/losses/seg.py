"""Stage 3's loss (recipe 11.3): exactly the published Python layers of ``dsrg/pylayers``.

    p = (softmax(z) + 1e-4) / sum_c (softmax(z) + 1e-4), then max(p, 1e-4) in value only
    seed      = BalancedSeedLossLayer: -log p on the seeds, background and foreground each
                normalised by its own seed count per image, averaged over images
    log Q     = CRFLayer: dense CRF (unary energy -p, kernels / 12) on image41, Q floored at
                1e-4 and renormalised; backward SEC's pseudo-gradient (1 - Q) * g to p
    constrain = ConstrainLossLayer: mean over pixels of sum_c Q log(clip(Q / p, 0.05, 20))

Caffe sums the gradients that reach the shared probability blob from the three layers; autograd
does the same here. Tensors are float32, as Caffe's blobs were; the CRF layer's floor and
renormalisation of Q are float64, as its NumPy result array was. z has a channel for each of
the dataset's classes 0..C (VOC 21, COCO 81); a seed label C + 1 (the channel count) is no
seed.
"""
import numpy as np
import torch

from lib.crf.batch import BatchCRF
from lib.dataset.description import VOC12

# The published layers' one floor ``min_prob``: the softmax smoothing, the in-place clamp of p,
# the seed-count floor and the floor of the CRF's marginals.
MIN_PROB = 1e-4
CRF_SCALE = 12.0      # the CRF layer's scale_factor: kernel widths divided by it at 41 x 41
CRF_ITERATIONS = 10
RATIO_CLIP = (0.05, 20.0)  # ConstrainLossLayer's clip of Q / p


class _ClampInPlace(torch.autograd.Function):
    """max(p, MIN_PROB) in value, the gradient passed unchanged: the published CRF layer clamps
    the shared probability blob in place, which Caffe's backward never sees."""

    @staticmethod
    def forward(ctx, probs):
        return probs.clamp(min=MIN_PROB)

    @staticmethod
    def backward(ctx, grad):
        return grad


def _floored_and_renormalised(marginals):
    """float32 C-contiguous max(Q, MIN_PROB) / its sum over classes (axis 1), computed in
    float64 as the published layer's result array was. Made C-contiguous first: NumPy's order
    of additions, and torch's later, follows the memory layout, and the same Q must give the
    same loss and gradient whatever layout the CRF handed back."""
    floored = np.maximum(np.ascontiguousarray(marginals, dtype=np.float64), MIN_PROB)
    return (floored / floored.sum(axis=1, keepdims=True)).astype(np.float32)


class CRFLogMarginals(torch.autograd.Function):
    """``apply(probs, images, crf)``: log Q of the published CRFLayer for probs N x L x h x w
    and uint8 images N x h x w x 3 (given to the CRF as they are: the published layer passes
    its BGR image unchanged); backward is SEC's pseudo-gradient (1 - Q) * g, none to the image."""

    @staticmethod
    def forward(ctx, probs, images, crf):
        marginals = crf(-probs.detach().cpu().numpy(), images, CRF_SCALE, CRF_ITERATIONS)
        marginals = torch.from_numpy(_floored_and_renormalised(marginals)).to(probs.device)
        ctx.save_for_backward(marginals)
        return marginals.log()

    @staticmethod
    def backward(ctx, grad):
        marginals, = ctx.saved_tensors
        return (1 - marginals) * grad, None, None


def smoothed_probabilities(z):
    """p of recipe 11.3 in float32: the softmax over classes smoothed by MIN_PROB, renormalised,
    and clamped at MIN_PROB in value only."""
    shifted = torch.softmax(z.float(), dim=1) + MIN_PROB
    return _ClampInPlace.apply(shifted / shifted.sum(dim=1, keepdim=True))


def seed_loss(probs, labels, num_samples):
    """BalancedSeedLossLayer: per image, -sum log p over the background seeds / their count
    (floored at MIN_PROB), the same over the foreground seeds; summed over the images and
    divided by ``num_samples``. ``labels``: N x h x w in 0..C + 1 (C + 1, the channel count of
    ``probs``: no seed)."""
    seeded = labels != probs.shape[1]
    seed_class = torch.where(seeded, labels, torch.zeros_like(labels))
    log_p = probs.log().gather(1, seed_class.unsqueeze(1)).squeeze(1)
    background = labels == 0
    foreground = seeded & ~background

    def per_image(mask):
        count = mask.sum(dim=(1, 2)).float().clamp(min=MIN_PROB)
        return torch.where(mask, log_p, torch.zeros_like(log_p)).sum(dim=(1, 2)) / count

    return -(per_image(background).sum() + per_image(foreground).sum()) / num_samples


def constrain_loss(probs, log_marginals, num_samples):
    """ConstrainLossLayer: sum over pixels of sum_c Q log(clip(Q / p, 0.05, 20)), Q =
    exp(log Q), divided by num_samples x h x w; the clip passes gradient only inside."""
    marginals = log_marginals.exp()
    ratio = (marginals / probs).clamp(*RATIO_CLIP)
    height, width = probs.shape[2:]
    return (marginals * ratio.log()).sum() / (num_samples * height * width)


def _check_inputs(z, labels, images, num_samples):
    """ValueError naming the argument unless the shapes, types and values are as seg_loss
    documents them (z was checked by _check_z)."""
    count, _, height, width = z.shape
    if tuple(labels.shape) != (count, height, width) or labels.is_floating_point() \
            or labels.dtype == torch.bool:
        raise ValueError(f"seg_loss label41 must be integer {count} x {height} x {width}, got "
                         f"{labels.dtype} {tuple(labels.shape)}")
    unlabeled = z.shape[1]
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) > unlabeled):
        raise ValueError(f"seg_loss label41 values must be in 0..{unlabeled}, got "
                         f"{int(labels.min())}..{int(labels.max())}")
    if tuple(images.shape) != (count, height, width, 3) or images.dtype != np.uint8:
        raise ValueError(f"seg_loss image41 must be uint8 {count} x {height} x {width} x 3, got "
                         f"{images.dtype} {tuple(images.shape)}")
    if num_samples is None:
        if count == 0:
            raise ValueError("seg_loss got an empty batch without num_samples")
    elif not (isinstance(num_samples, (int, np.integer)) and num_samples >= max(count, 1)):
        raise ValueError(f"seg_loss num_samples must be an integer >= the batch size {count} "
                         f"(and >= 1), got {num_samples!r}")


def _check_z(z, num_classes):
    """ValueError unless z is a float tensor N x num_classes x h x w."""
    if not (torch.is_tensor(z) and z.is_floating_point() and z.ndim == 4
            and z.shape[1] == num_classes):
        found = f"{z.dtype} {tuple(z.shape)}" if torch.is_tensor(z) else type(z).__name__
        raise ValueError(f"seg_loss z must be a float tensor N x {num_classes} x h x w, "
                         f"got {found}")


def seg_loss(z, label41, image41, num_samples=None, crf=None, num_classes=VOC12.num_classes):
    """(total, seed, constrain) of recipe 11.3, float32 scalars; ``total.backward()`` gives the
    published gradient. z: float N x (C + 1) x h x w (any float dtype; VOC 21 classes);
    label41: int64 N x h x w in 0..C + 1 (C + 1: no seed); image41: uint8 N x h x w x 3 BGR
    (tensor or array), the image the CRF
    sees. ``num_samples``: the global batch size when this process holds part of it (both
    terms are means over images, so the per-process losses then sum to the global batch's);
    default N. ``crf``: a BatchCRF (default: serial in this process). ``num_classes``: C + 1,
    the dataset's classes with background (VOC 21, COCO 81)."""
    _check_z(z, num_classes)
    labels = torch.as_tensor(label41, device=z.device)
    images = image41.cpu().numpy() if torch.is_tensor(image41) else np.asarray(image41)
    _check_inputs(z, labels, images, num_samples)
    num_samples = len(z) if num_samples is None else int(num_samples)
    crf = crf if crf is not None else BatchCRF()
    with torch.autocast(z.device.type, enabled=False):
        probs = smoothed_probabilities(z)
        seed = seed_loss(probs, labels.long(), num_samples)
        log_marginals = CRFLogMarginals.apply(probs, images, crf)
        constrain = constrain_loss(probs, log_marginals, num_samples)
    return seed + constrain, seed, constrain
