"""``Kernel.create`` hands itself to factories that ask for it with a keyword-only ``kernel`` parameter (components
that build others by name through the same kernel's registries, such as qrl's ``rl_policy``)."""

from __future__ import annotations

from qcore.kernel import Kernel


def test_a_keyword_only_kernel_parameter_receives_the_creating_kernel() -> None:
    kernel = Kernel.load(use_env=False)
    registry = kernel.registry("rl_reward")

    def asks(*, scale: float = 1.0, kernel: Kernel | None = None) -> tuple[float, Kernel | None]:
        return scale, kernel

    def positional(kernel: object = None) -> object:
        return kernel

    def plain(**kwargs: object) -> dict[str, object]:
        return kwargs

    registry.add("asks", asks, plugin="test")
    registry.add("positional", positional, plugin="test")
    registry.add("plain", plain, plugin="test")
    assert kernel.create("rl_reward", "asks", scale=2.0) == (2.0, kernel)
    other = Kernel.load(use_env=False)
    assert kernel.create("rl_reward", "asks", kernel=other)[1] is other  # the caller's choice wins
    assert kernel.create("rl_reward", "positional") is None  # only keyword-only parameters opt in
    assert kernel.create("rl_reward", "plain") == {}
