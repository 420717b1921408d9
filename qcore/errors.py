"""Every error qcore raises on purpose.

Errors carry their context as attributes and build their message once. Nothing here imports click: the CLI
turns a :class:`QcoreError` into a one-line message and an exit code, and nothing else does.
"""

from __future__ import annotations

from collections.abc import Iterable


class QcoreError(Exception):
    """Base class of every error qcore raises on purpose."""


class ConfigError(QcoreError, ValueError):
    """A workflow configuration is invalid.

    :param message: what is wrong.
    :param path: the dotted key path (``task.model.kwargs.lr``), empty for the whole document.
    :param source: the file the value came from, if any.
    :param line: the 1-based line of the key in ``source``, if known.
    """

    def __init__(self, message: str, *, path: str = "", source: str | None = None, line: int | None = None) -> None:
        self.message = message
        self.path = path
        self.source = source
        self.line = line
        where = ""
        if source:
            where = f"{source}:{line}: " if line else f"{source}: "
        key = f"{path}: " if path else ""
        super().__init__(f"{where}{key}{message}")


class UnknownComponentError(QcoreError, LookupError):
    """A registry was asked for a name it does not hold.

    The message lists the available names and the closest match.
    """

    def __init__(self, kind: str, name: str, available: Iterable[str]) -> None:
        self.kind = kind
        self.name = name
        self.available = sorted(available)
        import difflib  # only when an error is built: not at start-up

        close = difflib.get_close_matches(name, self.available, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        listing = ", ".join(self.available) if self.available else "none registered"
        super().__init__(f"unknown {kind} {name!r}{hint} (available: {listing})")

    def __reduce__(self):  # keep the error picklable for worker processes
        return (type(self), (self.kind, self.name, self.available))


class DuplicateComponentError(QcoreError, ValueError):
    """Two plugins registered the same name in one registry without ``override=True``."""

    def __init__(self, kind: str, name: str, first_plugin: str, second_plugin: str) -> None:
        self.kind = kind
        self.name = name
        self.first_plugin = first_plugin
        self.second_plugin = second_plugin
        super().__init__(
            f"{kind} {name!r} is registered by both plugin {first_plugin!r} and plugin {second_plugin!r}; "
            f"pass override=True in {second_plugin!r} to replace it"
        )


class ComponentContractError(QcoreError, TypeError):
    """A registered factory built something that does not satisfy its kind's protocol."""

    def __init__(
        self, kind: str, name: str, plugin: str, built: str, protocol: str, missing: Iterable[str]
    ) -> None:
        self.kind = kind
        self.name = name
        self.plugin = plugin
        self.built = built
        self.protocol = protocol
        self.missing = list(missing)
        super().__init__(
            f"{kind} {name!r} from plugin {plugin!r} built a {built}, which does not satisfy {protocol}: "
            f"missing {', '.join(self.missing)}"
        )

    def __reduce__(self):  # keep the error picklable for worker processes
        return (type(self), (self.kind, self.name, self.plugin, self.built, self.protocol, self.missing))


class PluginLoadError(QcoreError):
    """A plugin could not be imported or registered."""

    def __init__(self, plugin: str, distribution: str | None, cause: BaseException) -> None:
        self.plugin = plugin
        self.distribution = distribution
        self.cause = cause
        dist = f" (distribution {distribution})" if distribution else ""
        reason = "; ".join(line.strip() for line in str(cause).splitlines() if line.strip())
        super().__init__(f"plugin {plugin!r}{dist} failed to load: {type(cause).__name__}: {reason}")


class PluginSelectionError(QcoreError, ValueError):
    """A ``-p``/``plugins:``/environment plugin selection names something impossible."""


class OptionalDependencyError(QcoreError, ImportError):
    """A component needs a package that is not installed; the message says what to install."""

    def __init__(self, component: str, package: str, install: str) -> None:
        self.component = component
        self.package = package
        self.install = install
        super().__init__(f"{component} needs {package!r}, which is not installed; install it with: {install}")


class DataError(QcoreError, ValueError):
    """Stored or imported data is malformed; the message names the file (and row or position)."""

    def __init__(self, message: str, *, path: str | None = None, row: int | None = None) -> None:
        self.message = message
        self.path = path
        self.row = row
        where = ""
        if path:
            where = f"{path}:{row}: " if row is not None else f"{path}: "
        super().__init__(f"{where}{message}")


class ExpressionError(QcoreError, ValueError):
    """A malformed expression; ``str()`` shows the expression with a caret under ``position``."""

    def __init__(self, message: str, expression: str, position: int) -> None:
        self.message = message
        self.expression = expression
        self.position = max(0, min(position, len(expression)))
        super().__init__(message)

    def __str__(self) -> str:
        return f"{self.message} at position {self.position}\n  {self.expression}\n  {' ' * self.position}^"

    def __reduce__(self):
        return (type(self), (self.message, self.expression, self.position))


class RunError(QcoreError):
    """A workflow step failed for a reason the user can act on."""


class ArgumentError(QcoreError, ValueError):
    """A command's argument that cannot be used (``--out`` inside the store, ``--instruments`` naming nothing).

    ``option`` names it as the user typed it (``--out``); the command line reports it as a usage error.
    """

    def __init__(self, message: str, *, option: str) -> None:
        self.message = message
        self.option = option
        super().__init__(f"{option}: {message}")
