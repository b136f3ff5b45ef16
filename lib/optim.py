"""The paper's optimiser: SGD with four parameter groups and a poly schedule (SPEC section 4)."""
import torch

# (lr multiplier, weight decay applies) for the four groups of parameter_groups().
GROUP_SETTINGS = ((1, True), (2, False), (10, True), (20, False))


def parameter_groups(model):
    """Backbone weights, backbone biases, new-layer weights, new-layer biases (SPEC section 4).

    "Backbone" is every parameter under ``model.backbone``; all others (for SGAN f_key,
    f_query, fc6_CAM, fc8, fc9 and gamma) are new layers.
    """
    groups = ([], [], [], [])
    for name, param in model.named_parameters():
        is_bias = name.endswith(".bias")
        is_new = not name.startswith("backbone.")
        groups[2 * is_new + is_bias].append(param)
    return groups


def build_optimizer(model, lr, weight_decay, momentum=0.9):
    """SGD over backbone weights (x1), backbone biases (x2, no decay), new weights (x10), new biases (x20, no decay)."""
    groups = []
    for params, (mult, decays) in zip(parameter_groups(model), GROUP_SETTINGS):
        groups.append({"params": params, "lr": lr * mult, "lr_mult": mult,
                       "weight_decay": weight_decay if decays else 0.0})
    return torch.optim.SGD(groups, lr=lr, momentum=momentum, weight_decay=weight_decay)


def poly_lr(base_lr, iteration, max_iter, power=0.9):
    """lr_i = base_lr * (1 - i / max_iter) ** power."""
    return base_lr * (1 - iteration / max_iter) ** power


def set_lr(optimizer, lr):
    """Set every group's lr to ``lr`` times its multiplier."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group["lr_mult"]
