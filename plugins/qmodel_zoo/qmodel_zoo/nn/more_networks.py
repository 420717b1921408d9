"""Networks of Qlib's TCN, Localformer and GATs models (``nn.Module`` classes returning one score per sample).

Each takes ``(batch, steps, d_feat)`` like the other sequence networks (:mod:`qmodel_zoo.nn.networks`). They follow
the architectures of Qlib's ``pytorch_tcn``/``tcn``, ``pytorch_localformer`` and ``pytorch_gats`` (read for their
semantics; written here afresh).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from qmodel_zoo.nn.networks import PositionalEncoding


class TemporalBlock(nn.Module):
    """Two dilated causal convolutions (weight-normalised, ReLU, dropout) with a residual connection."""

    def __init__(self, n_in: int, n_out: int, kernel_size: int, dilation: int, dropout: float) -> None:
        super().__init__()
        self.pad = (kernel_size - 1) * dilation
        self.conv1 = weight_norm(nn.Conv1d(n_in, n_out, kernel_size, padding=self.pad, dilation=dilation))
        self.conv2 = weight_norm(nn.Conv1d(n_out, n_out, kernel_size, padding=self.pad, dilation=dilation))
        self.dropout = nn.Dropout(dropout)
        self.downsample = nn.Conv1d(n_in, n_out, 1) if n_in != n_out else None
        with torch.no_grad():
            for conv in (self.conv1, self.conv2):
                conv.weight.normal_(0, 0.01)
            if self.downsample is not None:
                self.downsample.weight.normal_(0, 0.01)

    def _causal(self, conv: nn.Module, x: torch.Tensor) -> torch.Tensor:
        out = conv(x)
        return out[:, :, : -self.pad] if self.pad else out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, channels, steps)`` → ``(batch, n_out, steps)``."""
        out = self.dropout(torch.relu(self._causal(self.conv1, x)))
        out = self.dropout(torch.relu(self._causal(self.conv2, out)))
        residual = x if self.downsample is None else self.downsample(x)
        return torch.relu(out + residual)


class TCNNet(nn.Module):
    """Qlib's TCN: ``num_layers`` temporal blocks of ``n_chans`` channels, dilations 1, 2, 4..., features as input
    channels, a linear head on the last step."""

    def __init__(self, d_feat: int, n_chans: int = 128, kernel_size: int = 5, num_layers: int = 5,
                 dropout: float = 0.5) -> None:
        super().__init__()
        blocks = [TemporalBlock(d_feat if i == 0 else n_chans, n_chans, kernel_size, 2**i, dropout)
                  for i in range(num_layers)]
        self.tcn = nn.Sequential(*blocks)
        self.linear = nn.Linear(n_chans, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Scores, shape ``(batch,)``."""
        out = self.tcn(x.transpose(1, 2))
        return self.linear(out[:, :, -1]).squeeze(-1)


class LocalformerNet(nn.Module):
    """Qlib's Localformer: feature embedding and position encodings; per layer, a same-length convolution
    (kernel 3) added to the input of a post-norm encoder layer; the encoder's output plus the last convolution
    feeds a GRU, and a linear head reads its last step."""

    def __init__(self, d_feat: int, d_model: int = 64, nhead: int = 2, num_layers: int = 2, dropout: float = 0.0,
                 dim_feedforward: int = 2048) -> None:
        super().__init__()
        self.feature_layer = nn.Linear(d_feat, d_model)
        self.pos_encoder = PositionalEncoding(d_model)
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(d_model=d_model, nhead=nhead, dim_feedforward=dim_feedforward,
                                       dropout=dropout, batch_first=True)
            for _ in range(num_layers))
        self.convs = nn.ModuleList(nn.Conv1d(d_model, d_model, 3, 1, 1) for _ in range(num_layers))
        self.rnn = nn.GRU(input_size=d_model, hidden_size=d_model, num_layers=num_layers, batch_first=True,
                          dropout=dropout)
        self.decoder_layer = nn.Linear(d_model, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Scores, shape ``(batch,)``."""
        output = self.pos_encoder(self.feature_layer(x))
        local = output
        for layer, conv in zip(self.layers, self.convs, strict=True):
            local = conv(output.transpose(1, 2)).transpose(1, 2)
            output = layer(output + local)
        hidden, _ = self.rnn(output + local)
        return self.decoder_layer(hidden[:, -1, :]).squeeze(-1)


class GATNet(nn.Module):
    """Qlib's GATs: a recurrent base (GRU or LSTM) encodes each stock's sequence; one attention layer over the
    batch's stocks (the day's cross-section) mixes their last hidden states; a LeakyReLU layer and a linear head.

    The attention of stock ``i`` on ``j`` is ``softmax_j(LeakyReLU(a1 · W h_j + a2 · W h_i))`` (Qlib's
    ``cal_attention``), computed without forming the ``N × N × 2d`` pair tensor.
    """

    def __init__(self, d_feat: int, hidden_size: int = 64, num_layers: int = 2, dropout: float = 0.0,
                 base_model: str = "GRU") -> None:
        super().__init__()
        recurrent = {"GRU": nn.GRU, "LSTM": nn.LSTM}[base_model]
        self.rnn = recurrent(input_size=d_feat, hidden_size=hidden_size, num_layers=num_layers, batch_first=True,
                             dropout=dropout)
        self.transformation = nn.Linear(hidden_size, hidden_size)
        self.a = nn.Parameter(torch.randn(hidden_size * 2, 1))
        self.fc = nn.Linear(hidden_size, hidden_size)
        self.fc_out = nn.Linear(hidden_size, 1)
        self.leaky_relu = nn.LeakyReLU()

    def attention(self, hidden: torch.Tensor) -> torch.Tensor:
        """Row-stochastic ``(N, N)`` attention weights of the batch's stocks on each other."""
        z = self.transformation(hidden)
        d = z.shape[1]
        on_other = z @ self.a[:d]  # (N, 1): the term of the attended stock j
        on_self = z @ self.a[d:]  # (N, 1): the term of the attending stock i
        return torch.softmax(self.leaky_relu(on_other.T + on_self), dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Scores, shape ``(batch,)``; the batch is one day's stocks."""
        out, _ = self.rnn(x)
        hidden = out[:, -1, :]
        hidden = self.attention(hidden) @ hidden + hidden
        return self.fc_out(self.leaky_relu(self.fc(hidden))).squeeze(-1)


def build_more(kind: str, kwargs: dict) -> nn.Module | None:
    """The network of ``kind`` among this module's, or None."""
    if kind == "tcn":
        return TCNNet(**kwargs)
    if kind == "localformer":
        return LocalformerNet(**kwargs)
    if kind == "gats":
        return GATNet(**kwargs)
    return None
