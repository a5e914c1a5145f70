"""Who runs a job, and whether it still does: pid, host, process start time and heartbeat.

On the job's own host a process is alive while ``/proc`` shows it (not a zombie) with the
recorded start time, which tells a reused pid apart; from anywhere, a heartbeat older than
``STALE_S`` means it is gone (killed, its machine lost, or frozen).
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from dataclasses import dataclass
from typing import Any

STALE_S = 30.0


@dataclass(frozen=True)
class ProcessInfo:
    """Who runs a job: enough to tell, from anywhere, whether it still does."""

    pid: int
    host: str
    token: str
    heartbeat_at: float
    start_ticks: int | None = None

    @classmethod
    def of_this_process(cls) -> ProcessInfo:
        pid = os.getpid()
        return cls(pid, socket.gethostname(), uuid.uuid4().hex, time.time(), _start_ticks(pid))

    def is_alive(self, now: float | None = None) -> bool:
        if (now or time.time()) - self.heartbeat_at > STALE_S:
            return False
        return self.host != socket.gethostname() or _is_local_process(self.pid, self.start_ticks)

    def to_dict(self) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "host": self.host,
            "token": self.token,
            "heartbeat_at": self.heartbeat_at,
            "start_ticks": self.start_ticks,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> ProcessInfo | None:
        if not data:
            return None
        return cls(
            int(data["pid"]),
            str(data["host"]),
            str(data["token"]),
            float(data["heartbeat_at"]),
            data.get("start_ticks"),
        )


def _start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks (Linux), which tells a reused pid apart."""
    stat = _proc_stat(pid)
    return None if stat is None else int(stat[19])


def _proc_stat(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            text = handle.read()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    return text[text.rfind(")") + 2 :].split()


def _is_local_process(pid: int, start_ticks: int | None) -> bool:
    if os.path.isdir("/proc"):
        stat = _proc_stat(pid)
        if stat is None or stat[0] in ("Z", "X"):  # gone, or a zombie nobody has reaped yet
            return False
        return start_ticks is None or int(stat[19]) == start_ticks
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
