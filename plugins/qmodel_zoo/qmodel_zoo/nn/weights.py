"""Network weights on disk without pickled objects: safetensors when installed, else ``torch.save`` of a plain
mapping of tensors read back with ``weights_only=True``."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
from torch import nn

from qcore import atomic
from qcore.errors import DataError, OptionalDependencyError

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
