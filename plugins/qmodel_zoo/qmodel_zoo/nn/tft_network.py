"""The Temporal Fusion Transformer (Lim et al., 2019) in PyTorch, with the inputs of Qlib's TFT benchmark: observed
real-valued features over the encoder steps, day of week and month as known inputs over every step, and one
constant static input (Qlib's ``const``).

Gated residual networks (GRN) and variable selection networks turn the inputs into one vector per step, conditioned
on the static context; an LSTM encoder-decoder (started from the static state) runs over the encoder and decoder
steps; static enrichment, interpretable multi-head self-attention (causal, one value projection shared by the heads)
and a position-wise GRN follow, each behind a gated skip connection; a linear head gives one value per quantile for
every decoder step.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


class GatedAddNorm(nn.Module):
    """GLU of the input (after dropout), added to a residual, layer-normalised."""

    def __init__(self, width: int, dropout: float) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.glu = nn.Linear(width, 2 * width)
        self.norm = nn.LayerNorm(width)

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        """``norm(residual + GLU(dropout(x)))``."""
        return self.norm(residual + F.glu(self.glu(self.dropout(x)), dim=-1))


class GRN(nn.Module):
    """Gated residual network: ``ELU(W1 x + W3 c)``, ``W2``, then gated add & norm over a (projected) skip."""

    def __init__(self, width_in: int, width: int, width_out: int | None = None, dropout: float = 0.0,
                 context: int | None = None) -> None:
        super().__init__()
        width_out = width_out or width
        self.skip = nn.Linear(width_in, width_out) if width_in != width_out else None
        self.fc1 = nn.Linear(width_in, width)
        self.context = nn.Linear(context, width, bias=False) if context else None
        self.fc2 = nn.Linear(width, width_out)
        self.gate = GatedAddNorm(width_out, dropout)

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """The transformed ``x`` (the context ``c`` broadcast over its leading axes)."""
        residual = x if self.skip is None else self.skip(x)
        h = self.fc1(x)
        if self.context is not None and c is not None:
            h = h + self.context(c)
        return self.gate(self.fc2(F.elu(h)), residual)


class VariableSelection(nn.Module):
    """Softmax weights over ``n_vars`` embedded variables (from a GRN of all of them and the context), applied to
    each variable's own GRN output."""

    def __init__(self, n_vars: int, width: int, dropout: float, context: int | None) -> None:
        super().__init__()
        self.weights = GRN(n_vars * width, width, n_vars, dropout, context)
        self.variables = nn.ModuleList(GRN(width, width, dropout=dropout) for _ in range(n_vars))

    def forward(self, embedded: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        """``embedded`` ``(..., n_vars, width)`` → ``(..., width)``."""
        weights = torch.softmax(self.weights(embedded.flatten(-2), c), dim=-1).unsqueeze(-1)
        transformed = torch.stack([grn(embedded[..., i, :]) for i, grn in enumerate(self.variables)], dim=-2)
        return (weights * transformed).sum(dim=-2)


class InterpretableAttention(nn.Module):
    """Multi-head attention whose heads share one value projection and are averaged (TFT's interpretable form)."""

    def __init__(self, width: int, num_heads: int, dropout: float) -> None:
        super().__init__()
        self.queries = nn.ModuleList(nn.Linear(width, width) for _ in range(num_heads))
        self.keys = nn.ModuleList(nn.Linear(width, width) for _ in range(num_heads))
        self.value = nn.Linear(width, width)
        self.out = nn.Linear(width, width)
        self.dropout = nn.Dropout(dropout)
        self.scale = 1.0 / math.sqrt(width)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Self-attention over ``x`` ``(batch, steps, width)`` where ``mask`` (steps × steps) is True."""
        value = self.value(x)
        heads = []
        for query, key in zip(self.queries, self.keys, strict=True):
            scores = (query(x) @ key(x).transpose(1, 2)) * self.scale
            attention = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)
            heads.append(self.dropout(attention) @ value)
        return self.out(torch.stack(heads).mean(dim=0))


class TFTNet(nn.Module):
    """See the module docstring. Inputs: ``observed`` ``(batch, encoder_steps, n_observed)``, ``known``
    ``(batch, encoder_steps + decoder_steps, 2)`` integer day-of-week (0-6) and month (0-11) codes."""

    def __init__(self, n_observed: int, encoder_steps: int, decoder_steps: int, quantiles: int = 3,
                 hidden_layer_size: int = 160, dropout_rate: float = 0.4, num_heads: int = 1,
                 stack_size: int = 1) -> None:
        super().__init__()
        width = hidden_layer_size
        self.encoder_steps, self.decoder_steps = encoder_steps, decoder_steps
        self.observed = nn.Parameter(torch.randn(n_observed, width) * 0.1)  # per-variable linear embedding
        self.observed_bias = nn.Parameter(torch.zeros(n_observed, width))
        self.day_of_week = nn.Embedding(7, width)
        self.month = nn.Embedding(12, width)
        self.static = nn.Parameter(torch.randn(1, width) * 0.1)  # the constant static input's embedding
        self.static_selection = GRN(width, width, dropout=dropout_rate)
        self.static_contexts = nn.ModuleList(GRN(width, width, dropout=dropout_rate) for _ in range(4))
        self.encoder_selection = VariableSelection(n_observed + 2, width, dropout_rate, width)
        self.decoder_selection = VariableSelection(2, width, dropout_rate, width)
        self.encoder = nn.LSTM(width, width, batch_first=True)
        self.decoder = nn.LSTM(width, width, batch_first=True)
        self.lstm_gate = GatedAddNorm(width, dropout_rate)
        self.enrichment = GRN(width, width, dropout=dropout_rate, context=width)
        self.attention = nn.ModuleList(InterpretableAttention(width, num_heads, dropout_rate)
                                       for _ in range(stack_size))
        self.attention_gates = nn.ModuleList(GatedAddNorm(width, dropout_rate) for _ in range(stack_size))
        self.positionwise = GRN(width, width, dropout=dropout_rate)
        self.output_gate = GatedAddNorm(width, 0.0)
        self.head = nn.Linear(width, quantiles)
        steps = encoder_steps + decoder_steps
        self.register_buffer("mask", torch.tril(torch.ones(steps, steps, dtype=torch.bool)), persistent=False)

    def forward(self, observed: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
        """Quantile forecasts ``(batch, decoder_steps, quantiles)``."""
        batch = observed.size(0)
        static = self.static_selection(self.static.expand(batch, -1))
        c_selection, c_enrichment, c_h, c_c = (grn(static) for grn in self.static_contexts)
        known_embedded = torch.stack([self.day_of_week(known[..., 0]), self.month(known[..., 1])], dim=-2)
        observed_embedded = observed.unsqueeze(-1) * self.observed + self.observed_bias
        enc = self.encoder_steps
        past = torch.cat([observed_embedded, known_embedded[:, :enc]], dim=-2)
        past = self.encoder_selection(past, c_selection.unsqueeze(1))
        future = self.decoder_selection(known_embedded[:, enc:], c_selection.unsqueeze(1))
        state = (c_h.unsqueeze(0).contiguous(), c_c.unsqueeze(0).contiguous())
        encoded, state = self.encoder(past, state)
        decoded, _ = self.decoder(future, state)
        inputs = torch.cat([past, future], dim=1)
        temporal = self.lstm_gate(torch.cat([encoded, decoded], dim=1), inputs)
        enriched = self.enrichment(temporal, c_enrichment.unsqueeze(1))
        x = enriched
        for attention, gate in zip(self.attention, self.attention_gates, strict=True):
            x = gate(attention(x, self.mask), x)
        x = self.output_gate(self.positionwise(x), temporal)
        return self.head(x[:, enc:])
