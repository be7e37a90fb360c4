"""What process machines write: stdout and stderr kept per machine.

Each machine's lines go to a bounded ring in memory (what ``edgectl logs`` and the
API read) and to ``STATE_DIR/machines/<app>/<machine>.log``, which is rotated to
``.log.1`` at ``FILE_LIMIT`` bytes, so a chatty or hostile process can neither grow
the daemon's memory nor fill the disk. Every line gets a number from one counter,
so a follower asks for what came after the last number it saw.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

RING_LINES = 1000  # per machine, in memory
FILE_LIMIT = 4 * 1024 * 1024  # bytes per log file before it is rotated
LINE_LIMIT = 8192  # longer lines are cut (and marked)


@dataclass(frozen=True, slots=True)
class LogLine:
    seq: int
    at: float
    app: str
    machine_id: str
    stream: str  # stdout, stderr, or edge (what the supervisor says about the machine)
    line: str


class _MachineLog:
    __slots__ = ("file", "partial", "path", "ring", "size")

    def __init__(self, path: Path) -> None:
        self.path = path
        self.ring: deque[LogLine] = deque(maxlen=RING_LINES)
        self.partial: dict[str, bytes] = {}
        self.file: IO[bytes] | None = None
        self.size = 0


class MachineLogs:
    """The log lines of every process machine of one daemon."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._logs: dict[tuple[str, str], _MachineLog] = {}
        self._seq = 0

    def _log(self, app: str, machine_id: str) -> _MachineLog:
        key = (app, machine_id)
        log = self._logs.get(key)
        if log is None:
            log = self._logs[key] = _MachineLog(self.root / app / f"{machine_id}.log")
        return log

    def feed(self, app: str, machine_id: str, stream: str, data: bytes) -> None:
        """Bytes read from a machine's stream: whole lines are kept, the rest waits."""
        log = self._log(app, machine_id)
        data = log.partial.pop(stream, b"") + data
        *lines, rest = data.split(b"\n")
        if len(rest) > LINE_LIMIT:
            lines.append(rest[:LINE_LIMIT] + b" [cut]")
            rest = b""
        if rest:
            log.partial[stream] = rest
        for raw in lines:
            cut = raw if len(raw) <= LINE_LIMIT else raw[:LINE_LIMIT] + b" [cut]"
            self._add(log, app, machine_id, stream, cut.decode("utf-8", "replace").rstrip("\r"))

    def flush(self, app: str, machine_id: str, stream: str) -> None:
        """The stream ended: keep its last line even without a newline."""
        log = self._log(app, machine_id)
        rest = log.partial.pop(stream, b"")
        if rest:
            self._add(log, app, machine_id, stream, rest.decode("utf-8", "replace"))

    def note(self, app: str, machine_id: str, text: str) -> None:
        """A line from edge itself about the machine (started, exited code=1 ...)."""
        self._add(self._log(app, machine_id), app, machine_id, "edge", text)

    def _add(self, log: _MachineLog, app: str, machine_id: str, stream: str, text: str) -> None:
        self._seq += 1
        line = LogLine(self._seq, time.time(), app, machine_id, stream, text)
        log.ring.append(line)
        self._write(log, line)

    def _write(self, log: _MachineLog, line: LogLine) -> None:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(line.at))
        data = f"{stamp}Z [{line.stream}] {line.line}\n".encode()
        try:
            if log.file is None:
                log.path.parent.mkdir(parents=True, exist_ok=True)
                log.file = log.path.open("ab", buffering=0)
                log.size = log.file.tell()
            if log.size + len(data) > FILE_LIMIT:
                log.file.close()
                os.replace(log.path, log.path.with_suffix(".log.1"))
                log.file = log.path.open("ab", buffering=0)
                log.size = 0
            log.file.write(data)
            log.size += len(data)
        except OSError:
            # A full disk must not stop the machine or the daemon: the ring still has it.
            self._close_file(log)

    @staticmethod
    def _close_file(log: _MachineLog) -> None:
        if log.file is not None:
            with contextlib.suppress(OSError):
                log.file.close()
            log.file = None

    def release(self, app: str, machine_id: str) -> None:
        """The machine's process ended: close its file (reopened by the next line)."""
        log = self._logs.get((app, machine_id))
        if log is not None:
            self._close_file(log)

    def lines(
        self, app: str, machine_ids: Iterable[str] | None = None, since: int = 0, limit: int = 500
    ) -> list[LogLine]:
        """The kept lines of an app (or of some of its machines) after ``since``, oldest
        first, at most ``limit`` of the newest."""
        wanted = None if machine_ids is None else set(machine_ids)
        found = [
            line
            for (log_app, machine_id), log in self._logs.items()
            if log_app == app and (wanted is None or machine_id in wanted)
            for line in log.ring
            if line.seq > since
        ]
        found.sort(key=lambda line: line.seq)
        return found[-limit:] if limit else found

    def tail(self, app: str, machine_id: str, count: int) -> list[str]:
        """The last ``count`` lines the machine wrote (for an error's explanation)."""
        log = self._logs.get((app, machine_id))
        if log is None:
            return []
        mine = [line.line for line in log.ring if line.stream != "edge"]
        return mine[-count:]

    def last_seq(self) -> int:
        return self._seq

    def close(self) -> None:
        for log in self._logs.values():
            self._close_file(log)
