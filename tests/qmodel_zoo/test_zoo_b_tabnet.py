"""TabNet (Qlib's ``TabnetModel``): pre-training on the ``pretrain`` segment, fine-tuning, save/restore, sparsemax."""

from __future__ import annotations

import numpy as np
import pytest

from qcore.dataset import PanelDataset
from qcore.errors import ConfigError, QcoreError
from qcore.kernel import Kernel
from tests.qmodel_zoo.helpers import IC_BAR, assert_roundtrip, mean_test_ic
from tests.qmodel_zoo.planted import planted_frame, split

torch = pytest.importorskip("torch")

SMALL = {"d_feat": 4, "out_dim": 8, "n_d": 8, "n_a": 8, "n_steps": 3, "batch_size": 512, "vbs": 256,
         "n_epochs": 4, "pretrain_n_epochs": 2, "GPU": None, "lr": 0.01}


@pytest.fixture(scope="module")
def with_pretrain() -> PanelDataset:
    """The planted market with Qlib's TabNet segments: ``pretrain`` = train, ``pretrain_validation`` = valid."""
    frame = planted_frame(100, 80, seed=0)
    segments = split(frame.index.get_level_values("datetime").unique())
    segments.update(pretrain=segments["train"], pretrain_validation=segments["valid"])
    return PanelDataset(frame, segments)


@pytest.fixture(scope="module")
def fitted(with_pretrain: PanelDataset, tmp_path_factory: pytest.TempPathFactory):
    from qmodel_zoo.nn.tabnet import TabnetModel

    path = tmp_path_factory.mktemp("tabnet") / "pre" / "encoder.pt"
    model = TabnetModel(**SMALL, pretrain_file=str(path))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # module-scoped: the per-test single-thread fixture has not run yet
    try:
        return model.fit(with_pretrain), path
    finally:
        torch.set_num_threads(threads)


@pytest.mark.slow
def test_pretrains_then_learns_and_roundtrips(kernel: Kernel, fitted, with_pretrain, tmp_path) -> None:
    model, _ = fitted
    assert len(model.pretrain_history_["train"]) == 2 and len(model.pretrain_history_["valid"]) == 2
    assert np.isfinite(model.pretrain_history_["valid"]).all()
    assert model.evals_result_["train"][-1] < model.evals_result_["train"][0]
    assert mean_test_ic(model, with_pretrain) > IC_BAR
    assert_roundtrip(model, with_pretrain, tmp_path, kernel, "tabnet")


@pytest.mark.slow
def test_pretrain_file_holds_the_pretrained_encoder(kernel: Kernel, fitted, with_pretrain) -> None:
    model, path = fitted
    state = torch.load(path, weights_only=True)
    assert set(state) == set(model.network.encoder.state_dict())
    # fine-tuning moved the encoder away from the pre-trained weights it started from
    assert not torch.equal(state["fc.weight"], model.network.encoder.state_dict()["fc.weight"].cpu())
    # the same seed without pre-training starts fine-tuning from other weights, so predictions differ
    plain = kernel.create("model", "TabnetModel", **{**SMALL, "pretrain": False}).fit(with_pretrain)
    assert not np.allclose(plain.predict(with_pretrain), model.predict(with_pretrain))


def test_pretrain_needs_its_segment(kernel: Kernel, planted) -> None:
    model = kernel.create("model", "TabnetModel", **SMALL)
    with pytest.raises(QcoreError, match="'pretrain' dataset segment"):
        model.fit(planted)
    with pytest.raises(QcoreError, match="d_feat=5 but the dataset has 4 features"):
        kernel.create("model", "TabnetModel", **{**SMALL, "d_feat": 5, "pretrain": False}).fit(planted)


def test_qlib_name_defaults_and_argument_checks(kernel: Kernel) -> None:
    assert kernel.registry("model").entry("TabnetModel").name == "tabnet"
    model = kernel.create("model", "TabnetModel")
    expected = {"d_feat": 158, "out_dim": 64, "final_out_dim": 1, "batch_size": 4096, "n_d": 64, "n_a": 64,
                "n_shared": 2, "n_ind": 2, "n_steps": 5, "n_epochs": 100, "pretrain_n_epochs": 50, "relax": 1.3,
                "vbs": 2048, "seed": 993, "optimizer": "adam", "early_stop": 20, "ps": 0.3, "lr": 0.01,
                "pretrain": True, "pretrain_file": None}
    assert {k: model.init_params[k] for k in expected} == expected
    from qcore.reweight import accepts_reweighter

    assert accepts_reweighter(model.fit)  # sample weights reach the fine-tuning loss through the shared trainer
    for bad, key in (({"final_out_dim": 2}, "final_out_dim"), ({"ps": 1.5}, "ps"), ({"metric": "ic"}, "metric"),
                     ({"pretrain_loss": "mse"}, "pretrain_loss"), ({"n_steps": 0}, "n_steps"),
                     ({"pretrian": True}, "pretrian")):
        with pytest.raises(ConfigError) as info:
            kernel.create("model", "TabnetModel", **bad)
        assert info.value.path == key


def test_sparsemax_projects_onto_the_simplex_with_its_jacobian() -> None:
    from qmodel_zoo.nn.tabnet_network import sparsemax

    z = torch.tensor([[0.5, 0.4, -1.0, 0.45], [3.0, 0.0, 0.0, 0.0]], dtype=torch.float64, requires_grad=True)
    p = sparsemax(z)
    assert torch.allclose(p.sum(dim=1), torch.ones(2, dtype=torch.float64)) and (p >= 0).all()
    assert torch.allclose(p[1], torch.tensor([1.0, 0, 0, 0], dtype=torch.float64))
    assert p[0, 2] == 0 and (p[0, [0, 1, 3]] > 0).all()
    # Jacobian on row 0: diag(s) - s s^T / |S| with s the support indicator
    jac = torch.autograd.functional.jacobian(lambda v: sparsemax(v.unsqueeze(0))[0], z[0].detach())
    s = (p[0] > 0).double()
    assert torch.allclose(jac, torch.diag(s) - torch.outer(s, s) / s.sum())
