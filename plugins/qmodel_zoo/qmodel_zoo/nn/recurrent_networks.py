"""Networks of Qlib's KRNN and SFM models (``nn.Module`` classes returning one score per sample).

Each takes ``(batch, steps, d_feat)`` like the other sequence networks (:mod:`qmodel_zoo.nn.networks`). They follow
the architectures of Qlib's ``pytorch_krnn`` and ``pytorch_sfm`` (read for their semantics; written here afresh).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import init


class KRNNNet(nn.Module):
    """Qlib's KRNN: a 1-D convolution over time (``cnn_dim`` channels, "same" padding for odd kernels), then
    ``rnn_dups`` parallel GRUs of ``rnn_layers`` layers whose outputs are averaged, and a linear head on the last
    step."""

    def __init__(self, d_feat: int, cnn_dim: int = 64, cnn_kernel_size: int = 3, rnn_dim: int = 64,
                 rnn_dups: int = 3, rnn_layers: int = 2, dropout: float = 0.0) -> None:
        super().__init__()
        self.conv = nn.Conv1d(d_feat, cnn_dim, cnn_kernel_size, padding=(cnn_kernel_size - 1) // 2)
        self.rnns = nn.ModuleList(nn.GRU(cnn_dim, rnn_dim, num_layers=rnn_layers, dropout=dropout, batch_first=True)
                                  for _ in range(rnn_dups))
        self.out_fc = nn.Linear(rnn_dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Scores, shape ``(batch,)``."""
        encoded = self.conv(x.transpose(1, 2)).transpose(1, 2)
        hidden = torch.stack([rnn(encoded)[0] for rnn in self.rnns], dim=-1).mean(dim=-1)
        return self.out_fc(hidden[:, -1, :]).squeeze(-1)


def _xavier(rows: int, cols: int) -> nn.Parameter:
    return nn.Parameter(init.xavier_uniform_(torch.empty(rows, cols)))


def _orthogonal(rows: int, cols: int) -> nn.Parameter:
    return nn.Parameter(init.orthogonal_(torch.empty(rows, cols)))


class SFMNet(nn.Module):
    """Qlib's SFM (State Frequency Memory): an LSTM-like cell whose memory is a ``hidden_size × freq_dim`` grid of
    complex states, one per frequency ``k / freq_dim``. Each step forgets by the outer product of a state gate and
    a frequency gate, writes the input-gated candidate rotated by ``exp(2πi·t·frequency)``, and reads the squared
    amplitudes through a learnt frequency mix (``U_a``) into the hidden state. The last step's hidden state goes
    through ``W_p`` (``output_dim`` units) and a linear head. Parameter names are Qlib's.
    """

    def __init__(self, d_feat: int, hidden_size: int = 64, output_dim: int = 1, freq_dim: int = 10) -> None:
        super().__init__()
        self.hidden_size, self.freq_dim = hidden_size, freq_dim
        for gate, width in (("i", hidden_size), ("ste", hidden_size), ("fre", freq_dim), ("c", hidden_size),
                            ("o", hidden_size)):
            setattr(self, f"W_{gate}", _xavier(d_feat, width))
            setattr(self, f"U_{gate}", _orthogonal(hidden_size, width))
            bias = torch.ones(width) if gate in ("ste", "fre") else torch.zeros(width)
            setattr(self, f"b_{gate}", nn.Parameter(bias))
        self.U_a = _orthogonal(freq_dim, 1)
        self.b_a = nn.Parameter(torch.zeros(hidden_size))
        self.W_p = _xavier(hidden_size, output_dim)
        self.b_p = nn.Parameter(torch.zeros(output_dim))
        self.fc_out = nn.Linear(output_dim, 1)
        self.register_buffer("frequency", torch.arange(freq_dim, dtype=torch.float32) / freq_dim, persistent=False)

    def _gate(self, name: str, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        return x @ getattr(self, f"W_{name}") + getattr(self, f"b_{name}") + h @ getattr(self, f"U_{name}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Scores, shape ``(batch,)``."""
        n = x.shape[0]
        h = x.new_zeros(n, self.hidden_size)
        s_re = x.new_zeros(n, self.hidden_size, self.freq_dim)
        s_im = x.new_zeros(n, self.hidden_size, self.freq_dim)
        gate, squash = nn.functional.hardsigmoid, torch.tanh
        for t in range(x.shape[1]):
            xt = x[:, t, :]
            forget = gate(self._gate("ste", xt, h)).unsqueeze(2) * gate(self._gate("fre", xt, h)).unsqueeze(1)
            candidate = (gate(self._gate("i", xt, h)) * squash(self._gate("c", xt, h))).unsqueeze(2)
            omega = 2 * math.pi * (t + 1) * self.frequency
            s_re = forget * s_re + candidate * torch.cos(omega)
            s_im = forget * s_im + candidate * torch.sin(omega)
            amplitude = s_re.square() + s_im.square()
            read = squash((amplitude @ self.U_a).squeeze(2) + self.b_a)
            h = gate(self._gate("o", xt, h)) * read
        return self.fc_out(h @ self.W_p + self.b_p).squeeze(-1)


def build_recurrent(kind: str, kwargs: dict) -> nn.Module | None:
    """The network of ``kind`` among this module's, or None."""
    if kind == "krnn":
        return KRNNNet(**kwargs)
    if kind == "sfm":
        return SFMNet(**kwargs)
    return None
