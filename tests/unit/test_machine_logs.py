"""Process machines' output: whole lines, bounded in memory and on disk."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.runtime import machine_logs
from edge.runtime.machine_logs import MachineLogs


def test_lines_are_split_numbered_and_kept_per_machine(tmp_path: Path) -> None:
    logs = MachineLogs(tmp_path)
    logs.feed("app", "m1", "stdout", b"one\ntw")
    logs.feed("app", "m2", "stderr", b"other\n")
    logs.feed("app", "m1", "stdout", b"o\r\nthree")
    assert [x.line for x in logs.lines("app", ["m1"])] == ["one", "two"]
    logs.flush("app", "m1", "stdout")  # the stream ended: the unfinished line counts
    lines = logs.lines("app")
    assert [(x.machine_id, x.line) for x in lines] == [
        ("m1", "one"), ("m2", "other"), ("m1", "two"), ("m1", "three"),
    ]  # fmt: skip
    assert [x.seq for x in lines] == sorted(x.seq for x in lines)
    assert [x.line for x in logs.lines("app", since=lines[1].seq)] == ["two", "three"]
    assert logs.lines("other-app") == []
    assert logs.tail("app", "m1", 2) == ["two", "three"]
    logs.close()
    assert (tmp_path / "app" / "m1.log").read_text().count("[stdout]") == 3


def test_memory_and_line_length_are_bounded(tmp_path: Path) -> None:
    logs = MachineLogs(tmp_path)
    logs.feed("app", "m1", "stdout", b"x" * (machine_logs.LINE_LIMIT * 3))  # no newline
    logs.feed("app", "m1", "stdout", b"".join(b"%d\n" % n for n in range(5000)))
    logs.close()
    kept = logs.lines("app", limit=0)
    assert len(kept) == machine_logs.RING_LINES
    assert kept[-1].line == "4999"
    first = MachineLogs(tmp_path / "b")
    first.feed("app", "m1", "stdout", b"y" * (machine_logs.LINE_LIMIT + 10) + b"\n")
    first.close()
    (line,) = first.lines("app")
    assert line.line.endswith(" [cut]") and len(line.line) == machine_logs.LINE_LIMIT + 6


def test_the_file_is_rotated_at_its_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(machine_logs, "FILE_LIMIT", 1000)
    logs = MachineLogs(tmp_path)
    for n in range(100):
        logs.feed("app", "m1", "stdout", b"line %03d\n" % n)
    logs.close()
    current, old = tmp_path / "app" / "m1.log", tmp_path / "app" / "m1.log.1"
    assert current.stat().st_size <= 1000 and old.stat().st_size <= 1000
    assert "line 099" in current.read_text()
    assert not (tmp_path / "app" / "m1.log.2").exists()  # one old file, never more
