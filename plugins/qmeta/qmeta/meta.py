"""DDG-DA's meta-model: a weight for each past period from how well that period's data has predicted lately.

A meta-task is "train on periods ``0..t-1``, predict period ``t``". Its input is the similarity block of
:class:`~qmeta.proxy.PeriodData`: for each training period ``p``, the mean daily IC of ``p``'s ridge model over each
of the ``hist_steps`` periods before ``t`` (an ``hist_steps × t`` matrix). The meta-model (Qlib's ``TimeWeightMeta``
in spirit) maps each period's column to a score with one linear layer shared by all periods, centres the scores and
turns them into weights in ``[1/clip, clip]`` (``exp(tanh(s)·log clip)``). It is trained end to end: the weighted
ridge regression of period ``t``'s label on the proxy features, fitted on the weighted training periods in closed
form from the period Gram matrices, should predict period ``t`` well (mean squared error). The trained meta-model
then weighs the periods of the real task (train on every period of the span, predict the next, unseen one).

Torch is imported when a meta-model is trained.
"""

from __future__ import annotations

import math

import attrs
import numpy as np

from qmeta.proxy import PeriodData


@attrs.frozen
class MetaResult:
    """A trained meta-model's weights for the real task, and how training went.

    :ivar weights: one weight per period of the span.
    :ivar tasks: meta-tasks it was trained on (0: too short a history; the weights are then all 1).
    :ivar loss_before: the meta-tasks' mean loss with equal weights.
    :ivar loss_after: the same with the learned weights.
    """

    weights: np.ndarray
    tasks: int
    loss_before: float = math.nan
    loss_after: float = math.nan


def similarity_blocks(data: PeriodData, t: int, hist_steps: int) -> np.ndarray:
    """``(hist_steps, t)``: mean daily IC of each period ``p < t``'s model over each of the ``hist_steps`` periods
    before ``t`` (oldest first; periods before the span's start are 0)."""
    out = np.zeros((hist_steps, t))
    for h in range(hist_steps):
        period = t - hist_steps + h
        if period < 0:
            continue
        rows = data.ic[data.period_of_day == period, :t]
        if len(rows):
            with np.errstate(all="ignore"):
                means = np.nanmean(rows, axis=0) if np.isfinite(rows).any() else np.zeros(t)
            out[h] = np.nan_to_num(means)
    return out


def train_meta(data: PeriodData, *, hist_steps: int, clip_weight: float, alpha: float, epochs: int, lr: float,
               seed: int, min_train: int = 2) -> MetaResult:  # fmt: skip
    """Train the meta-model on the span's meta-tasks (test period ``t`` from ``min_train`` on) and weigh the
    span's periods for the task that follows the span. With no meta-task, every weight is 1."""
    periods = data.periods
    first = max(min_train, 1)
    tasks = list(range(first, periods))
    if not tasks:
        return MetaResult(np.ones(periods), 0)
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: threads only fight over the cores
    try:
        return _train(data, tasks, hist_steps=hist_steps, clip_weight=clip_weight, alpha=alpha, epochs=epochs,
                      lr=lr, seed=seed)  # fmt: skip
    finally:
        torch.set_num_threads(threads)


def _train(data: PeriodData, tasks: list[int], *, hist_steps: int, clip_weight: float, alpha: float, epochs: int,
           lr: float, seed: int) -> MetaResult:  # fmt: skip
    """:func:`train_meta`'s optimisation (torch imported, one thread)."""
    import torch

    periods = data.periods
    torch.manual_seed(seed)
    dtype = torch.float64
    blocks = np.zeros((len(tasks) + 1, hist_steps, periods))
    mask = np.zeros((len(tasks) + 1, periods), dtype=bool)
    for i, t in enumerate([*tasks, periods]):
        blocks[i, :, :t] = similarity_blocks(data, t, hist_steps)
        mask[i, :t] = True
    scale = float(np.std(blocks[mask[:, None, :].repeat(hist_steps, axis=1)])) or 1.0
    q = torch.tensor(blocks / scale, dtype=dtype)
    m = torch.tensor(mask, dtype=dtype)
    gram = torch.tensor(data.gram, dtype=dtype)
    xty = torch.tensor(data.xty, dtype=dtype)
    test = torch.tensor(tasks)
    f = gram.shape[-1]
    eye = torch.eye(f, dtype=dtype)
    linear = torch.nn.Linear(hist_steps, 1, dtype=dtype)
    torch.nn.init.zeros_(linear.weight)
    torch.nn.init.zeros_(linear.bias)
    log_clip = math.log(clip_weight)

    def weights(rows: slice) -> torch.Tensor:
        scores = linear(q[rows].transpose(1, 2)).squeeze(-1)
        mk = m[rows]
        centred = scores - (scores * mk).sum(1, keepdim=True) / mk.sum(1, keepdim=True)
        return torch.exp(torch.tanh(centred) * log_clip) * mk

    def task_loss(w: torch.Tensor) -> torch.Tensor:
        a = torch.einsum("tp,pij->tij", w, gram)
        penalty = alpha * torch.diagonal(a, dim1=-2, dim2=-1).sum(-1) / f
        a = a + penalty.clamp_min(1e-12)[:, None, None] * eye
        beta = torch.linalg.solve(a, torch.einsum("tp,pi->ti", w, xty))
        g_t, b_t = gram[test], xty[test]
        sse = (torch.tensor(data.yty[tasks], dtype=dtype) - 2 * (beta * b_t).sum(-1)
               + torch.einsum("ti,tij,tj->t", beta, g_t, beta))  # fmt: skip
        return (sse / torch.tensor(data.rows[tasks], dtype=dtype)).mean()

    train_rows = slice(0, len(tasks))
    with torch.no_grad():
        before = float(task_loss(m[train_rows]))
    optimiser = torch.optim.Adam(linear.parameters(), lr=lr)
    for _ in range(epochs):
        optimiser.zero_grad()
        loss = task_loss(weights(train_rows))
        loss.backward()
        optimiser.step()
    with torch.no_grad():
        after = float(task_loss(weights(train_rows)))
        final = weights(slice(len(tasks), len(tasks) + 1))[0].numpy()
    return MetaResult(np.asarray(final, dtype=np.float64), len(tasks), before, after)
