"""Tokens (missing, wrong, reloaded), TLS with a certificate made at test time, ``qcore serve --check`` and the
refusals of ``qcore serve`` before it starts; no write path."""

from __future__ import annotations

import secrets
import shutil
import subprocess
from pathlib import Path

import pyarrow as pa
import pyarrow.flight as fl
import pytest
from click.testing import CliRunner
from qflight.auth import TokenFile, parse_tokens
from qflight.client import FlightProvider

from qcore.cli import cli
from qcore.errors import DataError

from .conftest import STORE, Served, start_server, stop_server, write_token


def test_missing_and_wrong_tokens_are_unauthenticated(served: Served, tmp_path: Path) -> None:
    client = fl.connect(served.uri)
    calendar = fl.Ticket(b'{"kind":"calendar"}')
    with pytest.raises(fl.FlightUnauthenticatedError, match="no token"):
        client.do_get(calendar).read_all()
    wrong = fl.FlightCallOptions(headers=[(b"authorization", b"Bearer " + secrets.token_hex(16).encode())])
    with pytest.raises(fl.FlightUnauthenticatedError, match="invalid token"):
        client.do_get(calendar, wrong).read_all()
    with pytest.raises(fl.FlightUnauthenticatedError, match="not 'Bearer <token>'"):
        client.do_get(calendar, fl.FlightCallOptions(headers=[(b"authorization", b"Basic abc")])).read_all()
    with pytest.raises(fl.FlightUnauthenticatedError):
        list(client.do_action(fl.Action("info", b"")))
    with pytest.raises(DataError, match=r"refused the call .*no token given"):
        FlightProvider(served.uri, cache=False)
    stranger = write_token(tmp_path / "stranger", f"eve:{secrets.token_hex(16)}\n")
    with pytest.raises(DataError, match=r"refused the call .*invalid token"):
        FlightProvider(served.uri, token_file=stranger, cache=False)
    assert FlightProvider(served.uri, token_file=served.bob, cache=False).info()["user"] == "bob"


def test_token_file_is_reloaded_when_it_changes(served: Served, tmp_path: Path) -> None:
    original = served.tokens.read_text()
    carol_token = secrets.token_hex(16)
    carol = write_token(tmp_path / "carol", f"carol:{carol_token}\n")
    try:
        served.tokens.write_text(original + f"carol:{carol_token}\n")
        assert FlightProvider(served.uri, token_file=carol, cache=False).info()["user"] == "carol"
        served.tokens.write_text("not a token line with spaces\n")  # malformed: the last good tokens stay
        assert FlightProvider(served.uri, token_file=carol, cache=False).info()["user"] == "carol"
    finally:
        served.tokens.write_text(original)
    with pytest.raises(DataError, match="invalid token"):
        FlightProvider(served.uri, token_file=carol, cache=False)
    assert FlightProvider(served.uri, token_file=served.alice, cache=False).info()["user"] == "alice"


def test_token_file_format(tmp_path: Path) -> None:
    tokens = parse_tokens("# c\n\nann:" + "a" * 16 + "\n" + "b" * 20 + "\n", "f")
    assert tokens == {"a" * 16: "ann", "b" * 20: "token-4"}
    with pytest.raises(DataError, match="f:1: a token is 16 or more"):
        parse_tokens("ann:short\n", "f")
    with pytest.raises(DataError, match="twice"):
        parse_tokens("a:" + "x" * 16 + "\nb:" + "x" * 16, "f")
    with pytest.raises(DataError, match="no token"):
        parse_tokens("# only comments\n", "f")
    with pytest.raises(DataError, match="cannot read the token file"):
        TokenFile(tmp_path / "absent")


def _self_signed(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1/localhost, made now (cryptography if installed, else openssl)."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    try:
        import datetime as dt
        import ipaddress

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
    except ImportError:
        if shutil.which("openssl") is None:
            pytest.skip("neither the cryptography package nor the openssl command is available to make a certificate")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                        "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=localhost",
                        "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"], check=True,
                       capture_output=True)  # fmt: skip
        return cert, key
    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(private.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
                   .not_valid_after(now + dt.timedelta(days=2))
                   .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                               x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                                  critical=False)
                   .sign(private, hashes.SHA256()))  # fmt: skip
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))  # fmt: skip
    return cert, key


def test_tls_with_a_self_signed_certificate(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    token = write_token(tmp_path / "tokens", f"ann:{secrets.token_hex(16)}\n")
    process, uri = start_server("--store", str(STORE), "--token-file", str(token), "--tls-cert", str(cert),
                                "--tls-key", str(key))  # fmt: skip
    try:
        assert uri.startswith("grpc+tls://127.0.0.1:")
        remote = FlightProvider(uri, token_file=token, tls_root_cert=cert, cache=False)
        assert remote.info()["user"] == "ann"
        assert len(remote.calendar()) == 320
        plain = fl.connect(uri.replace("grpc+tls://", "grpc://"))  # a client that does not speak TLS gets nowhere
        with pytest.raises((fl.FlightError, pa.ArrowException)):
            list(plain.do_action(fl.Action("info", b""), fl.FlightCallOptions(timeout=5)))
        with pytest.raises(DataError, match="data server"):  # a certificate it does not trust
            FlightProvider(uri, token_file=token, cache=False, timeout=5)
    finally:
        assert stop_server(process) == 0


def test_serve_check(served: Served, tmp_path: Path) -> None:
    runner = CliRunner()
    ok = runner.invoke(cli, ["serve", "--check", "--uri", served.uri, "--token-file", str(served.alice)])
    assert ok.exit_code == 0, ok.output
    assert ok.output.startswith(f"ok: {served.uri} serves golden_market") and "to user alice" in ok.output
    bad = write_token(tmp_path / "bad", f"{secrets.token_hex(16)}\n")
    refused = runner.invoke(cli, ["serve", "--check", "--uri", served.uri, "--token-file", str(bad)])
    assert refused.exit_code not in (0, 70)
    assert "refused the call" in refused.output and len(refused.output.strip().splitlines()) == 1
    down = runner.invoke(cli, ["serve", "--check", "--uri", "grpc://127.0.0.1:1"])
    assert down.exit_code not in (0, 70) and "unavailable" in down.output


@pytest.mark.parametrize(("args", "message"), [
    (["--store", str(STORE), "--host", "0.0.0.0"], "needs --token-file"),
    (["--store", str(STORE), "--tls-cert", "c.pem"], "both --tls-cert and --tls-key"),
    (["--host", "127.0.0.1"], "give the store to serve"),
    (["--check"], "--check needs --uri"),
])  # fmt: skip
def test_serve_refuses_bad_arguments_before_starting(args: list[str], message: str) -> None:
    result = CliRunner().invoke(cli, ["serve", *args])
    assert result.exit_code not in (0, 70)
    assert message in result.output


def test_there_is_no_write_path(served: Served) -> None:
    client = fl.connect(served.uri)
    options = fl.FlightCallOptions(headers=[(b"authorization", b"Bearer " + served.alice.read_text().split(":")[1]
                                             .strip().encode())])  # fmt: skip
    table = pa.table({"x": [1.0]})
    with pytest.raises(fl.FlightServerError, match="read-only"):
        writer, _ = client.do_put(fl.FlightDescriptor.for_path("calendars"), table.schema, options)
        writer.write_table(table)
        writer.close()
    with pytest.raises(fl.FlightServerError, match="read-only"):
        writer, reader = client.do_exchange(fl.FlightDescriptor.for_path("x"), options)
        writer.begin(table.schema)
        writer.write_table(table)
        writer.done_writing()
        reader.read_all()
    names = {action.type for action in client.list_actions(options)}
    assert names == {"info", "stats"}
    listed = [info.descriptor.command for info in client.list_flights(options=options)]
    assert b'{"freq":"day","kind":"calendar"}' in listed and b'{"kind":"instruments","market":"csi_like"}' in listed
