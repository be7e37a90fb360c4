"""The log lines and error counts of answers the edge makes itself (and raw refusals).

Every ``EdgeAnswer`` a relay reports is counted in ``edge_proxy_errors_total`` by app,
status and the platform's error code, and logged as one line naming the code and the
request id. A client can provoke these answers at will, so lines of one kind (status,
code) are limited per second (``edge.core.log_budget``); the counter sees every one.
"""

from __future__ import annotations

import logging
import time
from typing import Final

from edge.core.log_budget import Budget, admit
from edge.dataplane.contract import ClientInfo, EdgeAnswer
from edge.runtime.recorder import Recorder

LOG = logging.getLogger("edge.answers")
LINES_PER_WINDOW: Final = 20  # per kind of answer
WINDOW: Final = 1.0  # seconds


class AnswerLog:
    """Shared by every listener router of a daemon (one budget per kind of line)."""

    def __init__(self) -> None:
        self._budgets: dict[tuple[int, str], Budget] = {}

    def record(
        self,
        recorder: Recorder,
        client: ClientInfo,
        answer: EdgeAnswer,
        app: str,
        pop: str,
        port: int,
    ) -> None:
        code = answer.code.value if answer.code is not None else "none"
        status = str(answer.status) if answer.status else "tcp"
        recorder.proxy_error(app, status, code)
        key = (answer.status, code)
        budget, dropped = admit(self._budgets.get(key, Budget()), time.monotonic(), *_LIMITS)
        self._budgets[key] = budget
        if dropped is None:
            return
        what = f"answered {answer.status}" if answer.status else "closed the connection"
        more = f" ({dropped} similar lines left out)" if dropped else ""
        fields = {
            "app": app, "pop": pop, "port": port, "status": answer.status or None,
            "code": answer.code.value if answer.code is not None else None,
            "client": client.peer_ip, "request_id": answer.request_id or None,
        }  # fmt: skip
        level = logging.INFO if 400 <= answer.status < 500 else logging.WARNING
        LOG.log(
            level,
            "edge %s [%s]: %s%s",
            *(what, code if answer.code is not None else "no code", answer.reason, more),
            extra={k: v for k, v in fields.items() if v is not None},
        )


_LIMITS: Final = (LINES_PER_WINDOW, WINDOW)
