"""What the relays decide, as plain functions over values (tested as tables).

Nothing here touches a socket, a timer or the loop: the HTTP and TCP relays ask,
and do what the answer says.
"""

from __future__ import annotations

import enum


class DeadlineKind(enum.Enum):
    """What a pending deadline is waiting for: its kind says what passing it means."""

    NONE = "none"  # nothing is timed
    IDLE = "idle"  # a keep-alive connection between requests
    HEAD = "head"  # the rest of a request head
    QUEUE = "queue"  # a free machine (every one at its hard limit)
    CONNECT = "connect"  # the TCP connection to a machine
    RESPONSE = "response"  # the machine's response head
    BODY = "body"  # the rest of a request body the replay needs
    REPLAY = "replay"  # a fly-replay target to be reached (then its fallback)
