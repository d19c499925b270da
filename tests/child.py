"""Run Python in a separate interpreter and, when it fails or runs out of time, say what it did."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time


def machine_state() -> str:
    """Load and free memory: what a slow child's report needs beside its own output."""
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    with open("/proc/meminfo") as f:
        available = next((line.split()[1] for line in f if line.startswith("MemAvailable:")), "?")
    return f"load average {load}, MemAvailable {int(available) // 1024} MiB, {os.cpu_count()} CPUs"


# A test suite started as a background job of a non-interactive shell (as CI may start it) runs with
# SIGINT ignored, and a child inherits that: its Python then never installs the handler that turns
# Ctrl-C into KeyboardInterrupt. Children start from what a terminal's Python has.
_TERMINAL_SIGINT = "import signal as _s; _s.signal(_s.SIGINT, _s.default_int_handler); del _s\n"


def run_python(script: str, *, timeout: float, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run ``script`` in a new interpreter (with ``env``, default this process's environment, and
    Ctrl-C raising KeyboardInterrupt); its output is kept even when it is killed at ``timeout``.

    A child that times out fails the test with everything it printed (the script should print
    as it goes, with ``flush=True``), how long it ran and how busy the machine was.
    """
    start = time.monotonic()
    child = subprocess.Popen(
        [sys.executable, "-c", _TERMINAL_SIGINT + textwrap.dedent(script)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**(os.environ if env is None else env), "PYTHONUNBUFFERED": "1"},
    )
    try:
        out, err = child.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        state = machine_state()
        child.kill()
        out, err = child.communicate()
        raise AssertionError(
            f"the child ran {time.monotonic() - start:.0f} s and was killed ({state})\n"
            f"--- its stdout ---\n{out[-3000:]}\n--- its stderr ---\n{err[-3000:]}"
        ) from None
    return subprocess.CompletedProcess(child.args, child.returncode, out, err)
