"""Child processes that die with their parent, stop politely, and leave their output in a log file."""

import contextlib
import ctypes
import functools
import os
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from spectare.core.errors import StackError

_PR_SET_PDEATHSIG = 1


def _die_with_parent(death_signal: int) -> None:
    # Linux: the kernel signals the child when the process that started it dies, so a `spectare up`
    # killed with -9 does not leave servers holding its ports and data.
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, death_signal)
    os.setpgrp()  # Ctrl-C in the terminal reaches the parent only; it stops children in order


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """`count` distinct free ports: all sockets stay bound until every port is chosen, so the
    kernel cannot hand out the same one twice."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


def check_port_free(port: int, what: str) -> None:
    if port_in_use(port):
        raise StackError(f"port {port} for {what} is already taken on 127.0.0.1; choose another or stop its user")


class ManagedProcess:
    """One child process: started with its output in `log_file`, stopped SIGTERM-then-SIGKILL."""

    def __init__(self, name: str, argv: Sequence[str], log_file: Path, env: dict[str, str] | None = None,
                 cwd: Path | None = None, death_signal: int = signal.SIGTERM) -> None:
        self.name = name
        self.death_signal = death_signal
        self.argv = list(argv)
        self.log_file = log_file
        self.env = env
        self.cwd = cwd
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as out:
            try:
                self.proc = subprocess.Popen(
                    self.argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                    env={**os.environ, **(self.env or {})}, cwd=self.cwd,
                    preexec_fn=functools.partial(_die_with_parent, self.death_signal),
                )
            except FileNotFoundError:
                raise StackError(f"{self.name}: program {self.argv[0]!r} not found; run `make setup`") from None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def returncode(self) -> int | None:
        return self.proc.poll() if self.proc else None

    def log_tail(self, lines: int = 5) -> str:
        try:
            text = self.log_file.read_text(errors="replace").strip().splitlines()
        except FileNotFoundError:
            return ""
        return " | ".join(line.strip() for line in text[-lines:])

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after `timeout` seconds."""
        if not self.alive():
            return
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    def kill(self) -> None:
        """SIGKILL, as a crash would (tests use it)."""
        if self.alive():
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait(5)

    def wait_until(self, ready, timeout: float, what: str) -> None:
        """Poll `ready()` until true; raise StackError with the log's tail if the child dies or time runs out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise StackError(
                    f"{self.name} exited with code {self.returncode()} before {what}: {self.log_tail()} "
                    f"(log: {self.log_file})"
                )
            if ready():
                return
            time.sleep(0.05)
        self.stop()
        raise StackError(f"{self.name} not {what} after {timeout:.0f}s (log: {self.log_file})")
