"""Distances between two batches of hidden states (source and target domain), as ADARNN's ``loss_type`` names them.

``cosine`` (``cos``) is Qlib's: one minus the cosine similarity of the two batches' overall means (two scalars,
so 0 when they have the same sign and 2 otherwise); ``mmd`` (``mmd_lin``): squared distance of the mean vectors;
``mmd_rbf``: the Gaussian-kernel MMD with five bandwidths around the mean pairwise distance (Qlib computes it
without gradient, which makes it a constant for training; here it is differentiable); ``coral``: distance of the
two covariance matrices divided by ``4·d²``; ``pairwise``: Frobenius norm of the pairwise squared distances.

Not offered, with the reason: ``kl`` and ``js`` take the logarithm of hidden states, which are not probabilities
(Qlib's give NaN on any negative state); ``mine`` and ``adv`` build a new, untrained network at every call.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from qcore.errors import ConfigError

REFUSED = {
    "kl": "takes the logarithm of hidden states, which are not probabilities",
    "js": "takes the logarithm of hidden states, which are not probabilities",
    "mine": "builds a new, untrained estimator network at every call",
    "adv": "builds a new, untrained discriminator at every call",
}


def _cosine(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    a, b = source.mean().reshape(1), target.mean().reshape(1)
    return 1 - torch.nn.functional.cosine_similarity(a, b, dim=0)


def _mmd_linear(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    delta = source.mean(dim=0) - target.mean(dim=0)
    return delta.dot(delta)


def _mmd_rbf(source: torch.Tensor, target: torch.Tensor, kernel_mul: float = 2.0,
             kernel_num: int = 5) -> torch.Tensor:
    total = torch.cat([source, target], dim=0)
    n = total.shape[0]
    distances = ((total.unsqueeze(0) - total.unsqueeze(1)) ** 2).sum(2)
    bandwidth = distances.detach().sum() / (n * n - n) / kernel_mul ** (kernel_num // 2)
    kernels = sum(torch.exp(-distances / (bandwidth * kernel_mul**i)) for i in range(kernel_num))
    m = source.shape[0]
    return (kernels[:m, :m].mean() + kernels[m:, m:].mean() - kernels[:m, m:].mean() - kernels[m:, :m].mean())


def _coral(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    d = source.shape[1]

    def covariance(x: torch.Tensor) -> torch.Tensor:
        centred_sum = x.sum(dim=0, keepdim=True)
        return (x.t() @ x - centred_sum.t() @ centred_sum / x.shape[0]) / (x.shape[0] - 1)

    return (covariance(source) - covariance(target)).pow(2).sum() / (4 * d * d)


def _pairwise(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return torch.norm(((source.unsqueeze(1) - target.unsqueeze(0)) ** 2).sum(2))


TRANSFER_LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "cosine": _cosine, "cos": _cosine, "mmd": _mmd_linear, "mmd_lin": _mmd_linear, "mmd_rbf": _mmd_rbf,
    "coral": _coral, "pairwise": _pairwise,
}


def transfer_loss(name: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The distance called ``name``, or a ConfigError saying why it is not offered."""
    if name in TRANSFER_LOSSES:
        return TRANSFER_LOSSES[name]
    if name in REFUSED:
        raise ConfigError(f"loss_type {name!r} is not offered: Qlib's {REFUSED[name]}", path="loss_type")
    raise ConfigError(f"loss_type must be one of {', '.join(TRANSFER_LOSSES)}, got {name!r}", path="loss_type")
