"""Start and stop the stack's own processes, tracked by pid files.

``down`` must stop exactly what ``up`` started and nothing else, so a pid file records the pid together with the
process start time (from /proc); a recycled pid belonging to another process is never signalled.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path


def _start_time(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # after the parenthesised command name (which may hold spaces): field 3 (state), field 22 (starttime)
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] in ("Z", "X"):  # exited, waiting to be reaped by a parent that may not be us: gone
        return None
    return fields[19]


@dataclass(frozen=True)
class ManagedProcess:
    """A process recorded in ``pidfile`` as ``<pid> <starttime>``."""

    name: str
    pidfile: Path

    def pid(self) -> int | None:
        """The recorded pid if that very process is still alive, else None."""
        try:
            pid_s, started = self.pidfile.read_text().split()
        except (OSError, ValueError):
            return None
        pid = int(pid_s)
        return pid if _start_time(pid) == started else None

    def running(self) -> bool:
        return self.pid() is not None

    def spawn(self, argv: list[str], log: Path, env: dict[str, str] | None = None) -> int:
        """Start ``argv`` in its own session with output to ``log``; record it in the pid file."""
        log.parent.mkdir(parents=True, exist_ok=True)
        self.pidfile.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env=env,
            )
        started = None
        for _ in range(100):
            started = _start_time(proc.pid)
            if started:
                break
            time.sleep(0.01)
        self.pidfile.write_text(f"{proc.pid} {started}")
        return proc.pid

    def wait_http(self, url: str, timeout: float, log: Path) -> None:
        """Block until ``url`` answers 2xx; raise (naming ``log``) if the process exits or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                urllib.request.urlopen(url, timeout=1)
                return
            except OSError:  # URLError is an OSError: refused, reset, or not listening yet
                if not self.running() or time.monotonic() > deadline:
                    raise RuntimeError(f"{self.name} did not answer {url}; see {log}") from None
                time.sleep(0.3)

    def stop(self, timeout: float = 30.0) -> bool:
        """SIGTERM the recorded process, SIGKILL after ``timeout``; True if something was stopped."""
        pid = self.pid()
        if pid is None:
            self.pidfile.unlink(missing_ok=True)
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.pid() is not None:
            _reap(pid)
            time.sleep(0.1)
        if self.pid() is not None:
            self.kill()
        self.pidfile.unlink(missing_ok=True)
        return True

    def kill(self) -> bool:
        """SIGKILL the recorded process at once, as a crash would end it; True if something was killed."""
        pid = self.pid()
        if pid is None:
            return False
        os.kill(pid, signal.SIGKILL)
        while self.pid() is not None:
            _reap(pid)
            time.sleep(0.05)
        self.pidfile.unlink(missing_ok=True)
        return True


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _reap(pid: int) -> None:
    """Collect a child's exit status if it is ours (zombies still show in /proc)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
