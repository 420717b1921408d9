"""The ``llm`` proposer against a small OpenAI-compatible server on 127.0.0.1 started by the test: good replies are
parsed and grammar-checked, malformed JSON, unsafe text, a slow reply past the timeout and an HTTP 500 are logged as
one clear line each and fall back (or propose nothing), the API key is sent but never logged, and ``qcore mine``
runs to the end through every kind of failure."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from qmine.grammar import Grammar
from qmine.llm import LLMProposer
from qmine.proposers import Scored

from qcore.cli import cli
from qcore.errors import ConfigError
from qcore.kernel import Kernel

KEY = "sk-test-secret-7f3a"
GOOD = ["Mean($volume, 5)/Mean($volume, 20)", "Std($close,10)", "CSRank(Sub($open, $close))"]
UNSAFE = ["__import__('os').system('echo pwned')", "__import__('os')", "$close.__class__", "open('/etc/passwd')",
          "Mean($close, 5)", "Mean($secret, 5)", "Ref($close, -5)", "Mean($close, 5.5)"]  # fmt: skip


def _chat(content: str) -> bytes:
    return json.dumps({"choices": [{"message": {"role": "assistant", "content": content}}]}).encode()


class _Handler(BaseHTTPRequestHandler):
    """Answers by the first path segment: good, fenced, lines, unsafe, malformed, nochoices, slow, 500, cycle."""

    def do_POST(self) -> None:
        server: Any = self.server
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        server.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
        mode = self.path.strip("/").split("/")[0]
        if mode == "cycle":  # good, 500, malformed, slow, unsafe, good...
            mode = ("good", "500", "malformed", "slow", "unsafe")[(len(server.requests) - 1) % 5]
        try:
            if mode == "slow":
                time.sleep(1.5)
            if mode == "500":
                self._send(500, b'{"error": "boom"}')
            elif mode == "malformed":
                self._send(200, b'{"choices": [{"message": {"content": "Mean($close')
            elif mode == "nochoices":
                self._send(200, b'{"error": {"message": "quota"}}')
            elif mode == "unsafe":
                self._send(200, _chat(json.dumps(UNSAFE)))
            elif mode == "fenced":
                self._send(200, _chat("Here you go:\n```json\n" + json.dumps(GOOD) + "\n```"))
            elif mode == "lines":
                self._send(200, _chat("1. " + GOOD[0] + "\n2. " + GOOD[1] + "\n"))
            else:
                self._send(200, _chat(json.dumps(GOOD)))
        except OSError:  # the client gave up (the slow case)
            pass

    def _send(self, code: int, payload: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[Any]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.requests = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def grammar() -> Grammar:
    return Grammar.build(Kernel.load(use_env=False).registry("operator"), ["close", "open", "volume"], [5, 10, 20],
                         names=["Mean", "Std", "Ref", "Div", "Sub", "CSRank"], max_depth=3, max_size=7)  # fmt: skip


def _url(server: Any, mode: str) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/{mode}/v1"


def _proposer(server: Any, grammar: Grammar, mode: str, monkeypatch: pytest.MonkeyPatch, **kw: Any) -> LLMProposer:
    monkeypatch.setenv("QMINE_TEST_KEY", KEY)
    p = LLMProposer(_url(server, mode), "test-model", api_key_env="QMINE_TEST_KEY", timeout=kw.pop("timeout", 5.0),
                    **kw)  # fmt: skip
    p.reset(grammar, 0)
    return p


HISTORY = [Scored("Mean($close,5)", 0.05, 0), Scored("Std($volume,20)", float("nan"), 0)]


@pytest.mark.parametrize("mode", ["good", "fenced", "lines"])
def test_good_reply_is_parsed_checked_and_sent_with_the_key(server: Any, grammar: Grammar, mode: str,
                                                            monkeypatch: pytest.MonkeyPatch,
                                                            caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    p = _proposer(server, grammar, mode, monkeypatch, fallback="none")
    with caplog.at_level(logging.WARNING, logger="qmine.llm"):
        out = p.propose(HISTORY, 3)
    expected = [str(grammar.parse(t)) for t in GOOD][: 2 if mode == "lines" else 3]
    assert out == expected and not p.errors and not caplog.records
    request = server.requests[-1]
    assert request["path"] == f"/{mode}/v1/chat/completions"
    assert request["auth"] == f"Bearer {KEY}"
    assert request["body"]["model"] == "test-model"
    prompt = request["body"]["messages"][1]["content"]
    assert "0.0500  Mean($close,5)" in prompt and "Std($volume,20)" not in prompt  # unusable ones not shown
    assert "Mean(expr, N)" in prompt and "$volume" in prompt and "Propose 3 new" in prompt
    assert KEY not in repr(p)


def test_unsafe_text_is_refused_one_line_each(server: Any, grammar: Grammar, monkeypatch: pytest.MonkeyPatch,
                                              caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    p = _proposer(server, grammar, "unsafe", monkeypatch, fallback="none")
    with caplog.at_level(logging.WARNING, logger="qmine.llm"):
        out = p.propose([], 8)
    assert out == ["Mean($close,5)"]  # the only expression of the grammar
    refused = [r.getMessage() for r in caplog.records]
    assert len(refused) == len(UNSAFE) - 1 and all(m.startswith("LLM proposer: refused ") for m in refused)
    assert "operator __import__ is not in the search's grammar" in refused[1]
    assert "unexpected character '.'" in refused[2]
    assert "unknown field $secret" in refused[4]
    assert "window must be a positive integer" in refused[5] and "window must be a positive integer" in refused[6]


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ("malformed", "the reply is not JSON"),
        ("nochoices", "the reply has no choices[0].message.content"),
        ("500", "answered HTTP 500"),
        ("slow", "did not answer within 0.3 s"),
    ],
)
def test_failures_fall_back_or_propose_nothing(server: Any, grammar: Grammar, mode: str, message: str,
                                               monkeypatch: pytest.MonkeyPatch,
                                               caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="qmine.llm"):
        nothing = _proposer(server, grammar, mode, monkeypatch, fallback="none", timeout=0.3).propose(HISTORY, 4)
        started = time.perf_counter()
        fallback = _proposer(server, grammar, mode, monkeypatch, timeout=0.3).propose(HISTORY, 4)
        elapsed = time.perf_counter() - started
    assert nothing == [] and len(fallback) == 4
    assert all(grammar.check(grammar.parse(t)) is None for t in fallback)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2 and all(message in line for line in lines)
    assert lines[0].endswith("this round proposes nothing")
    assert lines[1].endswith("this round's 4 proposals come from genetic")
    assert elapsed < 1.4  # the timeout, not the server, ended the slow round
    assert all(KEY not in line for line in lines)


def test_unreachable_endpoint_falls_back(grammar: Grammar, caplog: pytest.LogCaptureFixture) -> None:
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    p = LLMProposer(f"http://127.0.0.1:{port}/v1", "m", timeout=2, fallback="random_search")
    p.reset(grammar, 0)
    with caplog.at_level(logging.WARNING, logger="qmine.llm"):
        assert len(p.propose([], 3)) == 3
    assert "cannot reach" in caplog.records[0].getMessage() and "random_search" in caplog.records[0].getMessage()


def test_key_comes_from_env_or_file_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("QMINE_NO_SUCH_KEY", raising=False)
    with pytest.raises(ConfigError, match=r"QMINE_NO_SUCH_KEY .* is not set"):
        LLMProposer("http://127.0.0.1:1/v1", "m", api_key_env="QMINE_NO_SUCH_KEY")
    key_file = tmp_path / "key"
    key_file.write_text(KEY + "\n")
    assert LLMProposer("http://127.0.0.1:1/v1", "m", api_key_file=str(key_file))._key == KEY
    (tmp_path / "empty").write_text("")
    with pytest.raises(ConfigError, match="is empty"):
        LLMProposer("http://127.0.0.1:1/v1", "m", api_key_file=str(tmp_path / "empty"))
    with pytest.raises(ConfigError, match="cannot read api_key_file"):
        LLMProposer("http://127.0.0.1:1/v1", "m", api_key_file=str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="http:// or https://"):
        LLMProposer("file:///etc/passwd", "m")
    with pytest.raises(ConfigError, match="fallback must be one of"):
        LLMProposer("http://127.0.0.1:1/v1", "m", fallback="human")
    with pytest.raises(TypeError):
        LLMProposer("http://127.0.0.1:1/v1", "m", api_key=KEY)  # type: ignore[call-arg]  # never in the config


MINE = """\
data:
  provider: {{name: qlib_bin, kwargs: {{provider_uri: {store}}}}}
  universe: all
  label: Ref($close, -1)/$close - 1
  spans: {{train: [2016-03-01, 2017-03-31], valid: [2017-04-01, 2017-09-30]}}
search:
  proposer: {{name: llm, kwargs: {{url: '{url}', model: m, api_key_env: QMINE_TEST_KEY, timeout: 0.5}}}}
  seed: 0
  population: 6
  generations: 5
  fields: [close, open, volume]
  operators: [Mean, Std, Ref, Div, Sub, CSRank]
  windows: [5, 10, 20]
  max_depth: 3
  max_size: 7
selection: {{keep: 3}}
library: lib.json
"""


def test_qcore_mine_runs_through_every_failure(server: Any, planted_store: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch,
                                               caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    monkeypatch.setenv("QMINE_TEST_KEY", KEY)
    server.requests.clear()
    config = tmp_path / "mine.yaml"
    config.write_text(MINE.format(store=planted_store, url=_url(server, "cycle")))
    with caplog.at_level(logging.WARNING, logger="qmine.llm"):
        result = CliRunner().invoke(cli, ["mine", str(config)])
    assert result.exit_code == 0, result.output
    assert [line.split(":")[0] for line in result.output.splitlines() if line.startswith("generation")] == \
        [f"generation {g}/5" for g in range(1, 6)]  # fmt: skip
    assert len(server.requests) == 5  # one request per generation, whatever happened
    logged = "\n".join(r.getMessage() for r in caplog.records)
    for message in ("answered HTTP 500", "the reply is not JSON", "did not answer within 0.5 s", "refused"):
        assert message in logged
    assert KEY not in logged and KEY not in result.output
    library = json.loads((tmp_path / "lib.json").read_text())
    run = library["runs"][-1]
    assert run["proposer"] == "llm" and run["candidates_evaluated"] >= 20
