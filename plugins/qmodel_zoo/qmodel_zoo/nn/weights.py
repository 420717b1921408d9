"""Network weights on disk without pickled objects: safetensors when installed, else ``torch.save`` of a plain
mapping of tensors read back with ``weights_only=True``."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
from torch import nn

from qcore import atomic
from qcore.errors import ConfigError, DataError, OptionalDependencyError

SAFETENSORS_FILE = "weights.safetensors"
TORCH_FILE = "weights.pt"


def _has_safetensors() -> bool:
    return importlib.util.find_spec("safetensors") is not None


def save_weights(network: nn.Module, folder: Path) -> Path:
    """Write the network's ``state_dict`` (on the CPU) into ``folder``; returns the file written."""
    state = {name: tensor.detach().cpu().contiguous() for name, tensor in network.state_dict().items()}
    if _has_safetensors():
        from safetensors.torch import save_file

        path = Path(folder) / SAFETENSORS_FILE
        with atomic.atomic_path(path) as tmp:
            save_file(state, str(tmp))
        return path
    path = Path(folder) / TORCH_FILE
    with atomic.atomic_path(path) as tmp:
        torch.save(state, tmp)
    return path


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a saved model: a folder :func:`save_weights` wrote, or one ``.safetensors`` file or plain
    ``torch.save`` state dict (read with ``weights_only=True``: no pickled objects)."""
    path = Path(path)
    if path.is_dir():
        if (path / SAFETENSORS_FILE).is_file():
            path = path / SAFETENSORS_FILE
        elif (path / TORCH_FILE).is_file():
            path = path / TORCH_FILE
        else:
            raise DataError("the saved model has no network weights", path=str(path))
    elif not path.is_file():
        raise DataError("no saved model weights here", path=str(path))
    if path.suffix == ".safetensors":
        if not _has_safetensors():
            raise OptionalDependencyError("loading weights.safetensors", "safetensors", "pip install safetensors")
        from safetensors.torch import load_file

        return load_file(str(path), device="cpu")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise DataError(f"cannot read model weights: {exc}", path=str(path)) from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise DataError("expected a mapping of parameter names to tensors (a state dict)", path=str(path))
    return state


def load_weights(network: nn.Module, folder: Path, device: torch.device) -> None:
    """Load the weights :func:`save_weights` wrote into ``network`` (moved to ``device``)."""
    network.load_state_dict(read_weights(Path(folder)))
    network.to(device)


def load_pretrained_base(network: nn.Module, model_path: str, model: str) -> None:
    """Start ``network``'s recurrent base (``rnn.*``) from a pre-trained model's weights at ``model_path`` (a zoo
    model folder or a state-dict file), as Qlib's GATs, IGMTF and HIST do with ``model_path``: every tensor the two
    share by name is copied; an error at ``model_path`` when there is no ``rnn.*`` tensor or a shared one has
    another shape (``base_model``, ``hidden_size``, ``num_layers`` or ``d_feat`` differ)."""
    pretrained = read_weights(Path(model_path).expanduser())
    own = network.state_dict()
    shared = {k: v for k, v in pretrained.items() if k in own}
    if not any(k.startswith("rnn.") for k in shared):
        raise ConfigError(f"the weights at {model_path} hold no recurrent base ('rnn.*') for {model}",
                          path="model_path")
    wrong = [k for k, v in shared.items() if tuple(v.shape) != tuple(own[k].shape)]
    if wrong:
        raise ConfigError(f"the pre-trained base does not fit (base_model, hidden_size, num_layers, d_feat): "
                          f"{wrong[0]} is {tuple(shared[wrong[0]].shape)}, {model} needs "
                          f"{tuple(own[wrong[0]].shape)}", path="model_path")
    network.load_state_dict({**own, **shared})
