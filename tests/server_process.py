"""The real ``sdcpp serve`` in a child process, on a free port of 127.0.0.1, for the server's tests."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

import httpx

from .child import machine_state

# Loading the random-weight SD1.5 model takes seconds; a busy shared machine can make it minutes.
START_TIMEOUT_S = 300


class ServerProcess:
    """``python -m sdcpp serve MODEL --port 0 ...``, its log in a file, and a client for it."""

    def __init__(self, model: Optional[Path], log: Path, *args: str, api_key: Optional[str] = None,
                 background: bool = False) -> None:
        """``model``: None for component files given in ``args``. ``background``: started with SIGINT
        ignored, as a shell's background job (``sdcpp serve ... &``) is; otherwise with a terminal's
        Ctrl-C, whatever the test run's own disposition."""
        self.log_path = log
        self.api_key = api_key
        command = [sys.executable, "-m", "sdcpp", "serve", *([str(model)] if model else []), "--port", "0",
                   "--device", "cpu", *args]
        if api_key:
            command += ["--api-key", api_key]
        with open(log, "wb") as out:
            disposition = signal.SIG_IGN if background else signal.SIG_DFL
            self.process = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
                preexec_fn=lambda: signal.signal(signal.SIGINT, disposition),
            )
        self.pid = self.process.pid
        try:
            match = self.wait_for_log(r"on (http://127\.0\.0\.1:\d+)/", START_TIMEOUT_S)
            self.url = match[1]
            self._wait_until_answering()
        except BaseException:
            self.stop()
            raise

    def client(self, **kwargs: object) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=kwargs.pop("timeout", 120), **kwargs)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, pattern: str, timeout: float) -> re.Match:
        """The first match of ``pattern`` in the server's log, waiting up to ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            match = re.search(pattern, self.log())
            if match:
                return match
            if self.process.poll() is not None:
                raise AssertionError(f"the server exited ({self.process.returncode}) before logging "
                                     f"{pattern!r}:\n{self.log()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"the server did not log {pattern!r} within {timeout:.0f} s "
                                     f"({machine_state()}):\n{self.log()}")
            time.sleep(0.05)

    def _wait_until_answering(self) -> None:
        deadline = time.monotonic() + 30
        with self.client(timeout=5) as client:
            while True:
                try:
                    if client.get("/sdapi/v1/progress").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise AssertionError(f"the server does not answer at {self.url}:\n{self.log()}")
                time.sleep(0.1)

    def rss_kib(self) -> int:
        """The server process's resident memory, from /proc."""
        with open(f"/proc/{self.pid}/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))

    def interrupt(self, timeout: float = 60) -> int:
        """Ctrl-C: SIGINT, then the exit status."""
        self.process.send_signal(signal.SIGINT)
        return self.process.wait(timeout)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
