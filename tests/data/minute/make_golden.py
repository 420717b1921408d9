"""Regenerate the golden files of ``tests/qdata_cn/test_qdata_minute_parity.py`` (Qlib reads our minute stores,
we read Qlib's).

Run from the repository root with the project's environment; Qlib 0.9.7 runs in its own environment
(``../shared/tools/qlib-baseline-env.sh .bench/qlib-baseline``) and Qlib's ``scripts/dump_bin.py`` comes from a
checkout of Qlib (it is not part of the pip package)::

    .venv/bin/python tests/data/minute/make_golden.py --qlib-python .bench/qlib-baseline/bin/python \\
        --dump-bin ~/src/qlib/scripts/dump_bin.py

It writes, next to this script (see README.md there): ``golden.json`` (parameters, the synthetic store's digest,
Qlib's calendars and instrument lists), ``qlib_reads_ours.parquet`` and ``qlib_reads_ours_day.parquet`` (Qlib's
``D.features`` on a small synthetic store with 1-minute and daily bars), ``collector/*.csv`` (1-minute bars in
Qlib's collector layout), ``qlib_store/`` (what Qlib's ``dump_bin`` made of them) and ``qlib_reads_qlib.parquet``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
#: The synthetic store Qlib reads: 3 stocks and the index, 2 days of 1-minute bars.
SYNTH = {"instruments": 3, "days": 2, "seed": 21, "start": "2020-07-01"}
FIELDS = ["open", "high", "low", "close", "vwap", "volume", "amount", "factor", "change"]
#: Expressions over the minute series (windows cross the day boundary, as in Qlib).
EXPRESSIONS = {
    "ret1": "$close/Ref($close, 1) - 1",
    "mean30": "Mean($close, 30)",
    "std10": "Std($close, 10)",
    "vsum60": "Sum($volume, 60)",
    "hmax240": "Max($high, 240)",
    "vwap_dev": "$vwap/$close - 1",
}

_QLIB_SCRIPT = r"""
import json, sys
import pandas as pd
import qlib
from qlib.data import D

store, out, names = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
qlib.init(provider_uri=store, region="cn", expression_cache=None, dataset_cache=None, kernels=1)
info = {"calendars": {}, "instruments": {}}
for freq in names["calendars"]:
    info["calendars"][freq] = [str(t) for t in D.calendar(freq=freq)]
for freq in ("1min", "day"):
    info["instruments"][freq] = sorted(D.list_instruments(D.instruments("all"), freq=freq, as_list=True))
for freq, columns in names["features"].items():
    frame = D.features(D.instruments("all"), list(columns.values()), freq=freq)
    frame.columns = list(columns)
    frame.astype("float32").to_parquet(f"{out}_{freq}.parquet")
with open(f"{out}.json", "w") as handle:
    json.dump(info, handle)
"""


def store_digest(root: Path) -> str:
    """sha256 of every calendar, instrument and feature file (path and bytes) of a store."""
    digest = hashlib.sha256()
    for path in sorted(p for sub in ("calendars", "instruments", "features") for p in (root / sub).rglob("*")):
        if path.is_file():
            digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def write_synth(root: Path) -> None:
    """The synthetic store of :data:`SYNTH` with 1-minute bars (the test writes the same one)."""
    from qdata_cn.synth import synthesize

    synthesize(root, freq="1min", **SYNTH)


def write_collector(store: Path, out: Path) -> dict[str, str]:
    """Per-symbol CSVs in Qlib's collector layout (``symbol,date,<fields>``) from two instruments of ``store``: the
    first from its second day on (``late``), the second with 15 minutes of its second day missing (``gap``), so that
    together they cover every minute as the collector's files do; returns the roles."""
    import pandas as pd
    from qdata_cn.binstore import QlibBinProvider
    from qdata_cn.exporter import export_store

    symbols = sorted(QlibBinProvider(store).universe("all"))[:2]
    roles = {"late": symbols[0], "gap": symbols[1]}
    export_store(store, out / "export", freq="1min", instruments=symbols)
    for symbol in symbols:
        frame = pd.read_csv(out / "export" / f"{symbol.lower()}.csv", dtype=str, keep_default_na=False)
        if symbol == roles["late"]:
            frame = frame.iloc[240:]
        if symbol == roles["gap"]:
            frame = frame.drop(frame.index[340:355])  # on day 2, where the other file has those minutes
        frame.insert(0, "symbol", symbol)
        frame.to_csv(out / f"{symbol.lower()}.csv", index=False, lineterminator="\n")
    shutil.rmtree(out / "export")
    return roles


def run_qlib(python: str, store: Path, out: Path, names: dict) -> dict:
    subprocess.run([python, "-c", _QLIB_SCRIPT, str(store), str(out), json.dumps(names)], check=True)
    return json.loads(out.with_suffix(".json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--qlib-python", required=True, help="python of the Qlib 0.9.7 environment")
    parser.add_argument("--dump-bin", required=True, help="Qlib's scripts/dump_bin.py")
    args = parser.parse_args()
    import pandas as pd

    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        synth = tmp_path / "synth"
        write_synth(synth)
        names = {
            "calendars": ["1min", "5min", "30min", "day"],
            "features": {"1min": {**{f: f"${f}" for f in FIELDS}, **EXPRESSIONS}, "day": {f: f"${f}" for f in FIELDS}},
        }
        ours = run_qlib(args.qlib_python, synth, tmp_path / "ours", names)
        shutil.copy(tmp_path / "ours_1min.parquet", HERE / "qlib_reads_ours.parquet")
        shutil.copy(tmp_path / "ours_day.parquet", HERE / "qlib_reads_ours_day.parquet")

        collector = HERE / "collector"
        shutil.rmtree(collector, ignore_errors=True)
        collector.mkdir()
        roles = write_collector(synth, collector)
        qlib_store = HERE / "qlib_store"
        shutil.rmtree(qlib_store, ignore_errors=True)
        subprocess.run([args.qlib_python, args.dump_bin, "dump_all", "--data_path", str(collector), "--qlib_dir",
                        str(qlib_store), "--freq", "1min", "--date_field_name", "date", "--symbol_field_name",
                        "symbol", "--exclude_fields", "symbol", "--max_workers", "1"], check=True)  # fmt: skip
        theirs = run_qlib(args.qlib_python, qlib_store, tmp_path / "theirs",
                          {"calendars": ["1min", "30min"], "features": {"1min": {f: f"${f}" for f in FIELDS}}})
        shutil.copy(tmp_path / "theirs_1min.parquet", HERE / "qlib_reads_qlib.parquet")
        digest = store_digest(synth)
    golden = {
        "qlib": subprocess.run([args.qlib_python, "-c", "import qlib, pandas; print(qlib.__version__, "
                                "pandas.__version__)"], capture_output=True, text=True, check=True).stdout.split(),
        "synth": SYNTH,
        "synth_digest": digest,
        "fields": FIELDS,
        "expressions": EXPRESSIONS,
        "collector": roles,
        "qlib_reads_ours": ours,
        "qlib_reads_qlib": theirs,
        "qcore_pandas": pd.__version__,
    }
    (HERE / "golden.json").write_text(json.dumps(golden, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    sys.exit(main())
