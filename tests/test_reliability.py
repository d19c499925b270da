"""Cancellation, Ctrl-C, threads, leaks and engine aborts: the process stays healthy."""

from __future__ import annotations

import ctypes
import gc
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import sdcpp
from sdcpp import _core

SMALL = dict(width=64, height=64, steps=2)


def rss_bytes() -> int:
    """Resident memory after handing freed heap pages back to the OS (glibc keeps them otherwise)."""
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def test_cancel_from_another_thread_stops_within_a_step(generator: sdcpp.Generator) -> None:
    reached = threading.Event()
    steps: list[int] = []
    outcome: list[BaseException] = []

    def progress(step: int, total: int, seconds: float) -> None:
        steps.append(step)
        if step >= 1:
            reached.set()

    def run() -> None:
        try:
            generator.generate("x", seed=1, width=64, height=64, steps=500, progress=progress)
        except BaseException as e:  # noqa: BLE001 - the test inspects whatever came out
            outcome.append(e)

    worker = threading.Thread(target=run)
    worker.start()
    assert reached.wait(60), "the generation never reported a step"
    at_cancel = len(steps)
    generator.cancel()
    worker.join(60)
    assert not worker.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], sdcpp.Cancelled)
    assert len(steps) <= at_cancel + 1, f"{len(steps) - at_cancel} steps ran after cancel()"
    assert generator.generate("x", seed=1, **SMALL)[0].size == (64, 64), "usable after cancel"


def test_cancel_with_nothing_running_does_not_affect_the_next_generation(generator: sdcpp.Generator) -> None:
    generator.cancel()
    assert len(generator.generate("x", seed=1, **SMALL)) == 1


def test_ctrl_c_raises_keyboard_interrupt_within_a_step(sd15_file: Path) -> None:
    # A real SIGINT to a separate interpreter, as a terminal's Ctrl-C would send it.
    script = textwrap.dedent(
        f"""
        import os, signal, threading, sdcpp
        gen = sdcpp.Generator({str(sd15_file)!r}, device="cpu")
        steps = []
        def progress(step, total, seconds):
            steps.append(step)
            if step == 1:
                threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGINT)).start()
        try:
            gen.generate("x", seed=1, width=64, height=64, steps=500, progress=progress)
            print("NOT INTERRUPTED")
        except KeyboardInterrupt:
            print("INTERRUPTED after", len(steps), "reports")
        print("AGAIN", gen.generate("x", seed=1, width=64, height=64, steps=1)[0].size)
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    reports = int(out.stdout.split("INTERRUPTED after ")[1].split()[0])
    assert reports <= 4, out.stdout  # step 0, step 1, then at most the step during which it came
    assert "AGAIN (64, 64)" in out.stdout


def test_two_generators_in_two_threads_run_together_with_their_own_callbacks_and_logs(
    generator: sdcpp.Generator, sd15_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    other = sdcpp.Generator(sd15_file, device="cpu", name="other")
    seen: dict[str, list[tuple[int, int]]] = {"a": [], "b": []}
    spans: dict[str, tuple[float, float]] = {}

    def run(key: str, gen: sdcpp.Generator, steps: int, seed: int) -> None:
        start = time.perf_counter()
        gen.generate("x", seed=seed, width=64, height=64, steps=steps,
                     progress=lambda s, n, _: seen[key].append((s, n)))
        spans[key] = (start, time.perf_counter())

    with caplog.at_level("INFO", logger="sdcpp"):
        threads = [
            threading.Thread(target=run, args=("a", generator, 4, 1001)),
            threading.Thread(target=run, args=("b", other, 6, 2002)),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    other.close()
    assert seen["a"] == [(i, 4) for i in range(5)]
    assert seen["b"] == [(i, 6) for i in range(7)]
    (a0, a1), (b0, b1) = spans["a"], spans["b"]
    assert min(a1, b1) > max(a0, b0), "the two generations did not overlap in time"
    by_logger = {
        name: " ".join(r.getMessage() for r in caplog.records if r.name == name)
        for name in (generator.logger.name, "sdcpp.other")
    }
    assert "seed 1001" in by_logger[generator.logger.name] and "seed 2002" not in by_logger[generator.logger.name]
    assert "seed 2002" in by_logger["sdcpp.other"] and "seed 1001" not in by_logger["sdcpp.other"]


def test_one_generator_shared_by_threads_serializes(generator: sdcpp.Generator) -> None:
    results: list[np.ndarray] = []
    threads = [
        threading.Thread(target=lambda: results.append(np.asarray(generator.generate("x", seed=9, **SMALL)[0])))
        for _ in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 3
    for r in results[1:]:
        np.testing.assert_array_equal(r, results[0])


def test_hostile_generation_arguments_are_refused(generator: sdcpp.Generator) -> None:
    with pytest.raises(sdcpp.InvalidArgumentError, match="^prompt: 100000 characters"):
        generator.generate("a" * 100_000, **SMALL)
    with pytest.raises(sdcpp.InvalidArgumentError, match="^negative_prompt: is not valid Unicode"):
        generator.generate("x", "bad \udcff", **SMALL)
    with pytest.raises(sdcpp.InvalidArgumentError, match=r"^width, height: 16384x16384 needs about \d+ GiB"):
        generator.generate("x", width=16384, height=16384, steps=1)


def test_generation_memory_stays_flat(generator: sdcpp.Generator) -> None:
    for _ in range(5):
        generator.generate("x", seed=1, width=64, height=64, steps=1)
    start = rss_bytes()
    for i in range(25):
        generator.generate("x", seed=i, width=64, height=64, steps=1)
    middle = rss_bytes()
    for i in range(25):
        generator.generate("x", seed=i, width=64, height=64, steps=1)
    end = rss_bytes()
    mib = 2**20
    # A leak grows with every call, so the second 25 grow as much as the first.
    assert end - middle < 16 * mib, f"RSS grew {(end - middle) / mib:.1f} MiB over the last 25 generations"
    assert end - start < 64 * mib, f"RSS grew {(end - start) / mib:.1f} MiB over 50 generations"
    assert _core.ImageBatch.live_count() == 0


def test_engine_images_are_freed_when_python_drops_them(generator: sdcpp.Generator) -> None:
    arrays = generator._ctx.generate(prompt="x", width=64, height=64, steps=1, seed=1, batch_count=2)
    assert _core.ImageBatch.live_count() == 1
    base = arrays[0].base
    assert isinstance(base, _core.ImageBatch) and arrays[1].base is base, "arrays view the engine's memory"
    del arrays, base
    gc.collect()
    assert _core.ImageBatch.live_count() == 0


def test_closing_generators_returns_their_memory(sd15_file: Path) -> None:
    with sdcpp.Generator(sd15_file, device="cpu"):
        pass
    before = rss_bytes()
    for _ in range(20):
        with sdcpp.Generator(sd15_file, device="cpu") as gen:
            loaded = rss_bytes()
    assert loaded - before > 1 * 2**30, "a loaded model should hold its ~2 GB of weights"
    grown = rss_bytes() - before
    assert grown < 256 * 2**20, f"RSS grew {grown / 2**20:.0f} MiB over 20 load/close cycles"
    assert gen.closed


def test_an_engine_abort_is_reported_before_the_process_ends() -> None:
    out = subprocess.run(
        [sys.executable, "-c", "import sdcpp; sdcpp._core._abort_for_tests()"],
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode != 0
    assert "sdcpp: the engine stopped the process" in out.stderr
    assert "sdcpp test of the abort report" in out.stderr
