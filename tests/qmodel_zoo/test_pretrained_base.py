"""``model_path`` for GATs and IGMTF: the recurrent base starts from a pre-trained model's ``rnn.*`` tensors."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from qmodel_zoo.nn.weights import load_pretrained_base  # noqa: E402

from qcore.errors import ConfigError  # noqa: E402


class Net(torch.nn.Module):
    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.rnn = torch.nn.GRU(3, hidden, batch_first=True)
        self.fc = torch.nn.Linear(hidden, 1)


def test_the_base_is_copied_and_the_rest_kept(tmp_path: Path) -> None:
    torch.manual_seed(0)
    source, target = Net(4), Net(4)
    torch.save({k: v for k, v in source.state_dict().items() if k.startswith("rnn.")}, tmp_path / "base.pt")
    head = target.fc.weight.detach().clone()
    load_pretrained_base(target, str(tmp_path / "base.pt"), "GATs")
    for key, value in source.rnn.state_dict().items():
        assert torch.equal(target.rnn.state_dict()[key], value)
    assert torch.equal(target.fc.weight, head)


def test_a_base_of_another_shape_or_none_is_refused_at_model_path(tmp_path: Path) -> None:
    torch.save(Net(5).state_dict(), tmp_path / "wide.pt")
    with pytest.raises(ConfigError, match=r"does not fit .* IGMTF needs") as info:
        load_pretrained_base(Net(4), str(tmp_path / "wide.pt"), "IGMTF")
    assert info.value.path == "model_path"
    torch.save({"fc.weight": torch.zeros(1, 4)}, tmp_path / "head.pt")
    with pytest.raises(ConfigError, match=r"no recurrent base \('rnn\.\*'\) for GATs"):
        load_pretrained_base(Net(4), str(tmp_path / "head.pt"), "GATs")
