"""Rewriting HTTP/1.1 heads in place for the L7 relay (what they say: ``http_head``).

The relay forwards heads *as received* and edits them in place: hop-by-hop and spoofable
lines are cut out (found by the exact header-name bytes the parser reported, so nothing
is re-serialised), the edge's own lines are appended before the blank line. A head with
no such line costs one slice and one concatenation.
"""

from __future__ import annotations

from edge.core.request_rules import Retarget
from edge.dataplane.http_head import RequestHeadScan, ResponseHeadScan


def cut_headers(head: bytes, names: list[bytes]) -> bytes:
    """``head`` without one line per name (exact bytes as parsed, so no case folding)."""
    for name in names:
        start = head.find(b"\r\n" + name + b":")
        if start >= 0:
            end = head.find(b"\r\n", start + 2)
            head = head[:start] + head[end:]
    return head


def cut_named(head: bytes, names: set[bytes]) -> bytes:
    """``head`` without every line whose (case-folded) name is in ``names``; rare path."""
    lines = head.split(b"\r\n")
    kept = [lines[0]]
    kept.extend(line for line in lines[1:] if line.partition(b":")[0].lower() not in names)
    return b"\r\n".join(kept)


class RequestRewriter:
    """What the edge adds to every request of one client connection, built once."""

    __slots__ = (
        "_client_ip",
        "_common",
        "_fly_lines",
        "_pop",
        "_port",
        "_xf_port_line",
        "_xfp_lines",
    )

    def __init__(self, client_ip: str, listener_port: int, tls: bool) -> None:
        ip = client_ip.encode()
        self._client_ip = ip
        self._port = port = str(listener_port).encode()
        proto, ssl = (b"https", b"on") if tls else (b"http", b"off")
        self._xfp_lines = b"X-Forwarded-Proto: %s\r\nX-Forwarded-SSL: %s\r\n" % (proto, ssl)
        self._xf_port_line = b"X-Forwarded-Port: " + port + b"\r\n"
        self._pop = ""
        self._fly_lines = self._common = b""

    def _set_pop(self, pop: str) -> None:
        """Fly-Region is the client's PoP: the same for every request, nearly always."""
        self._pop = pop
        self._fly_lines = b"Fly-Forwarded-Port: %s\r\nFly-Region: %s\r\n" % (
            self._port,
            pop.encode(),
        )
        self._common = self._suffix(None, False) + b"\r\n"

    def _suffix(self, xff: bytes | None, client_set_port: bool) -> bytes:
        chain = self._client_ip if xff is None else xff + b", " + self._client_ip
        return b"".join(
            (
                b"Fly-Client-IP: ",
                self._client_ip,
                b"\r\nX-Forwarded-For: ",
                chain,
                b"\r\n",
                self._xfp_lines,
                b"" if client_set_port else self._xf_port_line,
                self._fly_lines,
            )
        )

    def head_for_machine(
        self, head: bytes, scan: RequestHeadScan, upgrade: bool, http10: bool, pop: str
    ) -> bytes:
        """The request head to send to the machine; ``head`` ends with the blank line."""
        if pop != self._pop:
            self._set_pop(pop)
        if scan.upgrade_name is not None and not upgrade:
            scan.cut.append(scan.upgrade_name)
        if scan.cut:
            head = cut_headers(head, scan.cut)
        if scan.named is not None:
            head = cut_named(head, scan.named)
        if scan.xff is None and not scan.has_xf_port and not (upgrade or http10):
            return head[:-2] + self._common
        suffix = self._suffix(scan.xff, scan.has_xf_port)
        if upgrade:
            suffix += b"Connection: upgrade\r\n"
        elif http10:
            suffix += b"Connection: keep-alive\r\n"  # so the machine connection can be reused
        return b"".join((head[:-2], suffix, b"\r\n"))


def retargeted(head: bytes, to: Retarget) -> bytes:
    """An absolute-form request head in origin form, its Host the target's authority."""
    rest = cut_named(head, {b"host"})[head.find(b"\r\n") :]
    return b"".join((to.line, b"\r\nHost: ", to.host, rest))


def request_target(head: bytes) -> bytes:
    """The request-target of a request head (``/path?query``)."""
    return head[: head.find(b"\r\n")].split(b" ")[1]


def head_for_client(
    head: bytes, scan: ResponseHeadScan, upgrade: bool, request_id: bytes, tail: bytes, plain: bool
) -> bytes:
    """The response head for the client: hop-by-hop lines cut, the edge's lines appended.

    ``upgrade`` keeps the Upgrade line (a 101). ``tail`` completes the ``Fly-Request-Id``
    line after the ULID (``-<pop>``) and holds the other added lines and the blank line.
    ``plain``: the tail adds no Connection line, so the machine's ``Connection:
    keep-alive`` says what the edge means too and stays (cutting it would be the costliest
    part of a plain head).
    """
    if scan.rare or (scan.keep_alive_line is not None and not plain):
        cut = scan.cut
        if scan.upgrade_name is not None and not upgrade:
            cut.append(scan.upgrade_name)
        if scan.keep_alive_line is not None and (cut or not plain):
            cut.append(scan.keep_alive_line)
        if cut:
            head = cut_headers(head, cut)
        if scan.named is not None:
            head = cut_named(head, scan.named)
    return b"".join((head[:-2], b"Fly-Request-Id: ", request_id, tail))
