"""SGAN: saliency-guided self-attention network for weakly supervised segmentation."""
