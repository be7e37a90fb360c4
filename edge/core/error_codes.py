"""The platform's proxy error codes, as values.

Every answer the edge makes itself names the code the platform would log for the
same situation (its "error codes" page: the second letter is the category). The
table here is the one source: the relays put the code in the body, in the
``Edge-Error-Code`` header and in the log line, the metrics use it as a label, and
``docs/error-codes.md`` is written from it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class ErrorCode(enum.StrEnum):
    # connection to the machine
    PC01 = "PC01"  # connection refused on the machine's port
    PC02 = "PC02"  # connection refused
    PC03 = "PC03"  # connection reset
    PC04 = "PC04"  # connection aborted
    PC05 = "PC05"  # connect timed out
    PC06 = "PC06"  # unidentified I/O error
    PC07 = "PC07"  # connect retries exhausted
    PC08 = "PC08"  # could not set the TCP timeout
    # upstream (the machine's HTTP side)
    PU02 = "PU02"  # the machine closed or failed before a whole answer
    PU04 = "PU04"  # the request could not be built for the machine
    # TLS
    PT04 = "PT04"  # handshake failed
    PT05 = "PT05"  # no certificate for the SNI name
    PT08 = "PT08"  # handshake timeout
    # machines
    PM03 = "PM03"  # waking (starting) the machine timed out
    PM05 = "PM05"  # connecting to the just-started machine failed
    PM08 = "PM08"  # the machine is in a state that cannot be started
    PM11 = "PM11"  # the machine was recently stopped
    # the app's replay instructions
    PA01 = "PA01"  # the request body was over the replay buffer
    PA02 = "PA02"  # more than 10 replays
    PA03 = "PA03"  # invalid fly-replay
    PA04 = "PA04"  # replay target app not found
    PA05 = "PA05"  # replay target app not allowed (another org)
    # routing
    PR01 = "PR01"  # no healthy machines
    PR02 = "PR02"  # machine not found (instance pinned)
    PR03 = "PR03"  # no candidate after retries, with the last cause
    PR04 = "PR04"  # no candidate after retries, no cause
    # limits
    PL01 = "PL01"  # connection concurrency limit
    PL02 = "PL02"  # request concurrency limit


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    code: ErrorCode
    summary: str  # what happened, in a few words
    advice: str  # what the user should do
    # When edge itself gives the code (status and situation); "" for the platform's codes
    # that have no counterpart in edge (listed so the table stays the platform's whole list).
    edge_gives: str = ""


_TABLE: tuple[ErrorInfo, ...] = (
    ErrorInfo(
        ErrorCode.PC01,
        "the machine refused the connection on its port",
        "start the app's server on the service's internal_port",
        edge_gives=(
            "502 (HTTP), or the raw TCP connection is closed: the machine's port refused the "
            "connection and no retry was left"
        ),
    ),
    ErrorInfo(
        ErrorCode.PC02,
        "the machine refused the connection",
        "check that the machine's address is right and its process runs",
    ),
    ErrorInfo(
        ErrorCode.PC03,
        "the machine reset the connection",
        "look at the app's logs: it closed the socket abruptly",
        edge_gives="502 / closed: the machine reset the connection while it was being opened",
    ),
    ErrorInfo(
        ErrorCode.PC04,
        "the connection to the machine was aborted",
        "look at the app's logs and at faults acting on the machine",
        edge_gives="502 / closed: the edge gave up on the connect itself (it is shutting down)",
    ),
    ErrorInfo(
        ErrorCode.PC05,
        "connecting to the machine timed out",
        "check that the machine accepts connections; raise connect_timeout",
        edge_gives="502 / closed: the connect did not finish within the service's connect_timeout",
    ),
    ErrorInfo(
        ErrorCode.PC06,
        "an I/O error on the machine's connection",
        "look at the edge's log line for the errno",
        edge_gives="502 / closed: the connect failed with another error (unreachable address, ...)",
    ),
    ErrorInfo(
        ErrorCode.PC07,
        "every connect attempt failed",
        "check the machines' health and the service's retries",
        edge_gives=(
            "502 / closed: every machine tried (1 + retries) failed to connect; the body names "
            "the last cause"
        ),
    ),
    ErrorInfo(
        ErrorCode.PC08,
        "the TCP timeout could not be set on the socket",
        "report it: the edge could not configure its own socket",
    ),
    ErrorInfo(
        ErrorCode.PU02,
        "the machine closed the connection before a whole answer",
        "look at the app's logs: it crashed or closed mid-response",
        edge_gives="502: the machine closed the connection before its response head",
    ),
    ErrorInfo(
        ErrorCode.PU04,
        "the request could not be built for the machine",
        "check the request's headers and target",
    ),
    ErrorInfo(
        ErrorCode.PT04,
        "the TLS handshake failed",
        "use TLS 1.2 or newer and a name the edge serves",
    ),
    ErrorInfo(
        ErrorCode.PT05,
        "no certificate for the SNI name",
        "connect with an app hostname or an allocated address",
    ),
    ErrorInfo(
        ErrorCode.PT08,
        "the TLS handshake timed out",
        "the client was too slow to finish the handshake",
    ),
    ErrorInfo(
        ErrorCode.PM03,
        "the machine did not start in time",
        "make the app open its port faster, or raise start_timeout",
    ),
    ErrorInfo(
        ErrorCode.PM05,
        "the started machine did not accept the connection",
        "check that the app listens on PORT on its own address",
    ),
    ErrorInfo(
        ErrorCode.PM08,
        "the machine cannot be started in its state",
        "look at `edgectl machines status`: it is failed or being destroyed",
    ),
    ErrorInfo(
        ErrorCode.PM11, "the machine was stopped recently", "retry: another machine will be chosen"
    ),
    ErrorInfo(
        ErrorCode.PA01,
        "the request body was larger than the replay buffer",
        "replay only small requests, or raise http.replay_buffer",
    ),
    ErrorInfo(
        ErrorCode.PA02,
        "the request was replayed more than 10 times",
        "fix the replay loop between the app's machines",
    ),
    ErrorInfo(
        ErrorCode.PA03,
        "the app's fly-replay was not valid",
        "fix the fly-replay header or JSON body the app sends",
    ),
    ErrorInfo(
        ErrorCode.PA04,
        "the replay target app does not exist",
        "name an app of the same org in app=",
    ),
    ErrorInfo(
        ErrorCode.PA05,
        "the replay target app belongs to another org",
        "replay only to apps of the same org",
    ),
    ErrorInfo(
        ErrorCode.PR01,
        "no healthy machine for the app",
        "start a machine, or fix its health checks",
        edge_gives=(
            "503 (HTTP), or the raw TCP connection is closed after no_candidate_wait: no machine "
            "passes its checks, is started and below its hard limit"
        ),
    ),
    ErrorInfo(
        ErrorCode.PR02,
        "the requested machine does not exist",
        "check the instance id in fly-force-instance-id or the replay",
        edge_gives="503 / closed: fly-force-instance-id names no machine of the app",
    ),
    ErrorInfo(
        ErrorCode.PR03,
        "no candidate machine after retries (the last cause is logged)",
        "look at the machines' health and the last cause in the log",
        edge_gives=(
            "503 / closed: a connect failed and no other machine is left to retry on; the body "
            "names the last cause"
        ),
    ),
    ErrorInfo(
        ErrorCode.PR04,
        "no candidate machine after retries",
        "look at the machines' health and capacity",
    ),
    ErrorInfo(
        ErrorCode.PL01,
        "the connection concurrency limit was reached",
        "raise the hard_limit or add machines",
        edge_gives=(
            "the raw TCP connection is closed: every machine stayed at its hard limit for "
            "queue_timeout"
        ),
    ),
    ErrorInfo(
        ErrorCode.PL02,
        "the request concurrency limit was reached",
        "raise the hard_limit or add machines",
        edge_gives="503: every machine stayed at its hard limit for queue_timeout",
    ),
)

ERRORS: dict[ErrorCode, ErrorInfo] = {info.code: info for info in _TABLE}


def describe(code: ErrorCode) -> ErrorInfo:
    return ERRORS[code]


# The contract's names for failed connects (edge.dataplane.contract.connect_failure, and
# "cancelled" from the upstream pool) and the code each one is.
_CONNECT_FAILURES: dict[str, ErrorCode] = {
    "refused": ErrorCode.PC01,
    "reset": ErrorCode.PC03,
    "cancelled": ErrorCode.PC04,
    "timeout": ErrorCode.PC05,
    "unreachable": ErrorCode.PC06,
}


def connect_failure_code(reason: str, attempts: int = 1) -> ErrorCode:
    """The code of a failed connect: its cause after one attempt, PC07 after retries."""
    if attempts > 1:
        return ErrorCode.PC07
    return _CONNECT_FAILURES.get(reason, ErrorCode.PC06)


def no_candidate_code(*, instance_missing: bool, retried: bool) -> ErrorCode:
    """Why no machine can take it: a forced instance that is no machine of the app (PR02),
    nothing left after a failed connect (PR03), or no healthy machine at all (PR01)."""
    if instance_missing:
        return ErrorCode.PR02
    return ErrorCode.PR03 if retried else ErrorCode.PR01


def capacity_code(http: bool) -> ErrorCode:
    """Every machine stayed at its hard limit: requests (PL02) or connections (PL01)."""
    return ErrorCode.PL02 if http else ErrorCode.PL01


@dataclass(frozen=True, slots=True)
class UncodedAnswer:
    """An answer of the edge for which the platform has no error code (so none is sent)."""

    status: int
    edge_gives: str
    advice: str


UNCODED: tuple[UncodedAnswer, ...] = (
    UncodedAnswer(400, "the request (head or body) is not valid HTTP/1.1", "fix the client"),
    UncodedAnswer(
        404,
        "on the shared IPv4: no app answers to the Host header (or TLS SNI name)",
        "use <app>.<app_domain> as the host name, or the app's dedicated address",
    ),
    UncodedAnswer(405, "a CONNECT request (edge is not a forward proxy)", "do not send CONNECT"),
    UncodedAnswer(
        408,
        "the request head did not arrive within http.headers_read_timeout",
        "send the whole head at once; raise headers_read_timeout for slow clients",
    ),
    UncodedAnswer(
        431,
        "the request head is larger than http.max_header_bytes",
        "send fewer or smaller headers (cookies), or raise max_header_bytes",
    ),
    UncodedAnswer(
        503,
        "every point of presence is withdrawn, or the app has no service on this port",
        "restore a PoP (edgectl pops), or add the port to the app's services",
    ),
    UncodedAnswer(
        504,
        "the machine accepted the request but sent no response head within the service's "
        "timeout (the platform's list has no code for it)",
        "make the app answer sooner, or raise the service's timeout",
    ),
)


def doc_table() -> str:
    """docs/error-codes.md: the platform's codes, then edge's answers without one."""
    lines = [
        "# Error codes",
        "",
        "<!-- Generated from edge/core/error_codes.py by scripts/error-codes-doc; "
        "do not edit by hand. -->",
        "",
        "Every answer the edge makes itself names the platform's proxy error code where one",
        "exists: in the body (`error code: PR01 ...`), in the `Edge-Error-Code` response",
        "header, in its log line (`code=PR01`, JSON field `code`) and as the `code` label of",
        "`edge_proxy_errors_total`. A raw TCP connection the edge refuses or closes has no",
        "answer to carry it: its log line and counter (status `tcp`) name the code.",
        "",
        "| code | what happened | when edge gives it | what to do |",
        "|---|---|---|---|",
    ]
    for info in _TABLE:
        when = info.edge_gives or "not given by edge (yet)"
        lines.append(f"| {info.code} | {info.summary} | {when} | {info.advice} |")
    lines += [
        "",
        "## Answers without a platform code",
        "",
        "The platform's list has no code for these; edge sends no `Edge-Error-Code` header",
        'and counts them with `code="none"`.',
        "",
        "| status | when edge gives it | what to do |",
        "|---|---|---|",
    ]
    lines += [f"| {a.status} | {a.edge_gives} | {a.advice} |" for a in UNCODED]
    return "\n".join(lines) + "\n"
