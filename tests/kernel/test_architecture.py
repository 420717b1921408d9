"""Architecture rules, checked on the source (``ast``, nothing imported from the files checked).

1. A plugin talks to another plugin only through the kernel's contracts: no module of a plugin package imports
   another plugin's package (``import``, ``from ... import``, or a module path in a string: ``lazy("pkg.mod:Name")``,
   ``importlib.import_module("pkg")``), outside :data:`ALLOWED_PLUGIN_IMPORTS`, and never a private (``_name``)
   module or attribute of one.
2. The kernel names no plugin: no module under ``qcore/`` names a component a plugin registers (its name or an
   alias; those of the kernel's built-in plugins excepted) or a plugin's package, in a string literal or an
   identifier, outside :data:`ALLOWED_KERNEL_NAMES`. Docstrings and comments are documentation, not naming; the
   kernel's own module names (``tracking``) and paths into ``qcore`` (``"qcore.trading:WeightStrategy"``) are the
   kernel's words whatever a plugin registers.

3. Plugins use the kernel's public API: no plugin module imports a private (``_name``) module or name of ``qcore``.

Each check is also run on a planted tree under ``tmp_path``, so a check that stopped finding offences fails too.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Collection, Iterator, Mapping, Sequence
from pathlib import Path

import attrs
import pytest

from qcore.kernel import Kernel

ROOT = Path(__file__).resolve().parents[2]
KERNEL_ROOT = ROOT / "qcore"
#: Folders whose sub-folders are plugin distributions (``plugins/qbacktest/``), each holding top-level packages.
PLUGIN_DIST_ROOTS = (ROOT / "plugins", ROOT / "tests" / "plugins")
#: Folders inside a distribution that hold no source of the plugin (build copies, metadata).
SKIPPED_DIRS = frozenset({"build", "dist", "__pycache__"})

#: (importing package, imported module) → why that module is a public contract of its plugin. Empty: every plugin
#: reaches the others only through ``qcore``.
ALLOWED_PLUGIN_IMPORTS: Mapping[tuple[str, str], str] = {}

_QLIB = "qcore/builtin/qlib_workflow.py"
_QLIB_WHY = ("Qlib's own vocabulary, which the Qlib-config translation must write: plugins register these Qlib "
             "names as aliases so that Qlib configs resolve")  # fmt: skip
_INFIX_WHY = ("the expression syntax: infix operators (and unary minus, as Mul(x, -1)) are spelled as Qlib's "
              "operator names, which an operator plugin provides; the kernel defines the spelling, not the operator")
#: (module path under the checkout, name) → why the kernel may write that name there.
ALLOWED_KERNEL_NAMES: Mapping[tuple[str, str], str] = {
    (_QLIB, "LocalProvider"): f"{_QLIB_WHY} (the provider qrun opens at qlib_init.provider_uri)",
    (_QLIB, "cn"): f"{_QLIB_WHY} (qlib_init.region's default, REG_CN: a region names the market rules)",
    (_QLIB, "Alpha158"): f"{_QLIB_WHY} (a handler whose default processors qrun applies when a config lists none)",
    (_QLIB, "Alpha360"): f"{_QLIB_WHY} (a handler whose default processors qrun applies when a config lists none)",
    (_QLIB, "DropnaLabel"): f"{_QLIB_WHY} (a default learn processor of Qlib's handlers)",
    (_QLIB, "CSZScoreNorm"): f"{_QLIB_WHY} (a default learn processor of Qlib's handlers)",
    (_QLIB, "ProcessInf"): f"{_QLIB_WHY} (a default infer processor of Alpha360)",
    (_QLIB, "ZScoreNorm"): f"{_QLIB_WHY} (a default infer processor of Alpha360)",
    (_QLIB, "Fillna"): f"{_QLIB_WHY} (a default infer processor of Alpha360)",
    (_QLIB, "PortAnaRecord"): f"{_QLIB_WHY} (the record whose kwargs.config holds the backtest settings)",
    (_QLIB, "MultiPassPortAnaRecord"): f"{_QLIB_WHY} (the multi-pass record whose kwargs.config holds the backtest "
                                       "settings)",
    (_QLIB, "backtest"): "the workflow section a Qlib port_analysis_config becomes (the documented `backtest:` "
                         "section, whose schema the backtest plugin owns): the translation's target format",
    ("qcore/trading.py", "factor"): "the price adjustment factor (Qlib's $factor), a parameter of the Exchange "
                                    "contract; a plugin's risk model alias happens to be spelled the same",
    ("qcore/safe_pickle.py", "categorical"): "pandas' module pandas.core.arrays.categorical, allowed to unpickle "
                                             "pandas' Categorical; a plugin's action interpreter shares the word",
    **{("qcore/expr/parser.py", op): _INFIX_WHY
       for op in ("Add", "Sub", "Mul", "Div", "Power", "Gt", "Ge", "Lt", "Le", "Eq", "Ne", "And", "Or")},
}  # fmt: skip

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: A module path as ``lazy`` and ``importlib`` take it: ``pkg``, ``pkg.mod``, ``pkg.mod:Name``.
_MODULE_PATH = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*(?::[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)?")
_PATH_SEPARATORS = re.compile(r"[.:/]")


@attrs.frozen(order=True)
class Offence:
    """One breach of a rule: where, what it names, and how."""

    path: str
    line: int
    name: str
    how: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.how} {self.name!r}"


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def _sources(folder: Path, suffixes: Collection[str] = (".py",)) -> Iterator[Path]:
    """Source files under ``folder``, build copies and caches skipped, in a stable order."""
    for path in sorted(folder.rglob("*")):
        if path.suffix in suffixes and path.is_file() and not SKIPPED_DIRS & set(path.relative_to(folder).parts):
            yield path


def _documentation(tree: ast.AST) -> set[int]:
    """Ids of string constants that are documentation: docstrings and any other bare string statement."""
    return {
        id(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
    }


# ---------------------------------------------------------------------------------------------------------------
# Rule 1: plugins import no other plugin
# ---------------------------------------------------------------------------------------------------------------


def plugin_packages(dist_roots: Sequence[Path]) -> dict[str, Path]:
    """Top-level packages of every plugin distribution (``plugins/*/<package>/__init__.py``): name → folder."""
    packages: dict[str, Path] = {}
    for dist_root in dist_roots:
        if not dist_root.is_dir():
            continue
        for dist in sorted(p for p in dist_root.iterdir() if p.is_dir()):
            for child in sorted(dist.iterdir()):
                if child.is_dir() and child.name not in SKIPPED_DIRS and (child / "__init__.py").is_file():
                    packages[child.name] = child
    return packages


def _private(module: str) -> bool:
    return any(part.startswith("_") for part in re.split(r"[.:]", module))


def cross_plugin_imports(
    packages: Mapping[str, Path],
    allowed: Mapping[tuple[str, str], str] = ALLOWED_PLUGIN_IMPORTS,
    root: Path = ROOT,
) -> list[Offence]:
    """Every place a plugin package imports another plugin's package (or a private name of one)."""
    offences: list[Offence] = []
    for owner, folder in packages.items():
        others = set(packages) - {owner}
        for path in _sources(folder, (".py", ".pyx", ".pxd")):
            where = _relative(path, root)
            text = path.read_text(encoding="utf-8")
            if path.suffix == ".py":
                found = _module_imports(ast.parse(text), others)
            else:  # Cython: an import is a whole line
                found = ((n, m.group(1), "imports") for n, line in enumerate(text.splitlines(), 1)
                         if (m := re.match(r"\s*(?:from|c?import)\s+([\w.]+)", line))
                         and m.group(1).split(".")[0] in others)  # fmt: skip
            for line, module, how in found:
                if _private(module):
                    offences.append(Offence(where, line, module, f"{how} a private name of another plugin:"))
                elif not _covered(owner, module, allowed):
                    offences.append(Offence(where, line, module, f"{how} another plugin's module"))
    return sorted(offences)


def _covered(owner: str, module: str, allowed: Mapping[tuple[str, str], str]) -> bool:
    """Whether ``module`` (``pkg.mod``, ``pkg.mod.Name`` or ``pkg.mod:Name``) lies in an allowed public module."""
    parts = module.replace(":", ".").split(".")
    return any((owner, ".".join(parts[:k])) in allowed for k in range(1, len(parts) + 1))


def _module_imports(tree: ast.AST, others: Collection[str]) -> Iterator[tuple[int, str, str]]:
    """``(line, module path, how)`` for each import of, or module path string into, another plugin's package, and
    each private attribute read through a name such an import bound."""
    bound: set[str] = set()  # local names bound to another plugin's modules or objects
    docs = _documentation(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in others:
                    bound.add(alias.asname or alias.name.split(".")[0])
                    yield node.lineno, alias.name, "imports"
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] in others:
                for alias in node.names:
                    bound.add(alias.asname or alias.name)
                    yield node.lineno, f"{node.module}.{alias.name}", "imports"
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            text = node.value.strip()
            if _MODULE_PATH.fullmatch(text) and text.split(".")[0].split(":")[0] in others:
                yield node.lineno, text, "names (a module path in a string)"
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr.startswith("_"):
            base = node.value
            while isinstance(base, ast.Attribute):
                base = base.value
            if isinstance(base, ast.Name) and base.id in bound:
                yield node.lineno, f"{base.id}...{node.attr}", "reads"


# ---------------------------------------------------------------------------------------------------------------
# Rule 2: the kernel names no plugin
# ---------------------------------------------------------------------------------------------------------------


def registered_names(kernel: Kernel) -> dict[str, str]:
    """Every component name and alias a non-built-in plugin registers → who registers it (for the message)."""
    builtin = {info.name for info in kernel.plugins() if info.builtin}
    names: dict[str, str] = {}
    for spec in kernel.kinds():
        for entry in kernel.registry(spec.name):
            if entry.plugin in builtin:
                continue
            for name in (entry.name, *entry.aliases):
                names.setdefault(name, f"{spec.name} {entry.name!r} of plugin {entry.plugin!r}")
    # a built-in's name is the kernel's own, even where a plugin registers it too (under another kind)
    for spec in kernel.kinds():
        for entry in kernel.registry(spec.name):
            if entry.plugin in builtin:
                for name in (entry.name, *entry.aliases):
                    names.pop(name, None)
    return names


def plugin_package_names(kernel: Kernel, packages: Collection[str]) -> set[str]:
    """Top-level packages of the kernel's loaded non-built-in plugins, and the packages found under plugins/."""
    return {info.module.split(".")[0] for info in kernel.plugins() if not info.builtin} | set(packages)


def kernel_naming(
    kernel_root: Path,
    names: Mapping[str, str],
    packages: Collection[str],
    root: Path = ROOT,
) -> list[Offence]:
    """Every string literal (docstrings excluded) or identifier under ``kernel_root`` that names a registered
    component or a plugin package.

    A literal names a component when it is the name, or when it is path-like (no space) and one of its ``.``/``:``/
    ``/``-separated parts is, unless it is a path into ``qcore`` itself (``"qcore.trading:WeightStrategy"``); it
    names a package when the package is one of its words. An identifier (a name, an attribute, a definition, an
    argument or keyword, an imported module) names either when it is one, unless it is the name of one of the
    kernel's own modules (``tracking`` is ``qcore.tracking``).
    """
    offences: list[Offence] = []
    own = kernel_modules(kernel_root)
    for path in _sources(kernel_root):
        where = _relative(path, root)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docs = _documentation(tree)
        for node in ast.walk(tree):
            line = getattr(node, "lineno", 0)
            for name, how in _named(node, docs, names, packages, own):
                offences.append(Offence(where, line, name, how))
    return sorted(offences)


def kernel_modules(kernel_root: Path) -> set[str]:
    """Names of the kernel's own modules and packages (``tracking`` for ``qcore/tracking.py``)."""
    return {part.removesuffix(".py") for path in _sources(kernel_root)
            for part in path.relative_to(kernel_root).parts if part != "__init__.py"}  # fmt: skip


def _named(
    node: ast.AST, docs: set[int], names: Mapping[str, str], packages: Collection[str], own: Collection[str]
) -> Iterator[tuple[str, str]]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        if id(node) in docs:
            return
        text = node.value
        if any(c.isspace() for c in text):
            parts = {text}
        elif re.match(r"qcore[.:]", text):  # a path to the kernel's own module or object
            parts = set()
        else:
            parts = {text, *_PATH_SEPARATORS.split(text)}
        for part in sorted(parts):
            if part in names:
                yield part, f"a string names {names[part]}:"
        for word in sorted(set(_IDENTIFIER.findall(text)) & set(packages)):
            yield word, "a string names plugin package"
        return
    identifiers: list[str] = []
    if isinstance(node, ast.Name):
        identifiers = [node.id]
    elif isinstance(node, ast.Attribute):
        identifiers = [node.attr]
    elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        identifiers = [node.name]
    elif isinstance(node, ast.arg):
        identifiers = [node.arg]
    elif isinstance(node, ast.keyword) and node.arg:
        identifiers = [node.arg]
    elif isinstance(node, ast.alias):
        identifiers = [*node.name.split("."), *([node.asname] if node.asname else [])]
    elif isinstance(node, ast.ImportFrom) and node.module:
        identifiers = node.module.split(".")
    for identifier in identifiers:
        if identifier in own:
            continue
        if identifier in packages:
            yield identifier, "an identifier names plugin package"
        elif identifier in names:
            yield identifier, f"an identifier names {names[identifier]}:"


def unexcused(offences: Sequence[Offence], allowed: Mapping[tuple[str, str], str]) -> list[Offence]:
    """The offences no allow-list entry covers."""
    return [o for o in offences if (o.path, o.name) not in allowed]


def stale(offences: Sequence[Offence], allowed: Mapping[tuple[str, str], str]) -> list[tuple[str, str]]:
    """Allow-list entries that cover no offence any more (they should go, so the list stays minimal)."""
    found = {(o.path, o.name) for o in offences}
    return sorted(key for key in allowed if key not in found)


# ---------------------------------------------------------------------------------------------------------------
# The rules on this checkout
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def loaded_kernel() -> Kernel:
    """Every installed plugin (the test distributions under tests/plugins included)."""
    return Kernel.load(use_env=False)


def test_plugin_packages_are_found() -> None:
    packages = plugin_packages(PLUGIN_DIST_ROOTS)
    assert {"qbacktest", "qdata_cn", "qops", "qrl", "qdata_toy"} <= set(packages)
    assert all(folder.parent.parent in PLUGIN_DIST_ROOTS for folder in packages.values())


def test_no_plugin_imports_another_plugin() -> None:
    packages = plugin_packages(PLUGIN_DIST_ROOTS)
    offences = cross_plugin_imports(packages)
    assert not offences, "plugins reach into other plugins:\n" + "\n".join(map(str, offences))
    everything = cross_plugin_imports(packages, allowed={})
    for (owner, module), reason in ALLOWED_PLUGIN_IMPORTS.items():  # each entry: a public module, still used
        assert reason.strip() and not _private(module) and owner in packages, (owner, module)
        where = _relative(packages[owner], ROOT) + "/"
        entry = {(owner, module): reason}
        assert any(o.path.startswith(where) and _covered(owner, o.name, entry) for o in everything), (
            f"allow-list entry {(owner, module)} excuses no import any more: remove it")


def test_kernel_names_no_plugin_component(loaded_kernel: Kernel) -> None:
    names = registered_names(loaded_kernel)
    packages = plugin_package_names(loaded_kernel, plugin_packages(PLUGIN_DIST_ROOTS))
    offences = unexcused(kernel_naming(KERNEL_ROOT, names, packages), ALLOWED_KERNEL_NAMES)
    assert not offences, "the kernel names plugins' components:\n" + "\n".join(map(str, offences))


def test_kernel_allow_list_is_minimal_and_explained(loaded_kernel: Kernel) -> None:
    names = registered_names(loaded_kernel)
    packages = plugin_package_names(loaded_kernel, plugin_packages(PLUGIN_DIST_ROOTS))
    offences = kernel_naming(KERNEL_ROOT, names, packages)
    left = stale(offences, ALLOWED_KERNEL_NAMES)
    assert not left, f"allow-list entries that excuse nothing any more (remove them): {left}"
    assert all(len(reason) > 20 for reason in ALLOWED_KERNEL_NAMES.values())
    assert not {name for _, name in ALLOWED_KERNEL_NAMES} & packages, "a plugin package is never excused"


def test_registered_names_leave_out_the_builtin_plugins(loaded_kernel: Kernel) -> None:
    names = registered_names(loaded_kernel)
    builtin = {info.name for info in loaded_kernel.plugins() if info.builtin}
    entries = [e for spec in loaded_kernel.kinds() for e in loaded_kernel.registry(spec.name)]
    own = {n for e in entries if e.plugin in builtin for n in (e.name, *e.aliases)}
    theirs = {n for e in entries if e.plugin not in builtin for n in (e.name, *e.aliases)}
    assert own and not own & set(names)
    assert theirs - own == set(names)


# ---------------------------------------------------------------------------------------------------------------
# The checks catch planted offences
# ---------------------------------------------------------------------------------------------------------------


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _plant_plugins(tmp_path: Path) -> dict[str, Path]:
    """Three plugin distributions: ``pa`` offends in every way, ``pb`` is clean, ``pc`` only through a build copy."""
    root = tmp_path / "plugins"
    _write(root / "pa" / "pa" / "__init__.py", '"""Plugin a; mentions pb in its docstring only."""\n')
    _write(root / "pa" / "pa" / "plain.py", "import pb\n")
    _write(root / "pa" / "pa" / "sub" / "__init__.py", "")
    _write(root / "pa" / "pa" / "sub" / "deep.py", "def f():\n    from pb.strategies import Weight\n    return 1\n")
    _write(root / "pa" / "pa" / "private.py", "from pb.strategies import _generator_name\n")
    _write(root / "pa" / "pa" / "private_module.py", "import pb._impl\n")
    _write(root / "pa" / "pa" / "lazy.py", "from qcore import lazy\nF = lazy('pb.models:Model')\n")
    _write(root / "pa" / "pa" / "dynamic.py", "import importlib\nM = importlib.import_module('pb')\n")
    _write(root / "pa" / "pa" / "attribute.py", "import pb.contracts as c\nX = c.Thing._secret\n")
    _write(root / "pa" / "pa" / "kernel.pyx", "cimport pb.kernels\n")
    _write(root / "pa" / "pa" / "fine.py", '"""Uses pb through qcore only."""\nimport pa.plain\nfrom . import plain\n'
                                           "TEXT = 'pb is the other plugin'  # a sentence, not a module path\n")
    _write(root / "pb" / "pb" / "__init__.py", "import qcore\n")
    _write(root / "pb" / "pb" / "contracts.py", "import pb.strategies\nfrom pb import contracts\n")
    _write(root / "pb" / "build" / "lib" / "pb" / "copy.py", "import pa\n")  # a build copy is no source
    _write(root / "pc" / "pc" / "__init__.py", "")
    _write(root / "pc" / "build" / "lib" / "pc" / "__init__.py", "import pa\n")
    _write(root / "pc" / "pc.egg-info" / "top_level.txt", "pc\n")
    return plugin_packages([root, tmp_path / "absent"])


def test_plugin_packages_of_a_planted_tree(tmp_path: Path) -> None:
    packages = _plant_plugins(tmp_path)
    assert sorted(packages) == ["pa", "pb", "pc"]
    assert packages["pc"] == tmp_path / "plugins" / "pc" / "pc"


def test_cross_plugin_import_check_finds_planted_offences(tmp_path: Path) -> None:
    offences = cross_plugin_imports(_plant_plugins(tmp_path), allowed={}, root=tmp_path)
    found = {(o.path.rpartition("/")[2], o.line, o.name, o.how.split()[0]) for o in offences}
    assert found == {
        ("plain.py", 1, "pb", "imports"),
        ("deep.py", 2, "pb.strategies.Weight", "imports"),  # inside a function
        ("private.py", 1, "pb.strategies._generator_name", "imports"),
        ("private_module.py", 1, "pb._impl", "imports"),
        ("lazy.py", 2, "pb.models:Model", "names"),
        ("dynamic.py", 2, "pb", "names"),
        ("attribute.py", 1, "pb.contracts", "imports"),
        ("attribute.py", 2, "c..._secret", "reads"),
        ("kernel.pyx", 1, "pb.kernels", "imports"),
    }
    private = {"pb.strategies._generator_name", "pb._impl", "c..._secret"}
    assert all(("private" in o.how) == (o.name in private) for o in offences)


def test_cross_plugin_allow_list_excuses_public_contracts_only(tmp_path: Path) -> None:
    packages = _plant_plugins(tmp_path)
    allowed = {("pa", "pb.contracts"): "a public contract", ("pa", "pb.strategies"): "public strategies",
               ("pa", "pb.models"): "public models", ("pb", "pa"): "another owner's entry excuses nothing of pa"}
    left = {(o.path.rpartition("/")[2], o.name) for o in cross_plugin_imports(packages, allowed, tmp_path)}
    # private names stay offences whatever the allow-list says; an entry covers its module and what lies inside
    assert left == {
        ("plain.py", "pb"),
        ("private.py", "pb.strategies._generator_name"),
        ("private_module.py", "pb._impl"),
        ("dynamic.py", "pb"),
        ("attribute.py", "c..._secret"),
        ("kernel.pyx", "pb.kernels"),
    }


_PLANTED_KERNEL = '''\
"""A kernel module whose docstring may mention qlib_bin, sig_analysis and qbacktest freely."""

import qbacktest.plugin  # importing a plugin's package
from qrl import portfolio

# a comment naming qlib_bin is documentation
DEFAULT_PROVIDER = "qlib_bin"
RECORDS = ("signal", "sig_analysis")
HINT = f"run {RECORDS} and open the report written by qbacktest"
TARGET = "qbacktest.report:write"
SENTENCE = "a qlib_bin store is one kind of store"
METRIC = "port_analysis.excess_return"


def run(simulator=None, **kwargs):
    """Only the docstring says simulator (the executor) here: no offence in it."""
    kwargs.update(lightgbm=1)
    return LGBModel, kwargs.mlflow, local


class TopkDropout:
    """A class whose name is a strategy's."""


from qcore.sig_analysis import helper  # the kernel's own module of that name is the kernel's word
OWN = ("qcore.trading:TopkDropout", helper)  # a path to the kernel's own object
'''


def test_kernel_naming_check_finds_planted_offences(tmp_path: Path, loaded_kernel: Kernel) -> None:
    kernel_root = _write(tmp_path / "qcore" / "planted.py", _PLANTED_KERNEL).parent
    _write(kernel_root / "sig_analysis.py", "helper = 1\n")
    assert kernel_modules(kernel_root) == {"planted", "sig_analysis"}
    names = registered_names(loaded_kernel)
    assert {"qlib_bin", "sig_analysis", "simulator", "lightgbm", "LGBModel", "mlflow", "TopkDropout",
            "port_analysis"} <= set(names) and "local" not in names and "signal" not in names  # fmt: skip
    offences = kernel_naming(kernel_root, names, {"qbacktest", "qrl"}, root=tmp_path)
    found = {(o.line, o.name) for o in offences}
    assert found == {
        (3, "qbacktest"),  # import qbacktest.plugin
        (4, "qrl"),  # from qrl import ...
        (4, "portfolio"),  # ... portfolio: qrl's rl_env is also named so
        (7, "qlib_bin"),
        (8, "sig_analysis"),
        (9, "qbacktest"),  # a word of an f-string
        (10, "qbacktest"),  # a module path
        (12, "port_analysis"),  # a part of a dotted key
        (15, "simulator"),  # an argument
        (17, "lightgbm"),  # a keyword
        (18, "LGBModel"),  # a name
        (18, "mlflow"),  # an attribute
        (21, "TopkDropout"),  # a definition
    }, sorted(found)
    assert all(o.path == "qcore/planted.py" for o in offences)
    excused = {("qcore/planted.py", "qlib_bin"): "planted", ("qcore/planted.py", "TopkDropout"): "planted",
               ("qcore/planted.py", "unused"): "planted"}  # fmt: skip
    left = unexcused(offences, excused)
    assert {(o.line, o.name) for o in left} == found - {(7, "qlib_bin"), (21, "TopkDropout")}
    assert stale(offences, excused) == [("qcore/planted.py", "unused")]


def test_kernel_naming_check_passes_a_clean_tree(tmp_path: Path, loaded_kernel: Kernel) -> None:
    clean = _PLANTED_KERNEL.split("import qbacktest")[0] + "VALUE = 'a store'\nlocal = 'signal'\n"
    kernel_root = _write(tmp_path / "qcore" / "clean.py", clean).parent
    names = registered_names(loaded_kernel)
    assert kernel_naming(kernel_root, names, {"qbacktest", "qrl"}, root=tmp_path) == []


# ---------------------------------------------------------------------------------------------------------------
# Rule 3: plugins use the kernel's public API
# ---------------------------------------------------------------------------------------------------------------


def private_kernel_imports(packages: Mapping[str, Path]) -> list[Offence]:
    """Every ``from qcore... import _x`` / ``import qcore._x`` (or a private module on the path) in a plugin."""
    offences = []
    for package, folder in sorted(packages.items()):
        for path in _sources(folder):
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    modules = [node.module]
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.Import):
                    modules, names = [alias.name for alias in node.names], []
                else:
                    continue
                for module in modules:
                    if module != "qcore" and not module.startswith("qcore."):
                        continue
                    bad = [part for part in module.split(".") if part.startswith("_") and not part.startswith("__")]
                    bad += [name for name in names if name.startswith("_") and not name.startswith("__")]
                    for name in bad:
                        offences.append(Offence(_relative(path, ROOT), node.lineno, name,
                                                f"{package} imports a private name of the kernel ({module})"))
    return offences


def test_plugins_use_only_the_kernels_public_names() -> None:
    offences = private_kernel_imports(plugin_packages(PLUGIN_DIST_ROOTS))
    assert not offences, "plugins import kernel internals:\n" + "\n".join(map(str, offences))


def test_private_kernel_import_check_finds_planted_offences(tmp_path: Path) -> None:
    root = tmp_path / "plugins"
    _write(root / "qa" / "qa" / "__init__.py", "")
    _write(root / "qa" / "qa" / "bad.py", "from qcore.cli import _selection\nimport qcore._hidden\n"
           "from qcore.trading import Order\nfrom qcore import __version__\n")
    offences = private_kernel_imports(plugin_packages([root]))
    assert sorted((o.line, o.name) for o in offences) == [(1, "_selection"), (2, "_hidden")]
