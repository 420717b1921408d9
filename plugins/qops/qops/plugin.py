"""Hook implementations: every Qlib operator plus cross-sectional ones (whole-panel kernels), dataset processors and
feature sets."""

from __future__ import annotations

from qcore import Registrar, hookimpl, lazy


@hookimpl
def qcore_register_operators(register: Registrar) -> None:
    from qops.elementwise import OPERATORS as ELEMENTWISE
    from qops.rolling import OPERATORS as ROLLING

    for operator in (*ELEMENTWISE, *ROLLING):
        register(operator.name, operator, description=operator.description)


@hookimpl
def qcore_register_processors(register: Registrar) -> None:
    from qops.processors import PROCESSORS

    for processor in PROCESSORS:
        register(processor.__name__, processor)


@hookimpl
def qcore_register_feature_sets(register: Registrar) -> None:
    register("alpha158", lazy("qops.features:alpha158", description="Qlib's Alpha158 feature set (158 features + "
                                                                     "LABEL0; Qlib's generator config knobs)."),
             aliases=("Alpha158",))  # fmt: skip
    register("alpha360", lazy("qops.features:alpha360", description="Qlib's Alpha360 feature set (60 days of "
                                                                     "normalised prices and volume + LABEL0)."),
             aliases=("Alpha360",))  # fmt: skip
    register("fundamental", lazy("qops.features:fundamental", description="Point-in-time fundamentals: earnings "
                                                                           "yield, book-to-price, ROE, its 4-quarter "
                                                                           "change, revenue growth + LABEL0."))
