"""Fuzzing the command line: random combinations of real option names with valid, mutated and random values for
``qcore expr``, ``features``, ``list``, ``validate``, ``plugins``, ``runs`` and ``data check``/``info``. No run may end
in an internal error (exit code 70) or print a traceback, and the store they read is never changed.

Deterministic (``derandomize``) and bounded: each test runs a fixed number of examples, all of them together well
under 30 seconds on the development machine.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qcore.cli import ExitCode, cli

FUZZ = settings(deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))


class Sandbox:
    """A tiny store and the files the fuzzed arguments may name, all under one temporary folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.store = root / "store"
        result = CliRunner().invoke(
            cli, ["data", "synth", "--out", str(self.store), "--instruments", "8", "--days", "120", "--seed", "0"]
        )
        assert result.exit_code == 0, result.output
        self.out = root / "out"
        self.empty = root / "empty"
        self.empty.mkdir()
        self.text = root / "notes.txt"
        self.text.write_text("not a store\n")
        files = {
            "good.csv": b"name,expression\nma,\"Mean($close, 5)\"\nret,$close/Ref($close,1)-1\n",
            "latin1.csv": b"a,$close\xe9\n",
            "long.csv": b"a," + b"$close+" * 20_000 + b"$close\n",
            "dup.csv": b"a,$close\na,$open\n",
            "empty.csv": b"",
            "nul.csv": b"a,$clo\x00se\n",
            "ok.yaml": (f"experiment: fuzz\ndata:\n  provider: {{name: qlib_bin, kwargs: "
                        f"{{provider_uri: {self.store}}}}}\n").encode(),
            "bad.yaml": b"experiment: [unclosed\n",
            "bomb.yaml": b"a: &a [x, x]\nb: &b [*a, *a]\nc: &c [*b, *b]\n",
            "binary.yaml": b"\xff\xfe\x00\x01",
        }
        self.files = []
        for name, content in files.items():
            path = root / name
            path.write_bytes(content)
            self.files.append(str(path))

    def paths(self) -> list[str]:
        """Path values: real ones of every kind, and ones that cannot exist."""
        return [
            str(self.store), str(self.empty), str(self.text), str(self.root / "missing"), str(self.text / "below"),
            str(self.root), *self.files,
        ]

    def outputs(self) -> list[str]:
        return [
            str(self.out / "x.parquet"), str(self.out / "deep" / "er" / "x.parquet"), str(self.root),
            str(self.text / "x.parquet"), str(self.store / "calendars" / "day.txt" / "x.parquet"),
        ]

    def digest(self) -> str:
        h = hashlib.sha256()
        for path in sorted(self.store.rglob("*")):
            h.update(str(path).encode())
            if path.is_file():
                h.update(path.read_bytes())
        return h.hexdigest()


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Sandbox:
    return Sandbox(tmp_path_factory.mktemp("cli_fuzz"))


def mutated(values: list[str]) -> st.SearchStrategy[str]:
    """A value from ``values`` with a few characters deleted, doubled or replaced."""

    @st.composite
    def build(draw: st.DrawFn) -> str:
        text = draw(st.sampled_from(values))
        for _ in range(draw(st.integers(1, 3))):
            at = draw(st.integers(0, len(text)))
            kind = draw(st.sampled_from(("delete", "double", "replace")))
            if kind == "delete":
                text = text[:at] + text[at + 1:]
            elif kind == "double":
                text = text[:at] + text[at:at + 3] * 2 + text[at + 3:]
            else:
                text = text[:at] + draw(st.sampled_from("$(),'\"\\/-0 9eé\x00\n.")) + text[at + 1:]
        return text

    return build()


def value(valid: list[str]) -> st.SearchStrategy[str]:
    """A valid value (three times in five), a mutated one, or random text."""
    good = st.sampled_from(valid)
    return st.one_of(good, good, good, mutated(valid), st.text(max_size=12))


GOOD = {
    "--provider": ["qlib_bin", "qlib", "bin"],
    "--instruments": ["all", "csi300", "SH600074", "SH600074,SZ002425", "SH000300, SH600184"],
    "--start": ["2015-01-05", "2015-03-02", "20150302", "2014-12-31", "2015-03-02 09:30"],
    "--end": ["2015-06-29", "2015-04-30", "2015/05/04", "2030-01-01"],
    "--freq": ["day"],
    "--field": [
        "$close", "Mean($close, 5)", "Ref($close, -2)/Ref($close, -1) - 1", "Corr($close, Log($volume+1), 10)",
        "CSRank(Std($high, 5))", "ChangeInstrument('SH000300', $close)", "Mean($close, 99999999999999999999)",
        "(((($close))))", "IdxMax($high, 1e300)", "-$low", "If($close > $open, 1, 0)",
    ],
}
BAD = {
    "--provider": ["toy", "qlib_bni", ""],
    "--instruments": ["sh600074", "nope", ",", "SH600074,nope", ""],
    "--start": ["2030-01-01", "2015-02-30", "x", "", "2015-01-05+08:00"],
    "--end": ["2001-01-01", "2015-13-01", "yesterday", ""],
    "--freq": ["1min", "week", "", "../instruments/all"],
    "--field": ["Ref(2, 5)", "'abc'", "Maen($close, 5)", "Mean($close", "", "(" * 200 + "$close" + ")" * 200],
}
PLUGINS = ["qdata_cn", "no:qrl", "qdata_tyo", "no:", "qops", "no:qops", "no:qdata_cn"]
#: What one example may get wrong (most get none or one of them wrong).
FAULTS = (*BAD, "--provider-uri", "--out", "--fields-file", "source", "required", "root")


def invoke(sandbox: Sandbox, args: list[str]) -> None:
    """Run ``qcore args``; fail on an internal error, a traceback or a changed store."""
    before = sandbox.digest()
    result = CliRunner().invoke(cli, args)
    shown = f"qcore {' '.join(map(repr, args))}\n{result.output}"
    assert result.exit_code != ExitCode.INTERNAL, shown
    assert "Traceback" not in result.output, shown
    assert result.exception is None or isinstance(result.exception, SystemExit), shown + repr(result.exception)
    assert sandbox.digest() == before, shown


@st.composite
def root_options(draw: st.DrawFn, faults: frozenset[str]) -> list[str]:
    """Options of ``qcore`` itself when ``root`` is a fault: plugin selections from a fixed list (never random
    text: ``-p`` imports a module of that name)."""
    args: list[str] = []
    if "root" in faults:
        for plugin in draw(st.lists(st.sampled_from(PLUGINS), max_size=2)):
            args += ["-p", plugin]
        if draw(st.booleans()):
            args.append(draw(st.sampled_from(["--no-autoload", "--non-strict-plugins", "-v"])))
    return args


def pick(draw: st.DrawFn, name: str, faults: frozenset[str]) -> str:
    """A good value of option ``name``, or a bad, mutated or random one when ``name`` is a fault."""
    if name not in faults:
        return draw(st.sampled_from(GOOD[name]))
    return draw(st.one_of(st.sampled_from(BAD[name]), mutated(GOOD[name]), st.text(max_size=12)))


@st.composite
def store_options(draw: st.DrawFn, sandbox: Sandbox, faults: frozenset[str]) -> list[str]:
    """The options ``expr`` and ``features`` share: the required ones, some optional ones, in random order."""
    values = {name: pick(draw, name, faults) for name in ("--provider", "--instruments", "--start", "--end", "--freq")}
    values["--provider-uri"] = str(sandbox.store)
    if "--provider-uri" in faults:
        values["--provider-uri"] = draw(st.one_of(st.sampled_from(sandbox.paths()), mutated([str(sandbox.store)])))
    values["--out"] = str(sandbox.out / "x.parquet")
    if "--out" in faults:
        values["--out"] = draw(st.one_of(st.sampled_from(sandbox.outputs()), mutated([str(sandbox.out)])))
    names = [n for n in values if n in ("--provider-uri", "--out") or n in faults or draw(st.booleans())]
    if "required" in faults:
        names.remove(draw(st.sampled_from(["--provider-uri", "--out"])))
    args: list[str] = []
    for name in draw(st.permutations(names)):
        args += [name, values[name]]
    return args


faults_of_one_example = st.sets(st.sampled_from(FAULTS), max_size=2).map(frozenset)


@settings(FUZZ, max_examples=150)
@given(data=st.data())
def test_expr_arguments(sandbox: Sandbox, data: st.DataObject) -> None:
    faults = data.draw(faults_of_one_example)
    args = [*data.draw(root_options(faults)), "expr", *data.draw(store_options(sandbox, faults))]
    source = data.draw(st.sampled_from(["file", "both", "none"])) if "source" in faults else "field"
    if source in ("field", "both"):
        fields = data.draw(st.lists(st.sampled_from(GOOD["--field"]), min_size=1, max_size=3))
        if "--field" in faults:
            fields[data.draw(st.integers(0, len(fields) - 1))] = pick(data.draw, "--field", faults)
        for expression in fields:
            args += ["--field", expression]
    if source in ("file", "both"):
        args += ["--fields-file", data.draw(st.sampled_from(sandbox.files if "--fields-file" in faults
                                                            else sandbox.files[:1]))]
    invoke(sandbox, args)


@settings(FUZZ, max_examples=15)
@given(data=st.data())
def test_features_arguments(sandbox: Sandbox, data: st.DataObject) -> None:
    faults = data.draw(faults_of_one_example)
    name = data.draw(value(["alpha158", "Alpha158", "alpha360"]) if "source" in faults else st.just("alpha158"))
    args = [*data.draw(root_options(faults)), "features", name, *data.draw(store_options(sandbox, faults))]
    if data.draw(st.booleans()):
        args.append(data.draw(st.sampled_from(["--label", "--no-label"])))
    invoke(sandbox, args)


@settings(FUZZ, max_examples=120)
@given(data=st.data())
def test_other_commands(sandbox: Sandbox, data: st.DataObject) -> None:
    command = data.draw(st.sampled_from(["list", "validate", "plugins", "runs", "data check", "data info"]))
    path = st.one_of(st.sampled_from(sandbox.paths()), st.text(max_size=12))
    if command == "list":
        args = ["list", data.draw(value(["models", "operators", "feature_sets", "data_providers", "processor"]))]
    elif command == "validate":
        args = ["validate", data.draw(path)]
        for override in data.draw(st.lists(value(["data.freq=day", "experiment=x", "a.b.c=1", "plugins=[]"]),
                                           max_size=2)):
            args += ["--set", override]
    elif command == "plugins":
        args = ["plugins"]
    elif command == "runs":
        args = ["runs", "--recorder", data.draw(value(["local", "file", "nope"])),
                "--uri", data.draw(st.one_of(st.just(str(sandbox.root / "runs")), path))]
        args += data.draw(st.sampled_from([["list"], ["show", "x"], ["show", "../.."], ["compare", "a", "b"]]))
    else:
        args = [*command.split(), data.draw(path)]
        if command == "data check":
            args += data.draw(st.sampled_from([[], ["--freq", "1min"], ["--max-jump", "-1"], ["--max-nan-run", "0"],
                                               ["--max-nan-run", "-5"], ["--max-jump", "nan"]]))
    if data.draw(st.booleans()) and command in ("list", "plugins", "data info", "data check"):
        args.append("--json")
    invoke(sandbox, [*data.draw(root_options(data.draw(faults_of_one_example))), *args])
