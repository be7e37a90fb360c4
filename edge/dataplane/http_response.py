"""The machine's answer on its way to the client: the ``ResponseSink`` of the HTTP relay.

``UpstreamConnection`` calls these as a response arrives: the head (edited in place,
``http_rewrite.head_for_client``, then the port's ``http_options.response`` if it has one),
body bytes untouched, the end (the machine connection back to the pool, the load slot
released, the next request). A fly-replay answer turns aside here, before the client
sees anything (``http_replay.ReplaySide``). Part of ``HttpProxyProtocol``, split out to
keep modules small.
"""

from __future__ import annotations

from typing import Final

from edge.dataplane.http_client_side import INF
from edge.dataplane.http_head import ResponseHeadScan
from edge.dataplane.http_heads_extra import apply_policy
from edge.dataplane.http_replay import ReplaySide
from edge.dataplane.http_rewrite import head_for_client
from edge.dataplane.upstream_conn import UpstreamConnection

_LARGE_WRITE: Final = 16 * 1024  # above this a head and a body go out via writelines


class ResponseSide(ReplaySide):
    """Responses from the machine to the client (see the module docstring)."""

    # Kept by HttpProxyProtocol for the request in flight.
    _chosen_at: float
    _close_after: bool

    def response_interim(self, head: bytes) -> None:
        if not self._http10 and self.transport is not None:
            self._back += len(head)
            self.transport.write(head)

    def response_head(
        self, status: int, head: bytes, resp: ResponseHeadScan, until_close: bool, body: bytes
    ) -> None:
        up = self._upstream
        assert up is not None and self.transport is not None
        self._router.responded(up, status, self._clock() - self._chosen_at)
        if (b"eplay" in head or b"EPLAY" in head) and self._intercept(up, status, head, body):
            return  # a fly-replay answer (see http_replay): the client never sees it
        self.deadline = INF
        self._resp_started = True
        listener = self._l
        tails = self._tails
        upgrade = status == 101 and self._upgrade
        if upgrade:
            tail = tails.upgrade
        elif until_close or not self._keep_alive or self._upgrade or listener.tracker.draining:
            self._close_after = True
            tail = tails.close
        else:
            tail = tails.http10 if self._http10 else tails.keep
        plain = tail is tails.keep
        out = head_for_client(head, resp, upgrade, listener.ulids.next(), tail, plain)
        if up.policy.edits_response:
            out = apply_policy(out, up.policy)
        self._back += len(out) + len(body)
        if not body:
            self.transport.write(out)
        elif len(body) < _LARGE_WRITE:
            self.transport.write(out + body)
        else:
            self.transport.writelines((out, body))
        if upgrade:
            self._start_tunnel()

    def response_body(self, data: bytes) -> None:
        if self._signal is not None:
            self._signal_data(data)
        elif self.transport is not None:
            self._back += len(data)
            self.transport.write(data)

    def response_end(self, conn: UpstreamConnection, reusable: bool) -> None:
        if self._signal is not None:
            self._signal_end(conn, reusable)
            return
        self._conn = None
        if reusable and self._req_done:
            self._l.pool.put(conn)
        else:
            conn.close()
        up = self._upstream
        if up is not None:  # _release, inlined: this runs for every request
            self._upstream = None
            self._router.transferred(up, self._sent, self._back)
            self._router.release(up)
        self._next_request(self._close_after or not self._req_done)

    def _start_tunnel(self) -> None:
        """After a 101: raw bytes both ways (HttpProxyProtocol)."""
        raise NotImplementedError
