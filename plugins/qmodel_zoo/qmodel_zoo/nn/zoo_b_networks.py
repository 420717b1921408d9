"""Builders of the networks of TabNet, HIST and TFT from their saved ``spec`` (``kind`` plus arguments), reached
from :func:`qmodel_zoo.nn.networks.build_network`; each network's module is imported only when it is built."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn


def build_zoo_b(kind: str, kwargs: Mapping[str, Any]) -> nn.Module | None:
    """The network of ``kind`` built with ``kwargs``; None for a kind this module does not know."""
    if kind == "tabnet":
        from qmodel_zoo.nn.tabnet_network import TabNetNet

        return TabNetNet(**kwargs)
    if kind == "hist":
        from qmodel_zoo.nn.hist_network import HISTNet

        return HISTNet(**kwargs)
    return None
