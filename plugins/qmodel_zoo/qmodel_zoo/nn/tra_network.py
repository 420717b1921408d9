"""The networks of TRA (Lin et al., KDD 2021, "Learning Multiple Stock Trading Patterns with Temporal Routing
Adaptor and Optimal Transport") as Qlib's ``pytorch_tra`` builds them, and its transport functions.

A backbone (:class:`TRARNN` or :class:`TRATransformer`) turns a ``(batch, seq_len, input_size)`` window into a
hidden vector; :class:`TRAHead` holds ``num_states`` linear predictors and a router that reads the hidden vector
(``LR``) and/or the recent prediction errors of every predictor (``TPE``, a recurrent net over the memory) and picks
one predictor (Gumbel-softmax in training, argmax in inference). Parameter names follow Qlib's, so a Qlib
``init_state`` file (``{"model": ..., "tra": ...}``) loads.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

SRC_INFO = ("LR", "TPE", "LR_TPE")
TRANSPORTS = ("none", "router", "oracle")


class TRARNN(nn.Module):
    """Qlib TRA's RNN backbone: an input projection when ``hidden_size < input_size``, a recurrent net, and
    (``use_attn``) concat attention; the output is the last hidden state averaged over layers, next to the
    attention-pooled sequence."""

    def __init__(self, input_size: int = 16, hidden_size: int = 64, num_layers: int = 2, rnn_arch: str = "GRU",
                 use_attn: bool = True, dropout: float = 0.0) -> None:
        super().__init__()
        self.rnn_arch, self.use_attn = rnn_arch, use_attn
        self.input_proj = nn.Linear(input_size, hidden_size) if hidden_size < input_size else None
        self.rnn = getattr(nn, rnn_arch)(input_size=min(input_size, hidden_size), hidden_size=hidden_size,
                                         num_layers=num_layers, batch_first=True, dropout=dropout)
        if use_attn:
            self.W = nn.Linear(hidden_size, hidden_size)
            self.u = nn.Linear(hidden_size, 1, bias=False)
        self.output_size = hidden_size * 2 if use_attn else hidden_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Hidden vectors, ``(batch, output_size)``."""
        out, last = self.rnn(x if self.input_proj is None else self.input_proj(x))
        if self.rnn_arch == "LSTM":
            last = last[0]
        last = last.mean(dim=0)
        if not self.use_attn:
            return last
        scores = self.u(self.W(out).tanh()).softmax(dim=1)
        return torch.cat([last, (out * scores).sum(dim=1)], dim=1)


class _Positions(nn.Module):
    """Sine/cosine position encodings added to a time-first sequence, then dropout."""

    def __init__(self, width: int, dropout: float, max_len: int = 5000) -> None:
        super().__init__()
        self.dropout = nn.Dropout(p=dropout)
        position = torch.arange(max_len, dtype=torch.float).unsqueeze(1)
        div = torch.exp(torch.arange(0, width, 2).float() * (-math.log(10000.0) / width))
        pe = torch.zeros(max_len, width)
        pe[:, 0::2] = torch.sin(position * div)
        pe[:, 1::2] = torch.cos(position * div)[:, : width // 2]
        self.register_buffer("pe", pe.unsqueeze(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` (time, batch, width) with the encodings added."""
        return self.dropout(x + self.pe[: x.size(0)])


class TRATransformer(nn.Module):
    """Qlib TRA's Transformer backbone: position encodings on the input, a projection, an encoder stack
    (feed-forward width ``4 * hidden_size``); the output is the last step."""

    def __init__(self, input_size: int = 16, hidden_size: int = 64, num_layers: int = 2, num_heads: int = 2,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.input_proj = nn.Linear(input_size, hidden_size)
        self.pe = _Positions(input_size, dropout)
        layer = nn.TransformerEncoderLayer(nhead=num_heads, dropout=dropout, d_model=hidden_size,
                                           dim_feedforward=hidden_size * 4)
        self.encoder = nn.TransformerEncoder(layer, num_layers=num_layers, enable_nested_tensor=False)
        self.output_size = hidden_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Hidden vectors, ``(batch, hidden_size)``."""
        out = self.encoder(self.input_proj(self.pe(x.permute(1, 0, 2).contiguous())))
        return out[-1]


class TRAHead(nn.Module):
    """``num_states`` linear predictors and, with more than one, the router (see the module docstring)."""

    def __init__(self, input_size: int, num_states: int = 1, hidden_size: int = 8, rnn_arch: str = "GRU",
                 num_layers: int = 1, dropout: float = 0.0, tau: float = 1.0, src_info: str = "LR_TPE") -> None:
        super().__init__()
        self.num_states, self.tau, self.src_info, self.rnn_arch = num_states, tau, src_info, rnn_arch
        self.predictors = nn.Linear(input_size, num_states)
        if num_states > 1:
            if "TPE" in src_info:
                self.router = getattr(nn, rnn_arch)(input_size=num_states, hidden_size=hidden_size,
                                                    num_layers=num_layers, batch_first=True, dropout=dropout)
                self.fc = nn.Linear(hidden_size + input_size if "LR" in src_info else hidden_size, num_states)
            else:
                self.fc = nn.Linear(input_size, num_states)

    def reset_parameters(self) -> None:
        """Fresh predictors and router (after the backbone's pre-training)."""
        for child in self.children():
            child.reset_parameters()

    def forward(self, hidden: torch.Tensor, hist_loss: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """``(predictions of every predictor (batch, states), hard Gumbel choice, router probabilities)``; the
        last two are None with one state. With daily memory ``hist_loss`` has one row per day, and so have the
        choice and the probabilities."""
        preds = self.predictors(hidden)
        if self.num_states == 1:
            return preds, None, None
        if "TPE" in self.src_info:
            out = self.router(hist_loss)[1]
            out = (out[0] if self.rnn_arch == "LSTM" else out).mean(dim=0)
            if "LR" in self.src_info:
                out = torch.cat([hidden, out], dim=-1)
        else:
            out = hidden
        out = self.fc(out)
        choice = F.gumbel_softmax(out, dim=-1, tau=self.tau, hard=True)
        return preds, choice, torch.softmax(out / self.tau, dim=-1)


class TRANet(nn.Module):
    """Backbone (``model``, Qlib's name) and head (``tra``)."""

    def __init__(self, model_type: str, model_config: dict[str, Any], tra_config: dict[str, Any]) -> None:
        super().__init__()
        self.model = TRARNN(**model_config) if model_type == "RNN" else TRATransformer(**model_config)
        self.tra = TRAHead(self.model.output_size, **tra_config)

    def forward(self, data: torch.Tensor, state: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """The head's outputs on the backbone's hidden vectors."""
        return self.tra(self.model(data), state)


def masked_mse(pred: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """MSE over non-NaN labels; with 2-D ``pred`` (samples × states), one MSE per state."""
    keep = ~torch.isnan(label)
    if pred.dim() == 2:
        return (pred[keep] - label[keep][:, None]).pow(2).mean(dim=0)
    return (pred[keep] - label[keep]).pow(2).mean()


def sinkhorn(q: torch.Tensor, n_iters: int = 3, epsilon: float = 0.1) -> torch.Tensor:
    """An approximate transport plan from ``exp(q / epsilon)``: columns and rows normalised in turn."""
    with torch.no_grad():
        plan = torch.exp(q / epsilon)
        finite = torch.isfinite(plan)
        if not finite.all():  # overflow: the largest finite value stands in
            plan = torch.where(finite, plan, plan[finite].max() if finite.any() else torch.ones_like(plan))
        for _ in range(n_iters):
            plan = plan / plan.sum(dim=0, keepdim=True).clamp_min(1e-30)
            plan = plan / plan.sum(dim=1, keepdim=True).clamp_min(1e-30)
    return plan


def minmax_norm(x: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Each row scaled to [0, 1] over its last axis; a constant row becomes all ones."""
    low = x.min(dim=-1, keepdim=True).values
    high = x.max(dim=-1, keepdim=True).values
    return torch.where(low == high, torch.ones_like(x), (x - low) / (high - low + eps))


def transport(all_preds: torch.Tensor, label: torch.Tensor, choice: torch.Tensor | None, prob: torch.Tensor | None,
              hist_loss: torch.Tensor, counts: list[int] | None, method: str, alpha: float, training: bool
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(loss, prediction, normalised per-state losses L, transport plan P)`` as Qlib's ``transport_sample``
    (``counts`` None: one decision per sample) and ``transport_daily`` (``counts``: samples of each day, one
    decision per day).

    ``L`` (each predictor's squared error, min-max scaled per sample or day) goes to the memory; the plan is the
    Sinkhorn solution on ``alpha * L + (1 - alpha) * hist_loss`` (both scaled). ``router``: the prediction is the
    Gumbel choice's predictor in training and the router's most probable one in inference, the loss its MSE;
    ``oracle``: the prediction is the plan-weighted mix and the loss the plan-weighted errors.
    """
    if counts is None:
        keep = ~torch.isnan(label)
        all_loss = torch.where(keep[:, None], (all_preds - torch.nan_to_num(label)[:, None]).pow(2),
                               torch.zeros_like(all_preds))
    else:
        bounds = [0]
        for count in counts:
            bounds.append(bounds[-1] + count)
        all_loss = torch.stack([masked_mse(all_preds[a:b], label[a:b]) for a, b in itertools.pairwise(bounds)])
        all_loss = torch.nan_to_num(all_loss, nan=0.0)
    normalised = minmax_norm(all_loss.detach())
    plan = sinkhorn(-minmax_norm(normalised * alpha + minmax_norm(hist_loss) * (1 - alpha)))
    rows = torch.arange(len(all_preds), device=all_preds.device)
    if counts is None:
        if method == "router":
            pred = (all_preds * choice).sum(dim=1) if training else all_preds[rows, prob.argmax(dim=-1)]
        else:
            pred = (all_preds * plan).sum(dim=1)
    else:
        parts = []
        for day, (a, b) in enumerate(itertools.pairwise(bounds)):
            if method == "router":
                parts.append(all_preds[a:b] @ choice[day] if training else all_preds[a:b, prob[day].argmax(dim=-1)])
            else:
                parts.append(all_preds[a:b] @ plan[day])
        pred = torch.cat(parts, dim=0)
    loss = masked_mse(pred, label) if method == "router" else (all_loss * plan).sum(dim=1).mean()
    return loss, pred, normalised, plan
