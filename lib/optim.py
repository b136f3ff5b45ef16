"""The optimisers: stage 2's SGD with four parameter groups and a poly schedule (recipe 4),
stage 3's Caffe SGD with a step schedule (recipe 11.4)."""
import torch

# (lr multiplier, weight decay applies) for the four groups of parameter_groups().
GROUP_SETTINGS = ((1, True), (2, False), (10, True), (20, False))


def is_new_parameter(model, name):
    """Whether parameter (or state-dict key) ``name`` belongs to a new layer of ``model``.

    A model with a ``new_layers`` attribute (top-level module names, e.g. DeepLab's
    ``fc8_1`` .. ``fc8_4``) names its new layers; otherwise every parameter outside
    ``model.backbone`` is new (SGAN and the stage-1 classifier).
    """
    new_layers = getattr(model, "new_layers", None)
    if new_layers is None:
        return not name.startswith("backbone.")
    return name.split(".", 1)[0] in new_layers


def parameter_groups(model):
    """Backbone weights, backbone biases, new-layer weights, new-layer biases (recipe 4, 11.1,
    11.6).

    New layers are those of is_new_parameter (for SGAN f_key, f_query, fc6_CAM, fc8, fc9 and
    gamma). Frozen parameters (``requires_grad`` False) are in no group.
    """
    groups = ([], [], [], [])
    for name, param in model.named_parameters():
        if param.requires_grad:
            is_bias = name.endswith(".bias")
            groups[2 * is_new_parameter(model, name) + is_bias].append(param)
    return groups


def optimizer_groups(model, lr, weight_decay):
    """The four groups as optimiser dicts: ``lr`` and ``weight_decay`` include the multipliers."""
    return [{"params": params, "lr": lr * mult, "lr_mult": mult,
             "weight_decay": weight_decay if decays else 0.0}
            for params, (mult, decays) in zip(parameter_groups(model), GROUP_SETTINGS)]


def build_optimizer(model, lr, weight_decay, momentum=0.9):
    """SGD over backbone weights (x1), backbone biases (x2, no decay), new weights (x10), new
    biases (x20, no decay)."""
    return torch.optim.SGD(optimizer_groups(model, lr, weight_decay), lr=lr, momentum=momentum,
                           weight_decay=weight_decay)


def build_caffe_sgd(model, lr, weight_decay, momentum=0.9):
    """CaffeSGD over the same four groups as build_optimizer (recipe 11.4)."""
    return CaffeSGD(optimizer_groups(model, lr, weight_decay), lr=lr, momentum=momentum,
                    weight_decay=weight_decay)


class CaffeSGD(torch.optim.Optimizer):
    """Caffe's SGD: v <- momentum * v + lr * (g + weight_decay * w); w <- w - v (recipe 11.4).

    Each group's ``lr`` and ``weight_decay`` already hold its multipliers. The lr sits inside
    the velocity, so a lower lr leaves the velocity gathered so far at its old scale;
    torch.optim.SGD (v <- momentum * v + g + weight_decay * w; w <- w - lr * v) rescales it
    at once. The two agree while the lr is constant.
    """

    def __init__(self, params, lr, momentum=0.9, weight_decay=5e-4):
        if lr < 0 or momentum < 0 or weight_decay < 0:
            raise ValueError(f"CaffeSGD needs lr, momentum, weight_decay >= 0, got "
                             f"{lr}, {momentum}, {weight_decay}")
        super().__init__(params, {"lr": lr, "momentum": momentum, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure=None):
        """One update of every parameter that has a gradient; returns ``closure()`` if given."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is None:
                    continue
                update = param.grad.add(param, alpha=group["weight_decay"]).mul_(group["lr"])
                state = self.state[param]
                if "momentum_buffer" in state:
                    velocity = state["momentum_buffer"].mul_(group["momentum"]).add_(update)
                else:
                    velocity = state["momentum_buffer"] = update
                param.sub_(velocity)
        return loss


def poly_lr(base_lr, iteration, max_iter, power=0.9):
    """lr_i = base_lr * (1 - i / max_iter) ** power."""
    return base_lr * (1 - iteration / max_iter) ** power


def step_lr(base_lr, iteration, step_size, gamma):
    """Caffe's "step" policy: lr_i = base_lr * gamma ** floor(i / step_size)."""
    return base_lr * gamma ** (iteration // step_size)


def set_lr(optimizer, lr):
    """Set every group's lr to ``lr`` times its multiplier."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group["lr_mult"]
