"""lib.losses.balanced_bce (recipe 14.2) against the formula computed one number at a time."""
import math

import pytest
import torch

from lib.losses import balanced_bce


def softplus(x):
    return math.log1p(math.exp(-abs(x))) + max(x, 0.0)


def loss_by_hand(score, label):
    """Per image: mean over present classes of softplus(-s) (left out if none is present) plus
    mean over absent classes of softplus(s) (left out if none is absent); mean over images."""
    total = 0.0
    for s_row, l_row in zip(score.tolist(), label.tolist()):
        present = [softplus(-s) for s, l in zip(s_row, l_row) if l == 1]
        absent = [softplus(s) for s, l in zip(s_row, l_row) if l == 0]
        total += (sum(present) / len(present) if present else 0.0)
        total += (sum(absent) / len(absent) if absent else 0.0)
    return total / len(score)


@pytest.fixture
def batch():
    generator = torch.Generator().manual_seed(5)
    score = 4 * torch.randn(5, 7, generator=generator, dtype=torch.float64)
    label = (torch.rand(5, 7, generator=generator) < 0.3).double()
    label[1] = 0  # no present class: the absent term only
    label[3] = 1  # every class present: the present term only
    label[4] = 0
    label[4, 2] = 1  # one present class among six absent ones
    return score, label


def test_balanced_bce_is_the_formula(batch):
    score, label = batch
    assert 0 < label[0].sum() < 7 and 0 < label[2].sum() < 7  # mixed images too
    loss = balanced_bce(score.float(), label.float())
    assert loss.shape == ()
    assert loss.item() == pytest.approx(loss_by_hand(score, label), rel=1e-6)


def test_balanced_bce_weighs_present_and_absent_classes_equally(batch):
    score, label = batch
    one = balanced_bce(score[4:5].float(), label[4:5].float())
    present = softplus(-score[4, 2].item())
    absent = sum(softplus(score[4, c].item()) for c in range(7) if c != 2) / 6
    assert one.item() == pytest.approx(present + absent, rel=1e-6)
    # the soft margin divides the one present class's term by 7, this loss does not
    margin = torch.nn.functional.multilabel_soft_margin_loss(score[4:5], label[4:5]).item()
    assert margin == pytest.approx((present + 6 * absent) / 7, rel=1e-6)


def test_balanced_bce_is_a_mean_over_num_samples_and_has_gradients(batch):
    score, label = batch
    score = score.float().requires_grad_()
    whole = balanced_bce(score, label.float())
    parts = balanced_bce(score[:2], label[:2].float(), num_samples=5) + \
        balanced_bce(score[2:], label[2:].float(), num_samples=5)
    assert parts.item() == pytest.approx(whole.item(), rel=1e-6)
    whole.backward()
    assert torch.isfinite(score.grad).all() and score.grad.abs().sum() > 0
