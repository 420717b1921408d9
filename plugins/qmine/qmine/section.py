"""The ``mine:`` section of a workflow: mine factors when the run starts, then train on them in the same run.

.. code-block:: yaml

    mine:                       # the keys of a `qcore mine` config; `data` may be left out
      search: {proposer: genetic, population: 60, generations: 6, fields: [close, volume]}
      fitness: {metric: rank_ic}
      library: runs/mined.json  # relative to the working directory, like the workflow's other paths
      if_exists: replace        # default here; `reuse` mines nothing when the library exists, `append` adds to it
    dataset:
      features: {name: mined, kwargs: {library: runs/mined.json, merge: alpha158}}

The search reads the workflow's ``data.provider`` and universe (``dataset.instruments``, else ``data.universe``)
and the dataset's ``train`` and ``valid`` segments unless the section's own ``data`` gives them. The test segment
is never read by the search. The mining runs in ``qcore_before_run``, before the dataset step builds the features,
and records ``mine.candidates_evaluated`` / ``mine.factors_kept`` and the library file on the run.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs

from qcore.config import ComponentSpec
from qmine.config import MineConfig, build_config

logger = logging.getLogger("qmine")

#: Keys of the section (a `qcore mine` config's).
KEYS = ("data", "search", "fitness", "selection", "library", "if_exists")


class MineSection:
    """The ``mine`` config section (registered as a ``config_section``)."""

    def parse(self, value: Any, reader: Any, path: str) -> MineConfig:
        """The section checked as a ``qcore mine`` config (every error names ``mine.<key>`` and its line)."""
        from qmine.library import expect_library

        body = reader.mapping(value, path, KEYS, required=("search", "library"))
        parsed = build_config(body, reader.fail, base=Path.cwd(), source=str(getattr(reader.doc, "source", "") or ""),
                              prefix=f"{path}.", section=True)  # fmt: skip
        expect_library(parsed.library)
        return parsed

    def components(self, parsed: MineConfig, path: str) -> Sequence[tuple[str, str, ComponentSpec]]:
        """The proposer, and the provider when the section names its own."""
        out = [(f"{path}.search.proposer", "factor_proposer", ComponentSpec(parsed.proposer, parsed.proposer_kwargs))]
        if parsed.provider is not None:
            out.append((f"{path}.data.provider", "data_provider",
                        ComponentSpec(parsed.provider, parsed.provider_kwargs)))  # fmt: skip
        return out


def resolve(parsed: MineConfig, workflow: Any) -> MineConfig:
    """``parsed`` with what it left out taken from the workflow (provider, universe, train and valid spans)."""
    changes: dict[str, Any] = {}
    if parsed.provider is None:
        changes.update(provider=workflow.data.provider.name, provider_kwargs=dict(workflow.data.provider.kwargs))
    if parsed.universe is None:
        dataset = workflow.dataset
        changes["universe"] = (dataset.instruments if dataset is not None and dataset.instruments else None) \
            or workflow.data.universe  # fmt: skip
    if not parsed.spans:
        segments = dict(workflow.dataset.segments) if workflow.dataset is not None else {}
        if not {"train", "valid"} <= set(segments):
            raise parsed.error("give data.spans (train and valid): the workflow's dataset has no train and valid "
                               "segments to mine on", "data")  # fmt: skip
        changes["spans"] = {k: segments[k] for k in ("train", "valid")}  # the test segment stays unseen
    return attrs.evolve(parsed, **changes)


def run_section(parsed: MineConfig, context: Any) -> None:
    """Mine as the section says (or reuse its library), and record the outcome on the run."""
    from qmine.search import mine

    config = resolve(parsed, context.config)
    result = mine(config, context.kernel, echo=logger.info)
    if context.run is not None:
        context.run.log_metrics({"mine.candidates_evaluated": float(result.evaluated),
                                 "mine.factors_kept": float(len(result.kept))})  # fmt: skip
        context.run.log_artifact("mined_library.json", Path(result.library))
