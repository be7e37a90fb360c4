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


_TABLE: tuple[ErrorInfo, ...] = (
    ErrorInfo(
        ErrorCode.PC01,
        "the machine refused the connection on its port",
        "start the app's server on the service's internal_port",
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
    ),
    ErrorInfo(
        ErrorCode.PC04,
        "the connection to the machine was aborted",
        "look at the app's logs and at faults acting on the machine",
    ),
    ErrorInfo(
        ErrorCode.PC05,
        "connecting to the machine timed out",
        "check that the machine accepts connections; raise connect_timeout",
    ),
    ErrorInfo(
        ErrorCode.PC06,
        "an I/O error on the machine's connection",
        "look at the edge's log line for the errno",
    ),
    ErrorInfo(
        ErrorCode.PC07,
        "every connect attempt failed",
        "check the machines' health and the service's retries",
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
    ),
    ErrorInfo(
        ErrorCode.PR02,
        "the requested machine does not exist",
        "check the instance id in fly-force-instance-id or the replay",
    ),
    ErrorInfo(
        ErrorCode.PR03,
        "no candidate machine after retries (the last cause is logged)",
        "look at the machines' health and the last cause in the log",
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
    ),
    ErrorInfo(
        ErrorCode.PL02,
        "the request concurrency limit was reached",
        "raise the hard_limit or add machines",
    ),
)

ERRORS: dict[ErrorCode, ErrorInfo] = {info.code: info for info in _TABLE}


def describe(code: ErrorCode) -> ErrorInfo:
    return ERRORS[code]
