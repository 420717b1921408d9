"""Qlib's ``TabnetModel``: TabNet on flat feature rows, optionally pre-trained self-supervised on the ``pretrain``
segment before it is fine-tuned on ``train`` by the shared trainer.

Pre-training (``pretrain=True``, Qlib's default) reads the ``pretrain`` segment's features: each epoch masks every
cell with probability ``ps``, encodes the rest (the mask's complement is the encoder's prior) and reconstructs the
masked cells with a decoder; the loss is the paper's (:func:`~qmodel_zoo.nn.tabnet_network.pretrain_loss`). The
encoder with the lowest loss on ``pretrain_validation`` is kept (``early_stop`` epochs without improvement stop
it; without that segment every epoch runs and the last encoder is kept), and ``pretrain_file`` — when given —
receives its weights. Fine-tuning then trains encoder and head together on shuffled ``batch_size`` batches,
early-stopped on ``valid`` (``metric`` ``""``/``"loss"``), gradients clipped at 3, as Qlib.

Differences from Qlib, each a fix: the encoder uses ``n_d``, ``n_a``, ``n_shared``, ``n_ind`` and ``n_steps``
(Qlib passes them to the decoder only and builds its encoder with the defaults, which are the same numbers);
the attentive prior is updated between steps; NaN labels are skipped (Qlib turns them into 0); missing feature
values are 0 in every segment (Qlib fills training rows with the column mean, prediction rows with 0).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from qcore import atomic
from qcore.errors import ConfigError, QcoreError
from qcore.protocols import Dataset, Reweighter
from qmodel_zoo._base import check_choice, check_number, feature_matrix, has_segment
from qmodel_zoo.nn.base import TorchModel, collect_params
from qmodel_zoo.nn.batching import chunks, shuffled_batches
from qmodel_zoo.nn.samples import Samples, TabularSamples
from qmodel_zoo.nn.tabnet_network import TabNetDecoder, TabNetNet, pretrain_loss
from qmodel_zoo.nn.trainer import make_optimizer

PRETRAIN, PRETRAIN_VALID = "pretrain", "pretrain_validation"


class TabnetModel(TorchModel):
    """Qlib's ``TabnetModel`` with its arguments and defaults; see the module docstring.

    :param d_feat: features per row (must match the dataset).
    :param out_dim: width of the encoder's embedding.
    :param final_out_dim: outputs of the head (must be 1: one score per row).
    :param n_d: decision width of each step; ``n_a``: attention width.
    :param n_shared: feature-transformer blocks shared across steps; ``n_ind``: blocks per step.
    :param n_steps: decision steps (the first feature transformer counts as one).
    :param relax: prior relaxation (1: each feature used once across steps).
    :param vbs: ghost batch-norm chunk size.
    :param pretrain_n_epochs: epochs of self-supervised pre-training.
    :param pretrain_loss: ``custom`` (the paper's loss, the only one Qlib has).
    :param ps: probability of masking a cell during pre-training.
    :param pretrain: pre-train on the ``pretrain`` segment first.
    :param pretrain_file: where to write the pre-trained encoder's weights (a plain tensor file), or None.
    """

    registry_name = "tabnet"

    def __init__(self, d_feat: int = 158, out_dim: int = 64, final_out_dim: int = 1, batch_size: int = 4096,
                 n_d: int = 64, n_a: int = 64, n_shared: int = 2, n_ind: int = 2, n_steps: int = 5,
                 n_epochs: int = 100, pretrain_n_epochs: int = 50, relax: float = 1.3, vbs: int = 2048,
                 seed: int | None = 993, optimizer: str = "adam", loss: str = "mse", metric: str = "",
                 early_stop: int = 20, GPU: Any = 0, pretrain_loss: str = "custom", ps: float = 0.3,
                 lr: float = 0.01, pretrain: bool = True, pretrain_file: str | None = None, **kwargs: Any) -> None:
        params = collect_params(locals())
        for name, value in (("d_feat", d_feat), ("out_dim", out_dim), ("n_d", n_d), ("n_a", n_a), ("n_ind", n_ind),
                            ("n_steps", n_steps), ("vbs", vbs)):
            check_number(name, value, low=1, integer=True)
        check_number("n_shared", n_shared, low=0, integer=True)
        check_number("pretrain_n_epochs", pretrain_n_epochs, low=0, integer=True)
        check_number("relax", relax, low=1.0)
        check_number("ps", ps, low=0.0, high=0.99, low_open=True)
        check_choice("pretrain_loss", pretrain_loss, ("custom",))
        check_choice("metric", metric, ("", "loss"))
        if n_shared == 0 and n_ind == 0:
            raise ConfigError("n_shared and n_ind cannot both be 0 (a feature transformer needs a block)",
                              path="n_ind")
        if final_out_dim != 1 or isinstance(final_out_dim, bool):
            raise ConfigError(f"final_out_dim must be 1 (one score per row), got {final_out_dim!r}",
                              path="final_out_dim")
        if not isinstance(pretrain, bool):
            raise ConfigError(f"pretrain must be true or false, got {pretrain!r}", path="pretrain")
        if pretrain_file is not None and (not isinstance(pretrain_file, str) or not pretrain_file.strip()):
            raise ConfigError(f"pretrain_file must be a file path, got {pretrain_file!r}", path="pretrain_file")
        super().__init__(params, kwargs, n_epochs=n_epochs, lr=lr, batch_size=batch_size, early_stop=early_stop,
                         loss=loss, optimizer=optimizer, metric=metric, GPU=GPU, seed=seed, weight_decay=0.0)
        self.d_feat, self.out_dim, self.vbs = int(d_feat), int(out_dim), int(vbs)
        self.n_d, self.n_a, self.n_shared, self.n_ind, self.n_steps = (int(n_d), int(n_a), int(n_shared), int(n_ind),
                                                                      int(n_steps))
        self.relax, self.ps = float(relax), float(ps)
        self.pretrain, self.pretrain_n_epochs, self.pretrain_file = pretrain, int(pretrain_n_epochs), pretrain_file
        self.pretrain_history_: dict[str, list[float]] = {"train": [], "valid": []}
        self._fitting: Dataset | None = None

    def fit(self, dataset: Dataset, reweighter: Reweighter | None = None) -> TabnetModel:
        """Pre-train (when asked) on ``pretrain``, then fine-tune on ``train`` early-stopped on ``valid`` (sample
        weights, when given, weight the fine-tuning loss; pre-training is unweighted)."""
        if self.pretrain and not has_segment(dataset, PRETRAIN):
            raise QcoreError("pretrain=True needs a 'pretrain' dataset segment (and 'pretrain_validation' to "
                             "early-stop it), as Qlib's TabNet configs give; or set pretrain: false")
        self._fitting = dataset
        try:
            super().fit(dataset, reweighter)
        finally:
            self._fitting = None
        return self

    def _samples(self, dataset: Dataset, segment: str, feature_names: list[str] | None) -> Samples:
        return TabularSamples(dataset, segment, feature_names)

    def _spec(self, samples: Samples) -> dict[str, Any]:
        width = len(samples.feature_names)
        if width != self.d_feat:
            raise QcoreError(f"d_feat={self.d_feat} but the dataset has {width} features")
        return {"kind": "tabnet", "inp_dim": width, "out_dim": self.out_dim, "n_d": self.n_d, "n_a": self.n_a,
                "n_shared": self.n_shared, "n_ind": self.n_ind, "n_steps": self.n_steps, "relax": self.relax,
                "vbs": self.vbs}

    def _plan(self, samples: Samples) -> Callable[[np.random.Generator], list[np.ndarray]]:
        n, size = len(samples), self.batch_size
        return lambda rng: shuffled_batches(n, size, rng)

    def _prepare_network(self, network: Any) -> None:
        if not self.pretrain or self._fitting is None:
            return
        names = [str(c) for c in self._fitting.xy("train")[0].columns]
        train_x = self._features(self._fitting, PRETRAIN, names)
        valid_x = self._features(self._fitting, PRETRAIN_VALID, names) if has_segment(
            self._fitting, PRETRAIN_VALID) else None
        self.pretrain_history_ = pretrain_encoder(
            network, train_x, valid_x, self, np.random.default_rng(self.seed_))
        if self.pretrain_file is not None:
            path = Path(self.pretrain_file).expanduser()
            path.parent.mkdir(parents=True, exist_ok=True)
            state = {k: v.detach().cpu().contiguous() for k, v in network.encoder.state_dict().items()}
            with atomic.atomic_path(path) as tmp:
                torch.save(state, tmp)

    @staticmethod
    def _features(dataset: Dataset, segment: str, names: list[str]) -> torch.Tensor:
        features, _ = dataset.xy(segment, "learn")
        if len(features) < 2:
            raise QcoreError(f"the {segment} segment needs at least two rows to pre-train TabNet")
        x = np.nan_to_num(feature_matrix(features, names, np.float32), nan=0.0, posinf=0.0, neginf=0.0)
        return torch.from_numpy(x)


def _pretrain_pass(network: TabNetNet, decoder: TabNetDecoder, x: torch.Tensor, batches: list[np.ndarray],
                   ps: float, device: torch.device, optimizer: torch.optim.Optimizer | None) -> float:
    """One pass over ``batches`` of ``x``: masked reconstruction, a step per batch when ``optimizer`` is given;
    the mean loss."""
    losses = []
    for rows in batches:
        target = x[rows].to(device)
        mask = torch.bernoulli(torch.full(target.shape, ps)).to(device)
        embedding, _ = network.encoder(target * (1 - mask), 1 - mask)
        loss = pretrain_loss(decoder(embedding), target, mask)
        if optimizer is not None:
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        losses.append(loss.item())
    return float(np.mean(losses)) if losses else float("nan")


def pretrain_encoder(network: TabNetNet, train_x: torch.Tensor, valid_x: torch.Tensor | None, model: TabnetModel,
                     rng: np.random.Generator) -> dict[str, list[float]]:
    """Self-supervised pre-training of ``network.encoder`` in place; the per-epoch train/valid losses."""
    device = model.device
    network.to(device)
    decoder = TabNetDecoder(model.out_dim, int(train_x.shape[1]), model.n_shared, model.n_ind, model.n_steps,
                            model.vbs).to(device)
    both = torch.nn.ModuleList([network.encoder, decoder])
    optimizer = make_optimizer(model.settings, both)
    history: dict[str, list[float]] = {"train": [], "valid": []}
    best, best_state, stale = np.inf, None, 0
    size = model.batch_size
    for _ in range(model.pretrain_n_epochs):
        both.train()
        history["train"].append(_pretrain_pass(network, decoder, train_x, shuffled_batches(len(train_x), size, rng),
                                               model.ps, device, optimizer))
        if valid_x is None:
            continue
        both.eval()
        with torch.no_grad():
            loss = _pretrain_pass(network, decoder, valid_x, [c for c in chunks(len(valid_x), size) if len(c) > 1],
                                  model.ps, device, None)
        history["valid"].append(loss)
        if loss < best:
            best, stale = loss, 0
            best_state = {k: v.detach().clone() for k, v in network.encoder.state_dict().items()}
        else:
            stale += 1
            if stale >= model.settings.early_stop:
                break
    if best_state is not None:
        network.encoder.load_state_dict(best_state)
    return history
