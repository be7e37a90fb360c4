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

from edge.core.phases import Phase
from edge.core.relay_decisions import DeadlineKind, Ending, response_ending
from edge.dataplane.deadlines import INF
from edge.dataplane.http_head import ResponseHeadScan
from edge.dataplane.http_heads_extra import apply_policy
from edge.dataplane.http_replay import ReplaySide
from edge.dataplane.http_rewrite import head_for_client
from edge.dataplane.upstream_conn import UpstreamConnection

_LARGE_WRITE: Final = 16 * 1024  # above this a head and a body go out via writelines


class ResponseSide(ReplaySide):
    """Responses from the machine to the client (see the module docstring)."""

    def response_interim(self, head: bytes) -> None:
        if not self._ex.http10 and self.transport is not None:
            self._ex.back += len(head)
            self.transport.write(head)

    def response_head(
        self, status: int, head: bytes, resp: ResponseHeadScan, until_close: bool, body: bytes
    ) -> None:
        lease = self._tries.lease
        assert lease is not None and self.transport is not None
        up = lease.upstream
        ex = self._ex
        self._router.responded(up, status, self._clock() - ex.chosen_at)
        if (b"eplay" in head or b"EPLAY" in head) and self._intercept(up, status, head, body):
            ex.advance(Phase.REPLAYING)  # see http_replay: the client never sees this answer
            return
        self._set_deadline(INF, DeadlineKind.NONE)
        ex.resp_started = True
        listener = self._l
        tails = self._tails
        ending = response_ending(
            status=status,
            upgrade_asked=ex.upgrade,
            until_close=until_close,
            keep_alive=ex.keep_alive,
            http10=ex.http10,
            draining=listener.tracker.draining,
        )
        if ending is Ending.KEEP_ALIVE:
            tail = tails.keep
        elif ending is Ending.CLOSE:
            ex.close_after = True
            tail = tails.close
        elif ending is Ending.UPGRADE:
            tail = tails.upgrade
        else:
            tail = tails.http10
        upgrade = ending is Ending.UPGRADE
        out = head_for_client(
            head, resp, upgrade, listener.ulids.next(), tail, ending is Ending.KEEP_ALIVE
        )
        if up.policy.edits_response:
            out = apply_policy(out, up.policy)
        ex.back += len(out) + len(body)
        if not body:
            self.transport.write(out)
        elif len(body) < _LARGE_WRITE:
            self.transport.write(out + body)
        else:
            self.transport.writelines((out, body))
        if upgrade:
            self._start_tunnel()
        else:
            ex.advance(Phase.STREAMING)

    def response_body(self, data: bytes) -> None:
        if self._ex.signal is not None:
            self._signal_data(data)
        elif self.transport is not None:
            self._ex.back += len(data)
            self.transport.write(data)

    def response_end(self, conn: UpstreamConnection, reusable: bool) -> None:
        if self._ex.signal is not None:
            self._signal_end(conn, reusable)
            return
        self._conn = None
        if reusable and self._ex.req_done:
            self._l.pool.put(conn)
        else:
            conn.close()
        ex = self._ex
        self._tries.release(ex.sent, ex.back)
        self._next_request(ex.close_after or not ex.req_done)

    def _start_tunnel(self) -> None:
        """After a 101: raw bytes both ways (HttpProxyProtocol)."""
        raise NotImplementedError
