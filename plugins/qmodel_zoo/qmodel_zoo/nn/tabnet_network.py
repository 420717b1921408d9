"""TabNet's networks (Arik & Pfister, 2019, as Qlib's ``pytorch_tabnet`` builds them): the encoder, the decoder used
for self-supervised pre-training, and the regressor (encoder + linear head) the trainer fits.

Every parameter has one name in the ``state_dict``: the fully connected layers the feature transformers share live
once on the encoder (or decoder) and are handed to each step at call time, so saved weights hold no aliases.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def sparsemax(z: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Euclidean projection of ``z`` onto the probability simplex along ``dim`` (Martins & Astudillo, 2016).

    The threshold is computed from the sorted values on the support, so autograd gives sparsemax's Jacobian
    (``diag(s) - s sᵀ / |S|``) without a hand-written backward.
    """
    z = z - z.max(dim=dim, keepdim=True).values
    ordered, _ = torch.sort(z, dim=dim, descending=True)
    shape = [1] * z.dim()
    shape[dim] = z.size(dim)
    ranks = torch.arange(1, z.size(dim) + 1, device=z.device, dtype=z.dtype).view(shape)
    cumulative = ordered.cumsum(dim) - 1
    support = (ranks * ordered > cumulative).sum(dim=dim, keepdim=True)
    tau = cumulative.gather(dim, support - 1) / support.to(z.dtype)
    return torch.clamp(z - tau, min=0)


class GhostBatchNorm(nn.Module):
    """Batch normalisation over chunks of ``vbs`` rows (one chunk when the batch is not larger)."""

    def __init__(self, width: int, vbs: int, momentum: float = 0.01) -> None:
        super().__init__()
        self.bn = nn.BatchNorm1d(width, momentum=momentum)
        self.vbs = vbs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised ``x``."""
        if x.size(0) <= self.vbs:
            return self.bn(x)
        return torch.cat([self.bn(part) for part in torch.chunk(x, x.size(0) // self.vbs, 0)], 0)


class GLUBlock(nn.Module):
    """Gated linear unit after ghost batch norm; the linear layer is its own, or a shared one passed in."""

    def __init__(self, in_dim: int, out_dim: int, vbs: int, own_fc: bool) -> None:
        super().__init__()
        self.fc = nn.Linear(in_dim, 2 * out_dim) if own_fc else None
        self.bn = GhostBatchNorm(2 * out_dim, vbs)
        self.out_dim = out_dim

    def forward(self, x: torch.Tensor, shared_fc: nn.Module | None = None) -> torch.Tensor:
        """``a * sigmoid(b)`` of the normalised projection ``[a, b]``."""
        fc = self.fc if self.fc is not None else shared_fc
        h = self.bn(fc(x))
        return h[:, : self.out_dim] * torch.sigmoid(h[:, self.out_dim :])


class FeatureTransformer(nn.Module):
    """Shared GLU blocks (their linear layers owned by the caller) then ``n_ind`` step-specific ones, with
    ``sqrt(0.5)``-scaled residual connections after the first block."""

    def __init__(self, in_dim: int, out_dim: int, n_shared: int, n_ind: int, vbs: int) -> None:
        super().__init__()
        self.shared = nn.ModuleList(GLUBlock(0, out_dim, vbs, own_fc=False) for _ in range(n_shared))
        first_own = n_shared == 0
        self.independent = nn.ModuleList(
            GLUBlock(in_dim if (first_own and i == 0) else out_dim, out_dim, vbs, own_fc=True) for i in range(n_ind)
        )
        self.scale = math.sqrt(0.5)

    def forward(self, x: torch.Tensor, shared_fcs: nn.ModuleList | None) -> torch.Tensor:
        """The transformed rows, ``(batch, out_dim)``."""
        blocks = [(block, fc) for block, fc in zip(self.shared, shared_fcs or [], strict=True)]
        blocks += [(block, None) for block in self.independent]
        for i, (block, fc) in enumerate(blocks):
            x = block(x, fc) if i == 0 else (x + block(x, fc)) * self.scale
        return x


def _shared_fcs(in_dim: int, out_dim: int, n_shared: int) -> nn.ModuleList:
    return nn.ModuleList(nn.Linear(in_dim if i == 0 else out_dim, 2 * out_dim) for i in range(n_shared))


class TabNetEncoder(nn.Module):
    """TabNet's encoder: input batch norm, a first feature transformer, then ``n_steps - 1`` decision steps, each
    an attentive transformer (sparsemax mask under the running prior) and a feature transformer of the masked input;
    the ReLU of each step's first ``n_d`` outputs is summed and projected to ``out_dim``.

    The prior is updated after each step (``prior * (relax - mask)``), as in the paper; Qlib's implementation
    updates a local copy only, so every step there sees the initial prior.
    """

    def __init__(self, inp_dim: int, out_dim: int, n_d: int = 64, n_a: int = 64, n_shared: int = 2,
                 n_ind: int = 2, n_steps: int = 5, relax: float = 1.3, vbs: int = 2048) -> None:
        super().__init__()
        width = n_d + n_a
        self.shared = _shared_fcs(inp_dim, width, n_shared)
        self.bn = nn.BatchNorm1d(inp_dim, momentum=0.01)
        self.first_step = FeatureTransformer(inp_dim, width, n_shared, n_ind, vbs)
        self.attention = nn.ModuleList(
            nn.Sequential(nn.Linear(n_a, inp_dim), GhostBatchNorm(inp_dim, vbs)) for _ in range(n_steps - 1))
        self.steps = nn.ModuleList(FeatureTransformer(inp_dim, width, n_shared, n_ind, vbs)
                                   for _ in range(n_steps - 1))
        self.fc = nn.Linear(n_d, out_dim)
        self.n_d, self.relax = n_d, relax

    def forward(self, x: torch.Tensor, priors: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(embedding (batch, out_dim), sparsity loss)``."""
        x = self.bn(x)
        shared = self.shared if len(self.shared) else None
        attended = self.first_step(x, shared)[:, self.n_d :]
        out = torch.zeros(x.size(0), self.n_d, device=x.device, dtype=x.dtype)
        sparsity = torch.zeros((), device=x.device, dtype=x.dtype)
        for attention, step in zip(self.attention, self.steps, strict=True):
            mask = sparsemax(attention(attended) * priors)
            priors = priors * (self.relax - mask)
            sparsity = sparsity + (-mask * torch.log(mask + 1e-10)).mean()
            h = step(x * mask, shared)
            out = out + torch.relu(h[:, : self.n_d])
            attended = h[:, self.n_d :]
        return self.fc(out), sparsity


class TabNetDecoder(nn.Module):
    """The pre-training decoder: ``n_steps`` feature transformers (+ a linear layer each) from the embedding back
    to the ``out_dim`` input features, summed."""

    def __init__(self, inp_dim: int, out_dim: int, n_shared: int = 2, n_ind: int = 2, n_steps: int = 5,
                 vbs: int = 2048) -> None:
        super().__init__()
        self.shared = _shared_fcs(inp_dim, out_dim, n_shared)
        self.steps = nn.ModuleList(FeatureTransformer(inp_dim, out_dim, n_shared, n_ind, vbs) for _ in range(n_steps))
        self.fcs = nn.ModuleList(nn.Linear(out_dim, out_dim) for _ in range(n_steps))

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        """Reconstructed features, ``(batch, out_dim)``."""
        shared = self.shared if len(self.shared) else None
        return sum(fc(step(embedding, shared)) for step, fc in zip(self.steps, self.fcs, strict=True))


class TabNetNet(nn.Module):
    """The fine-tuned model (Qlib's ``FinetuneModel``): the encoder under an all-ones prior, then a linear head."""

    def __init__(self, inp_dim: int, out_dim: int = 64, n_d: int = 64, n_a: int = 64, n_shared: int = 2,
                 n_ind: int = 2, n_steps: int = 5, relax: float = 1.3, vbs: int = 2048) -> None:
        super().__init__()
        self.encoder = TabNetEncoder(inp_dim, out_dim, n_d, n_a, n_shared, n_ind, n_steps, relax, vbs)
        self.head = nn.Linear(out_dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Scores, shape ``(batch,)``."""
        embedding, _ = self.encoder(x, torch.ones_like(x))
        return self.head(embedding).squeeze(-1)


def pretrain_loss(reconstruction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The paper's self-supervised loss: squared reconstruction errors of the masked cells, each feature scaled by
    its spread over the batch (``sqrt(sum (x - mean)²)``, taken from the true values; 1 where a feature is
    constant). Qlib scales by the spread of the reconstruction instead."""
    spread = torch.sqrt(torch.sum((target - target.mean(dim=0)) ** 2, dim=0))
    spread = torch.where(spread > 0, spread, torch.ones_like(spread))
    return torch.sum((((reconstruction - target) * mask) / spread) ** 2)
