"""A proposer that asks an OpenAI-compatible chat endpoint for candidate expressions (``factor_proposer`` ``llm``).

Each round sends one chat request (``POST {url}/chat/completions``; a ``url`` that already ends with
``/chat/completions`` is used as is) describing the grammar — operators with their arity and window, fields,
windows, limits — and the best and the most recent scored candidates with their train fitness, and asks for a JSON
list of new expressions. The reply is text and only text: every expression goes through the search grammar's safe
parser (the kernel's expression parser, never ``eval``) and anything that is not an expression of the grammar's
operators and fields is refused with a logged reason.

Failures never stop the search. An HTTP error, a timeout, a refused connection, a reply that is not the endpoint's
JSON, or a reply with no usable expression is logged (logger ``qmine.llm``) as one clear line, and the round falls
back to ``fallback`` (``genetic``, the default, or ``random_search``) for the whole round; with ``fallback: none``
the round proposes nothing and the search goes on to the next generation. A reply with fewer usable expressions
than asked for is topped up by the fallback (none with ``fallback: none``).

The API key is read from the environment variable ``api_key_env`` or the file ``api_key_file`` — never from the
config itself — and is sent only in the ``Authorization`` header: it is never logged nor put in an error.
"""

from __future__ import annotations

import http.client
import json
import logging
import math
import os
import re
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from qcore.errors import ConfigError
from qmine.grammar import Grammar
from qmine.proposers import GeneticProposer, RandomProposer, Scored

logger = logging.getLogger("qmine.llm")

FALLBACKS = ("genetic", "random_search", "none")
#: Longest reply body read (bytes); a longer one is refused as malformed.
MAX_REPLY = 1 << 20

SYSTEM_PROMPT = (
    "You propose alpha factor expressions for a quantitative research platform. Reply with a JSON list of "
    "expression strings and nothing else. Use only the operators, fields ($name) and integer windows given; "
    "no other text, code or numbers."
)


class ProposerError(Exception):
    """Why one round's request produced no proposals (logged, never raised out of :meth:`LLMProposer.propose`)."""


class LLMProposer:
    """Candidates from an OpenAI-compatible chat endpoint, given the history of scored ones.

    :param url: the endpoint's base URL (``http://host:port/v1``) or its full ``.../chat/completions`` URL.
    :param model: the model name sent in the request.
    :param api_key_env: the environment variable holding the API key.
    :param api_key_file: a file holding the API key (first line); ``~`` expanded.
    :param timeout: seconds to wait for the connection and the reply.
    :param fallback: ``genetic``, ``random_search`` or ``none`` (see the module docstring).
    :param history: at most this many scored candidates shown (half the best, half the most recent).
    :param temperature: sampling temperature sent to the endpoint.
    """

    def __init__(self, url: str, model: str, *, api_key_env: str | None = None, api_key_file: str | None = None,
                 timeout: float = 60.0, fallback: str = "genetic", history: int = 40,
                 temperature: float = 0.7) -> None:  # fmt: skip
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ConfigError(f"url must be an http:// or https:// URL, got {url!r}")
        if not isinstance(model, str) or not model:
            raise ConfigError("model must be a non-empty string")
        if api_key_env is not None and api_key_file is not None:
            raise ConfigError("give api_key_env or api_key_file, not both")
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= 3600:
            raise ConfigError(f"timeout must be a number of seconds in (0, 3600], got {timeout!r}")
        if fallback not in FALLBACKS:
            raise ConfigError(f"fallback must be one of {', '.join(FALLBACKS)}, got {fallback!r}")
        if isinstance(history, bool) or not isinstance(history, int) or history < 0:
            raise ConfigError(f"history must be a non-negative integer, got {history!r}")
        base = url.rstrip("/")
        self.endpoint = base if base.endswith("/chat/completions") else f"{base}/chat/completions"
        self.model = model
        self._key = _read_key(api_key_env, api_key_file)
        self.timeout = float(timeout)
        self.fallback_name = fallback
        self.history = history
        self.temperature = float(temperature)
        self.errors: list[str] = []  # one line per failed round or refused expression, as logged
        self._fallback: GeneticProposer | RandomProposer | None = None

    def __repr__(self) -> str:  # the key stays out of every repr
        return f"LLMProposer(endpoint={self.endpoint!r}, model={self.model!r}, fallback={self.fallback_name!r})"

    def reset(self, grammar: Grammar, seed: int) -> None:
        """Keep the grammar; seed the fallback proposer."""
        self.grammar = grammar
        self.seed = seed
        self._fallback = None
        if self.fallback_name != "none":
            self._fallback = GeneticProposer() if self.fallback_name == "genetic" else RandomProposer()
            self._fallback.reset(grammar, seed)

    def propose(self, history: Sequence[Scored], n: int) -> list[str]:
        """Up to ``n`` grammar-checked expressions from the endpoint, topped up (or replaced, when the request
        fails) by the fallback proposer."""
        try:
            texts = self._parse_reply(self._request(self._messages(history, n)))
        except ProposerError as exc:
            self._log(f"LLM proposer: {exc}; {self._fallback_says(n)}")
            return self._fallback.propose(history, n) if self._fallback is not None else []
        seen = {h.expression for h in history}
        out: list[str] = []
        for text in texts:
            try:
                canonical = str(self.grammar.parse(text))
            except (ValueError, TypeError) as exc:
                self._log(f"LLM proposer: refused {_short(text)}: {_first_line(exc)}")
                continue
            if canonical not in seen:
                seen.add(canonical)
                out.append(canonical)
            if len(out) >= n:
                break
        if not out:
            self._log(f"LLM proposer: the reply held no usable expression; {self._fallback_says(n)}")
        if len(out) < n and self._fallback is not None:
            extra = [t for t in self._fallback.propose(history, n) if t not in seen]
            out += extra[: n - len(out)]
        return out

    # -- the request -----------------------------------------------------------------------------------------

    def _messages(self, history: Sequence[Scored], n: int) -> list[dict[str, str]]:
        g = self.grammar
        ops = ", ".join(f"{s.name}({', '.join(['expr'] * s.arity + (['N'] if s.windowed else []))})"
                        for s in g.signatures.values())  # fmt: skip
        scored = [h for h in history if math.isfinite(h.fitness)]
        half = self.history // 2
        best = sorted(scored, key=lambda h: -h.fitness)[:half]
        recent = [h for h in scored[::-1] if h not in best][: self.history - len(best)]
        shown = "\n".join(f"{h.fitness:.4f}  {h.expression}" for h in [*best, *recent]) or "(none yet)"
        user = (f"Operators: {ops}\nFields: {', '.join('$' + f for f in g.fields)}\n"
                f"Windows N: {', '.join(map(str, g.windows))}\n"
                f"Limits: nesting depth <= {g.max_depth}, at most {g.max_size} fields and calls.\n"
                f"Scored so far (fitness = |mean daily rank IC| on the train span, higher is better):\n{shown}\n"
                f"Propose {n} new, different expressions as a JSON list of strings.")  # fmt: skip
        return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]

    def _request(self, messages: list[dict[str, str]]) -> str:
        body = json.dumps({"model": self.model, "messages": messages, "temperature": self.temperature}).encode()
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        request = urllib.request.Request(self.endpoint, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                raw = response.read(MAX_REPLY + 1)
        except urllib.error.HTTPError as exc:
            raise ProposerError(f"{self.endpoint} answered HTTP {exc.code} {exc.reason}") from None
        except TimeoutError:
            raise ProposerError(f"{self.endpoint} did not answer within {self.timeout:g} s") from None
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, TimeoutError):
                raise ProposerError(f"{self.endpoint} did not answer within {self.timeout:g} s") from None
            raise ProposerError(f"cannot reach {self.endpoint}: {exc.reason}") from None
        except (OSError, http.client.HTTPException) as exc:
            raise ProposerError(f"cannot reach {self.endpoint}: {type(exc).__name__} {exc}") from None
        if len(raw) > MAX_REPLY:
            raise ProposerError(f"the reply is over {MAX_REPLY} bytes")
        try:
            doc = json.loads(raw.decode("utf-8"))
            content = doc["choices"][0]["message"]["content"]
        except (UnicodeDecodeError, ValueError) as exc:
            raise ProposerError(f"the reply is not JSON ({exc})") from None
        except (KeyError, IndexError, TypeError):
            raise ProposerError("the reply has no choices[0].message.content") from None
        if not isinstance(content, str):
            raise ProposerError("the reply's message content is not text")
        return content

    @staticmethod
    def _parse_reply(content: str) -> list[str]:
        """The expression texts of a reply: a JSON list of strings (the first line that opens one, possibly in a
        fenced block, to the last ``]``), else one expression per non-empty line (list markers dropped)."""
        lines = [line.strip() for line in content.splitlines() if not line.strip().startswith("```")]
        opening = next((i for i, line in enumerate(lines) if line.startswith("[")), None)
        if opening is not None:
            text = "\n".join(lines[opening:])
            try:
                items = json.loads(text[: text.rfind("]") + 1])
            except ValueError as exc:
                raise ProposerError(f"the reply's list is not valid JSON ({exc})") from None
            if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
                raise ProposerError("the reply's list holds something other than strings")
            return [i.strip() for i in items if i.strip()]
        stripped = (re.sub(r"^(?:[-*]|\d+[.)])\s+", "", line) for line in lines)
        return [line for line in stripped if line]

    # -- logging ---------------------------------------------------------------------------------------------

    def _fallback_says(self, n: int) -> str:
        if self._fallback is None:
            return "this round proposes nothing"
        return f"this round's {n} proposals come from {self.fallback_name}"

    def _log(self, line: str) -> None:
        self.errors.append(line)
        logger.warning("%s", line)


def _read_key(env: str | None, file: str | None) -> str | None:
    if env is not None:
        if not isinstance(env, str) or not env:
            raise ConfigError("api_key_env must name an environment variable")
        key = os.environ.get(env)
        if not key:
            raise ConfigError(f"the environment variable {env} (api_key_env) is not set")
        return key.strip()
    if file is not None:
        path = Path(str(file)).expanduser()
        try:
            key = path.read_text(encoding="utf-8").splitlines()[0].strip() if path.stat().st_size else ""
        except OSError as exc:
            raise ConfigError(f"cannot read api_key_file {path}: {exc.strerror}") from None
        if not key:
            raise ConfigError(f"api_key_file {path} is empty")
        return key
    return None


def _short(text: str, limit: int = 80) -> str:
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
