"""The dense CRF (Kraehenbuehl and Koltun, through pydensecrf) on an image, as this field uses it.

One wrapper for every caller: CRF seeds (recipe 6), the training-time CRF of stage 3's
constrain loss (recipe 11.3, kernels scaled by 1/12, unary energy -p) and stage 3's full-size
test CRF (recipe 11.5, unary energy -log p). The kernels are the reference code's: a Gaussian
(sxy 3, compat 3) and a bilateral kernel (sxy 80, srgb 13, compat 10), their spatial widths
divided by ``scale``; pydensecrf's defaults otherwise (DIAG_KERNEL, NORMALIZE_SYMMETRIC).
pydensecrf is imported where a CRF runs, so code that never runs one does not need it.
"""
import numpy as np

GAUSSIAN_SXY, GAUSSIAN_COMPAT = 3, 3
BILATERAL_SXY, BILATERAL_SRGB, BILATERAL_COMPAT = 80, 13, 10
PROBABILITY_FLOOR = 1e-5  # -log(p) of a probability clipped here (pydensecrf's unary_from_softmax)


def unary_from_probabilities(probs):
    """float32 (labels, H, W) energy -log(p), p clipped into [1e-5, 1] as pydensecrf does."""
    probs = np.clip(probs, PROBABILITY_FLOOR, 1.0)
    return (-np.log(probs)).astype(np.float32)


def dense_crf(unary, image_rgb, scale=1.0, iterations=10):
    """Mean-field marginals, float32 (labels, H, W), of the dense CRF with unary energy
    ``unary`` (labels, H, W) on the uint8 RGB image (H, W, 3)."""
    import pydensecrf.densecrf as dcrf

    labels, height, width = unary.shape
    crf = dcrf.DenseCRF2D(width, height, labels)
    crf.setUnaryEnergy(np.ascontiguousarray(unary.reshape(labels, -1), dtype=np.float32))
    crf.addPairwiseGaussian(sxy=GAUSSIAN_SXY / scale, compat=GAUSSIAN_COMPAT)
    crf.addPairwiseBilateral(sxy=BILATERAL_SXY / scale, srgb=BILATERAL_SRGB,
                             rgbim=np.ascontiguousarray(image_rgb, dtype=np.uint8),
                             compat=BILATERAL_COMPAT)
    return np.asarray(crf.inference(iterations), dtype=np.float32).reshape(labels, height, width)
