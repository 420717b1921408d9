"""Hook implementations of the model zoo.

Nothing heavy is imported here: each factory imports its model module (and LightGBM or torch) when a model is
built, so listing components never loads them, and a missing torch only matters to torch models.

Every factory has a ``check_kwargs(kwargs)`` attribute (the kernel's convention, see :mod:`qcore.runner`): it
builds the model once with the arguments, which reads no data and trains nothing, so every argument check a
model makes (names with a did-you-mean, types, ranges, LightGBM's own parameter parser) runs when a workflow is
validated, before any data is read. Errors carry the argument as their ``path``.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from qcore import Registrar, hookimpl, lazy
from qcore.errors import OptionalDependencyError

if TYPE_CHECKING:
    from qcore.config import WorkflowConfig
    from qcore.context import RunResult

TORCH_INSTALL = "pip install 'qmodel-zoo[torch]'"


def _check_names(component: str, cls: type, kwargs: Mapping[str, Any]) -> None:
    """Refuse unknown keyword arguments of a model class that lists all of its parameters (no ``**kwargs``)."""
    from qmodel_zoo._base import check_known

    params = inspect.signature(cls).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        check_known(component, kwargs, params)


def _checked(factory: Callable[..., Any]) -> Callable[..., Any]:
    """Give ``factory`` its ``check_kwargs``: build the model once with the arguments and drop it."""

    def check_kwargs(kwargs: Mapping[str, Any]) -> None:
        factory(**kwargs)

    factory.check_kwargs = check_kwargs  # type: ignore[attr-defined]
    return factory


_linear = lazy("qmodel_zoo.linear:LinearModel", description="Linear least squares: OLS, ridge, lasso, non-negative.")


def _check_linear(kwargs: Mapping[str, Any]) -> None:
    from qmodel_zoo.linear import LinearModel

    _check_names("the linear model", LinearModel, kwargs)
    LinearModel(**kwargs)


_linear.check_kwargs = _check_linear  # type: ignore[attr-defined]


_lightgbm = _checked(lazy("qmodel_zoo.gbdt:LGBModel",
                           description="LightGBM trees, early-stopped on the valid segment (Qlib's LGBModel)."))
_hf_lightgbm = _checked(lazy("qmodel_zoo.hf_lgb:HFLGBModel",
                             description="LightGBM on the sign of the cross-sectional alpha, for high-frequency "
                                         "signals (Qlib's HFLGBModel)."))  # fmt: skip
_double_ensemble = _checked(lazy("qmodel_zoo.double_ensemble:DEnsembleModel",
                                 description="DoubleEnsemble: LightGBM sub-models with sample re-weighting and "
                                             "feature selection."))  # fmt: skip


def _torch_factory(name: str, class_name: str, description: str, module: str = "qmodel_zoo.nn.models",
                   ) -> Callable[..., Any]:
    """A factory that imports torch and the model class (from ``module``) only when called."""

    def factory(**kwargs: Any) -> Any:
        try:
            importlib.import_module("torch")
        except ImportError as exc:
            raise OptionalDependencyError(f"the {name} model", "torch", TORCH_INSTALL) from exc
        models = importlib.import_module(module)
        return getattr(models, class_name)(**kwargs)

    factory.__name__ = f"_{name}"
    factory.__doc__ = description
    return _checked(factory)


#: registry name, model class in :mod:`qmodel_zoo.nn.models`, Qlib's class name, description.
TORCH_MODELS = (
    ("mlp", "MLPModel", "DNNModelPytorch", "Multi-layer perceptron on feature rows (PyTorch)."),
    ("lstm", "LSTMModel", "LSTM", "LSTM on feature sequences (PyTorch)."),
    ("gru", "GRUModel", "GRU", "GRU on feature sequences (PyTorch)."),
    ("alstm", "ALSTMModel", "ALSTM", "Attention LSTM/GRU on feature sequences (PyTorch)."),
    ("transformer", "TransformerModel", "TransformerModel", "Transformer encoder on feature sequences (PyTorch)."),
)
#: The same, for the models in :mod:`qmodel_zoo.nn.more_models`.
MORE_TORCH_MODELS = (
    ("tcn", "TCNModel", "TCN", "Temporal convolutional network on feature sequences (PyTorch)."),
    ("localformer", "LocalformerModel", "LocalformerModel",
     "Transformer with local convolutions and a GRU on feature sequences (PyTorch)."),
    ("gats", "GATsModel", "GATs", "GRU/LSTM base with graph attention across a day's stocks (PyTorch)."),
)
#: The same, for the models in :mod:`qmodel_zoo.nn.recurrent_models`.
RECURRENT_TORCH_MODELS = (
    ("krnn", "KRNNModel", "KRNN", "Convolution then parallel GRUs, averaged, on feature sequences (PyTorch)."),
    ("sfm", "SFMModel", "SFM", "State Frequency Memory recurrent network on feature sequences (PyTorch)."),
)
#: Torch models in a module each: registry name, module, class, Qlib's class name, description.
SINGLE_MODULE_TORCH_MODELS = (
    ("sandwich", "qmodel_zoo.nn.sandwich", "SandwichModel", "Sandwich",
     "Two convolution + parallel-GRU encoders stacked, on feature sequences (PyTorch)."),
    ("general_ptnn", "qmodel_zoo.nn.general", "GeneralPTNN", "GeneralPTNN",
     "Qlib's general PyTorch model: trains a named network (MLP, GRU, LSTM, ALSTM, Transformer)."),
    ("add_model", "qmodel_zoo.nn.add", "ADDModel", "ADD",
     "Excess-return and market encoders with adversarial heads and a reconstruction decoder (PyTorch)."),
    ("igmtf", "qmodel_zoo.nn.igmtf", "IGMTFModel", "IGMTF",
     "Recurrent encoder reading similar stocks of similar training days (instance graph, PyTorch)."),
    ("tcts", "qmodel_zoo.nn.tcts", "TCTSModel", "TCTS",
     "GRU forecaster on several labels weighted by a scheduler trained on the valid segment (PyTorch)."),
    ("adarnn", "qmodel_zoo.nn.adarnn", "ADARNNModel", "ADARNN",
     "Stacked GRUs matching hidden-state distributions across periods of the train segment (PyTorch)."),
    ("tabnet", "qmodel_zoo.nn.tabnet", "TabnetModel", "TabnetModel",
     "TabNet on feature rows, with self-supervised pre-training on the 'pretrain' segment (PyTorch)."),
    ("tra", "qmodel_zoo.nn.tra", "TRAModel", "TRAModel",
     "Temporal Routing Adaptor: predictors routed by their recent errors, on MTSDatasetH's memory (PyTorch)."),
    ("hist", "qmodel_zoo.nn.hist", "HISTModel", "HIST",
     "GRU/LSTM base with predefined (industry) and hidden concepts shared across a day's stocks (PyTorch)."),
    ("tft", "qmodel_zoo.nn.tft", "TFTModel", "TFTModel",
     "Temporal Fusion Transformer, quantile forecasts over decoder days (PyTorch; Qlib's needs TensorFlow 1.x)."),
)


@hookimpl
def qcore_register_models(register: Registrar) -> None:
    """Register the zoo's models under qcore names and Qlib's class names."""
    register("linear", _linear, aliases=("LinearModel",))
    register("lightgbm", _lightgbm, aliases=("LGBModel", "lgb"))
    register("hf_lightgbm", _hf_lightgbm, aliases=("HFLGBModel",))
    register("double_ensemble", _double_ensemble, aliases=("DEnsembleModel",))
    for name, class_name, qlib_name, description in TORCH_MODELS:
        register(name, _torch_factory(name, class_name, description), aliases=(qlib_name,), description=description)
    for name, class_name, qlib_name, description in MORE_TORCH_MODELS:
        register(name, _torch_factory(name, class_name, description, "qmodel_zoo.nn.more_models"),
                 aliases=(qlib_name,), description=description)
    for name, class_name, qlib_name, description in RECURRENT_TORCH_MODELS:
        register(name, _torch_factory(name, class_name, description, "qmodel_zoo.nn.recurrent_models"),
                 aliases=(qlib_name,), description=description)
    for name, module, class_name, qlib_name, description in SINGLE_MODULE_TORCH_MODELS:
        register(name, _torch_factory(name, class_name, description, module), aliases=(qlib_name,),
                 description=description)


@hookimpl
def qcore_register_records(register: Registrar) -> None:
    """Register the signal-analysis record."""
    register("sig_analysis", lazy("qmodel_zoo.records:SigAnaRecord",
                                  description="IC, ICIR, Rank IC and Rank ICIR of the predictions (Qlib's "
                                              "SigAnaRecord)."), aliases=("SigAnaRecord",))  # fmt: skip


@hookimpl
def qcore_default_records(config: WorkflowConfig) -> list[str]:
    """A workflow with a model analyses its signal (IC, Rank IC) unless its config lists its records."""
    return ["sig_analysis"] if config.model is not None else []


@hookimpl(tryfirst=True)
def qcore_run_summary(config: WorkflowConfig, result: RunResult) -> list[tuple[str, str]]:
    """The signal analysis' IC, ICIR, Rank IC and Rank ICIR, first (tryfirst: the signal before what trades it)."""
    from qmodel_zoo.records import SUMMARY

    return [(label, f"{result.metrics[key]:.4f}") for key, label in SUMMARY if key in result.metrics]
