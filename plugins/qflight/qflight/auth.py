"""Bearer tokens: the server's token file (reloaded when it changes), the middleware that checks every call, and
the client's token.

A token file holds one token a line, ``user:token`` or a plain ``token`` (its user is then ``token-<line>``);
blank lines and ``#`` comments are skipped. A client sends ``authorization: Bearer <token>`` on every call; a call
without it, or with a token the file does not hold, fails with Flight's unauthenticated error before it runs.
"""

from __future__ import annotations

import hmac
import logging
import os
import stat
import threading
from pathlib import Path

import pyarrow.flight as fl

from qcore.errors import DataError

logger = logging.getLogger("qflight.server")

#: The shortest token accepted in a token file (a guessable token is refused when the file is read).
MIN_TOKEN_LENGTH = 16


def parse_tokens(text: str, source: str) -> dict[str, str]:
    """Token → user of a token file's ``text``; a malformed line is a :class:`DataError` naming its line."""
    tokens: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, token = line.partition(":")
        if not sep:
            user, token = f"token-{number}", line
        user, token = user.strip(), token.strip()
        if not user or len(token) < MIN_TOKEN_LENGTH or any(c.isspace() for c in token):
            raise DataError(f"a token is {MIN_TOKEN_LENGTH} or more characters without spaces, as 'user:token' "
                            "or 'token'", path=source, row=number)  # fmt: skip
        if token in tokens:
            raise DataError(f"the same token is listed twice (users {tokens[token]!r} and {user!r})", path=source,
                            row=number)  # fmt: skip
        tokens[token] = user
    if not tokens:
        raise DataError("the token file lists no token", path=source)
    return tokens


class TokenFile:
    """The server's tokens, read from ``path`` and read again whenever the file changes (size, time or inode).

    A file that becomes unreadable or malformed keeps the last good tokens and logs why.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path).expanduser()
        self._lock = threading.Lock()
        self._key: tuple[int, int, int] | None = None
        self._tokens = self._read()  # the first read must succeed: a server does not start without tokens
        mode = self.path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            logger.warning("token file %s is readable by other users; chmod 600 it", self.path)

    def _stat_key(self) -> tuple[int, int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def _read(self) -> dict[str, str]:
        key = self._stat_key()
        try:
            text = self.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(f"cannot read the token file: {getattr(exc, 'strerror', None) or exc}",
                            path=str(self.path)) from None  # fmt: skip
        tokens = parse_tokens(text, str(self.path))
        self._key = key
        return tokens

    def user(self, token: str) -> str | None:
        """The user ``token`` belongs to, or None; compared in constant time against every token."""
        with self._lock:
            if self._stat_key() != self._key:
                try:
                    self._tokens = self._read()
                    logger.info("token file %s reloaded: %d token(s)", self.path, len(self._tokens))
                except DataError as exc:
                    self._key = self._stat_key()
                    logger.error("token file not reloaded, the previous tokens stay in force: %s", exc)
            tokens = self._tokens
        found = None
        for known, user in tokens.items():
            if hmac.compare_digest(known.encode(), token.encode()):
                found = user
        return found


class BearerMiddleware(fl.ServerMiddleware):
    """Carries the authenticated user of one call (``context.get_middleware("auth").user``)."""

    def __init__(self, user: str) -> None:
        self.user = user


class BearerAuthFactory(fl.ServerMiddlewareFactory):
    """Refuses every call without a valid ``authorization: Bearer <token>`` header."""

    def __init__(self, tokens: TokenFile) -> None:
        self.tokens = tokens

    def start_call(self, info: fl.CallInfo, headers: dict[str, list[str]]) -> BearerMiddleware:
        values = headers.get("authorization") or headers.get("Authorization") or []
        if not values:
            raise fl.FlightUnauthenticatedError("no token: send 'authorization: Bearer <token>' (the client "
                                                "provider's token_file)")  # fmt: skip
        scheme, _, token = str(values[0]).partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise fl.FlightUnauthenticatedError("the authorization header is not 'Bearer <token>'")
        user = self.tokens.user(token.strip())
        if user is None:
            logger.warning("rejected a call (%s) with an unknown token", info.method)
            raise fl.FlightUnauthenticatedError("invalid token")
        return BearerMiddleware(user)


def read_client_token(path: str | os.PathLike[str]) -> str:
    """The token a client sends: the first token line of ``path`` (``user:token`` or ``token``)."""
    source = Path(path).expanduser()
    try:
        text = source.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read the token file: {getattr(exc, 'strerror', None) or exc}",
                        path=str(source)) from None  # fmt: skip
    tokens = parse_tokens(text, str(source))
    return next(iter(tokens))
