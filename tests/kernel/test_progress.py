from __future__ import annotations

import io

import pytest

from qcore import progress


def test_quiet_off_terminal(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("QCORE_PROGRESS", raising=False)
    assert list(progress.progress(range(3), "epochs")) == [0, 1, 2]
    assert capsys.readouterr().err == ""


def test_forced_bar_draws_on_stderr(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    monkeypatch.setenv("QCORE_PROGRESS", "1")
    monkeypatch.setattr("sys.stderr", stream)
    assert list(progress.progress(range(4), "backtest days")) == [0, 1, 2, 3]
    assert "backtest days" in stream.getvalue()
    monkeypatch.setenv("QCORE_PROGRESS", "0")
    assert not progress.enabled()
