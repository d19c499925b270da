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


def run_python(script: str, *, timeout: float, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run ``script`` in a new interpreter (with ``env``, default this process's environment); its
    output is kept even when it is killed at ``timeout``.

    A child that times out fails the test with everything it printed (the script should print
    as it goes, with ``flush=True``), how long it ran and how busy the machine was.
    """
    start = time.monotonic()
    child = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script)],
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
