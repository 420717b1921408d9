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


def load_weights(network: nn.Module, folder: Path, device: torch.device) -> None:
    """Load the weights :func:`save_weights` wrote into ``network`` (moved to ``device``)."""
    folder = Path(folder)
    if (folder / SAFETENSORS_FILE).is_file():
        if not _has_safetensors():
            raise OptionalDependencyError("loading weights.safetensors", "safetensors", "pip install safetensors")
        from safetensors.torch import load_file

        state = load_file(str(folder / SAFETENSORS_FILE), device="cpu")
    elif (folder / TORCH_FILE).is_file():
        state = torch.load(folder / TORCH_FILE, map_location="cpu", weights_only=True)
    else:
        raise DataError("the saved model has no network weights", path=str(folder))
    network.load_state_dict(state)
    network.to(device)
