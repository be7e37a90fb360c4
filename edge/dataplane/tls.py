"""TLS termination: certificates per server name, and the server SSLContext that picks them.

``CertificateStore`` answers "which certificate for this name?": a configured cert/key pair
when one matches (exact or wildcard), else a self-signed one it generates the first time a
name is asked for and keeps under ``state_dir/tls/`` for the next run (at most
``max_generated`` of them). ``server_ssl_context`` builds the listener's context; its SNI
callback swaps in the context for the client's server name when the edge serves that name
(``serves_name``), keeps the listener's default certificate for any other name, and refuses
a name with an ``unrecognized_name`` alert when ``accept_name`` says no (shared addresses:
an SNI that no app owns). So a client choosing random names never makes the edge write.
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import ipaddress
import logging
import os
import re
import ssl
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from edge.dataplane.contract import ClientInfo

_VALIDITY: Final = datetime.timedelta(days=365)
_RENEW_BEFORE: Final = datetime.timedelta(days=7)
_LABEL: Final = r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?"
_HOSTNAME: Final = re.compile(rf"^(\*\.)?({_LABEL}\.)*{_LABEL}$")
_CONTEXT_CACHE_SIZE: Final = 1024
MAX_GENERATED: Final = 1000  # self-signed certificates kept in state_dir/tls
_STEM_MAX: Final = 64  # longer names get a hashed file name (NAME_MAX is 255 bytes)
_CAP_LOG_INTERVAL: Final = 60.0

LOG = logging.getLogger("edge.tls")


class CertificateLimit(Exception):
    """The store holds ``max_generated`` self-signed certificates: no new one is made."""


@dataclass(frozen=True, slots=True)
class CertPair:
    cert: Path
    key: Path


def normalize_name(name: str) -> str | None:
    """A server name or IP address in canonical form, or None when it is neither."""
    name = name.strip().rstrip(".").lower()
    try:
        return str(ipaddress.ip_address(name))
    except ValueError:
        pass
    if len(name) > 253 or not _HOSTNAME.match(name):
        return None
    return name


def _wildcard_of(name: str) -> str | None:
    head, dot, rest = name.partition(".")
    return f"*.{rest}" if dot and head != "*" and "." in rest else None


def _san(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


class CertificateStore:
    """Configured certificates by name, and self-signed ones made on demand (kept on disk)."""

    def __init__(
        self,
        state_dir: Path,
        configured: Mapping[str, CertPair] | None = None,
        max_generated: int = MAX_GENERATED,
    ) -> None:
        self._dir = Path(state_dir) / "tls"
        self._configured: dict[str, CertPair] = {}
        self._max_generated = max_generated
        self._generated: int | None = None  # counted on first need
        for name, pair in (configured or {}).items():
            self.add(name, pair)

    @property
    def directory(self) -> Path:
        return self._dir

    def add(self, name: str, pair: CertPair) -> None:
        """Use ``pair`` for ``name`` (``*.example.com`` covers one label below it)."""
        canonical = normalize_name(name)
        if canonical is None:
            raise ValueError(f"not a server name or IP address: {name!r}")
        self._configured[canonical] = pair

    def pair_for(self, names: Iterable[str]) -> CertPair:
        """The certificate for ``names`` (the first decides a configured match)."""
        wanted = [n for n in (normalize_name(x) for x in names) if n is not None]
        if not wanted:
            raise ValueError("no valid server name or IP address given")
        configured = self.configured_pair(wanted[0])
        if configured is not None:
            return configured
        return self._self_signed(list(dict.fromkeys(wanted)))  # no repeats, order kept

    def configured_pair(self, name: str) -> CertPair | None:
        """The configured pair covering the canonical ``name`` (exact, then wildcard)."""
        wildcard = _wildcard_of(name)
        return self._configured.get(name) or (self._configured.get(wildcard) if wildcard else None)

    def _self_signed(self, names: list[str]) -> CertPair:
        stem = _file_stem(names)
        pair = CertPair(self._dir / f"{stem}.crt", self._dir / f"{stem}.key")
        if not _usable(pair, names):
            is_new = not pair.cert.exists()
            if is_new and self._count_generated() >= self._max_generated:
                raise CertificateLimit(
                    f"{self._max_generated} self-signed certificates are stored in {self._dir}"
                )
            self._ensure_dir()
            cert_pem, key_pem = generate_self_signed(names)
            _write_private(pair.key, key_pem)
            _write_private(pair.cert, cert_pem)
            if is_new and self._generated is not None:
                self._generated += 1
        return pair

    def _count_generated(self) -> int:
        if self._generated is None:
            try:
                self._generated = sum(1 for _ in self._dir.glob("*.crt"))
            except OSError:
                self._generated = 0
        return self._generated

    def _ensure_dir(self) -> None:
        self._dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self._dir, 0o700)  # mkdir's mode is masked by umask, and may pre-exist


def _file_stem(names: list[str]) -> str:
    """A file name for a name set: readable for short names, hashed beyond ``_STEM_MAX``."""
    stem = names[0].replace("*", "_wildcard").replace(":", "_")
    digest = hashlib.sha256(",".join(names).encode()).hexdigest()
    if len(stem) > _STEM_MAX:
        return f"{stem[:40]}-{digest[:20]}"
    if len(names) > 1:
        # Different name sets for the same first name must not share files.
        stem += "-" + digest[:12]
    return stem


def _usable(pair: CertPair, names: list[str]) -> bool:
    """The files exist, parse, belong together, cover ``names`` and are not about to expire."""
    try:
        cert = x509.load_pem_x509_certificate(pair.cert.read_bytes())
        key = serialization.load_pem_private_key(pair.key.read_bytes(), password=None)
    except (OSError, ValueError, TypeError):
        return False
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(*spki) != cert.public_key().public_bytes(*spki):
        return False  # e.g. a crash between writing the key and the certificate
    now = datetime.datetime.now(datetime.UTC)
    if cert.not_valid_after_utc - now < _RENEW_BEFORE:
        return False
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    return set(map(_san, names)) <= set(san)


def generate_self_signed(names: list[str]) -> tuple[bytes, bytes]:
    """(certificate PEM, PKCS#8 key PEM): EC P-256, SAN = ``names``, valid for a year."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0][:64])])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))  # tolerate clock skew
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.SubjectAlternativeName([_san(n) for n in names]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def _write_private(path: Path, data: bytes) -> None:
    """Write ``data`` readable by the owner only, replacing ``path`` atomically."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
    os.replace(tmp, path)


class EdgeSSLObject(ssl.SSLObject):
    """An SSLObject that remembers the client's SNI and delivers the alert of a failed handshake.

    A server-side SSLObject has no ``server_hostname``, so the SNI callback records the
    name here for ``client_info_from_transport``. And when a handshake fails (a refused
    name, a TLS 1.0 client, no shared cipher), OpenSSL queues the alert that says why
    (``unrecognized_name``, ``protocol_version``, ...), but asyncio's and uvloop's TLS
    protocols drop queued output when the handshake fails, so the client saw a bare EOF.
    Reporting "want read" once instead makes them flush the alert first; the client then
    hangs up, which ends the handshake (the next call raises the real error if it sends
    anything else). The error is logged once, as one line.
    """

    sni: str | None = None
    refused: bool = False
    _alert_flushed: bool = False

    def do_handshake(self) -> None:
        try:
            super().do_handshake()
        except ssl.SSLWantReadError:
            raise
        except ssl.SSLError as exc:
            if self._alert_flushed:
                raise
            self._alert_flushed = True
            _HANDSHAKE_LOG.info("tls handshake failed", describe_handshake_error(exc))
            raise ssl.SSLWantReadError("handshake failed; alert queued") from None


class _ThrottledLog:
    """One line per event, at most ``per_second`` a second (then a count of the rest), so
    that a client failing handshakes in a loop cannot flood the log."""

    def __init__(self, per_second: int) -> None:
        self._per_second = per_second
        self._window = 0.0
        self._count = 0
        self._dropped = 0

    def info(self, message: str, reason: str) -> None:
        now = time.monotonic()
        if now - self._window >= 1.0:
            if self._dropped:
                LOG.info(f"{message}: {self._dropped} more in the last second (not shown)")
            self._window, self._count, self._dropped = now, 0, 0
        self._count += 1
        if self._count <= self._per_second:
            LOG.info(message, extra={"reason": reason})
        else:
            self._dropped += 1


_HANDSHAKE_LOG = _ThrottledLog(per_second=10)


def describe_handshake_error(exc: ssl.SSLError) -> str:
    """``unsupported protocol``, not ``[SSL: UNSUPPORTED_PROTOCOL] unsupported protocol (...)``."""
    reason = exc.reason or exc.strerror or str(exc)
    return str(reason).lower().replace("_", " ")


def _base_context(pair: CertPair, alpn: list[str]) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.sslobject_class = EdgeSSLObject
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(pair.cert, pair.key)
    if alpn:
        ctx.set_alpn_protocols(alpn)
    return ctx


class _SniSelector:
    """The SNI callback's state: which names are refused, which get their own certificate,
    and a bounded cache of contexts per name. It never raises: OpenSSL would turn that
    into a failed handshake and Python into an "Exception ignored" traceback."""

    def __init__(
        self,
        store: CertificateStore,
        alpn: list[str],
        accept_name: Callable[[str], bool] | None,
        serves_name: Callable[[str], bool],
    ) -> None:
        self._store = store
        self._alpn = alpn
        self._accept = accept_name
        self._serves = serves_name
        self._contexts: OrderedDict[str, ssl.SSLContext] = OrderedDict()
        self._cap_logged_at = -_CAP_LOG_INTERVAL

    def __call__(
        self, sslobj: ssl.SSLObject, server_name: str | None, _ctx: ssl.SSLContext
    ) -> int | None:
        try:
            return self._select(sslobj, server_name)
        except Exception:  # a bug here must not become an "Exception ignored" traceback
            LOG.exception("tls: choosing a certificate failed; the default one is used")
            return None

    def _select(self, sslobj: ssl.SSLObject, server_name: str | None) -> int | None:
        if server_name is None:
            return None  # no SNI: the listener's default certificate
        name = normalize_name(server_name)
        refuse = self._accept is not None and (name is None or not self._accept(name))
        if isinstance(sslobj, EdgeSSLObject):
            sslobj.sni = name
            sslobj.refused = refuse
        if refuse:
            return ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME
        if name is not None:
            ctx = self._context_for(name)
            if ctx is not None:
                sslobj.context = ctx
        return None  # else: the listener's default certificate

    def _context_for(self, name: str) -> ssl.SSLContext | None:
        ctx = self._contexts.get(name)
        if ctx is not None:
            self._contexts.move_to_end(name)
            return ctx
        configured = self._store.configured_pair(name)
        if configured is None and not self._serves(name):
            return None  # a name the edge does not serve: nothing is made for it
        try:
            ctx = _base_context(configured or self._store.pair_for([name]), self._alpn)
        except CertificateLimit as exc:
            self._log_cap(name, str(exc))
            return None
        except (OSError, ValueError, ssl.SSLError) as exc:
            LOG.warning(
                "tls: cannot make a certificate", extra={"server_name": name, "error": str(exc)}
            )
            return None
        self._contexts[name] = ctx
        if len(self._contexts) > _CONTEXT_CACHE_SIZE:
            self._contexts.popitem(last=False)
        return ctx

    def _log_cap(self, name: str, why: str) -> None:
        now = time.monotonic()
        if now - self._cap_logged_at >= _CAP_LOG_INTERVAL:  # once a minute at most
            self._cap_logged_at = now
            LOG.warning(
                "tls: certificate limit reached; new names get the default certificate",
                extra={"server_name": name, "limit": why},
            )


def server_ssl_context(
    store: CertificateStore,
    default_names: Iterable[str],
    accept_name: Callable[[str], bool] | None = None,
    alpn: Iterable[str] = ("http/1.1",),
    serves_name: Callable[[str], bool] | None = None,
) -> ssl.SSLContext:
    """A TLS >= 1.2 server context choosing its certificate by SNI.

    Clients without SNI, or naming a server the edge does not serve, get one certificate
    covering ``default_names`` (e.g. the listener's IP address). A name with a configured
    certificate gets it; a name ``serves_name`` accepts (by default: every name
    ``accept_name`` accepts, else none) gets a self-signed one, made once and kept.
    ``accept_name(name)`` returning False makes the handshake fail with an
    ``unrecognized_name`` alert. Generating a certificate for a new name blocks the loop
    for a few milliseconds, once per name and process (then it is on disk and cached).
    """
    protocols = list(alpn)
    defaults = list(default_names)
    ctx = _base_context(store.pair_for(defaults), protocols)
    if serves_name is None:
        serves_name = accept_name if accept_name is not None else lambda _name: False
    ctx.sni_callback = _SniSelector(store, protocols, accept_name, serves_name)
    return ctx


def _address(value: object) -> tuple[str, int]:
    # AF_INET gives (host, port), AF_INET6 (host, port, flowinfo, scope); unix sockets a str.
    if isinstance(value, tuple) and len(value) >= 2:
        return str(value[0]), int(value[1])
    return "", 0


def client_info_from_transport(transport: asyncio.BaseTransport) -> ClientInfo:
    """Who is on the other end of an accepted connection, with TLS and SNI if terminated."""
    peer_ip, peer_port = _address(transport.get_extra_info("peername"))
    local_ip, local_port = _address(transport.get_extra_info("sockname"))
    ssl_object = transport.get_extra_info("ssl_object")
    if ssl_object is None:
        return ClientInfo(peer_ip, peer_port, local_ip, local_port)
    sni = ssl_object.sni if isinstance(ssl_object, EdgeSSLObject) else None
    return ClientInfo(peer_ip, peer_port, local_ip, local_port, tls=True, sni=sni)
