"""Cancellation, Ctrl-C, threads, leaks and engine aborts: the process stays healthy."""

from __future__ import annotations

import ctypes
import gc
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import sdcpp
from sdcpp import _core
from sdcpp.params import to_core

from .child import run_python

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


def _interrupted_after(stdout: str) -> int:
    assert "INTERRUPTED after" in stdout and "NOT INTERRUPTED" not in stdout, stdout
    return int(stdout.split("INTERRUPTED after ")[1].split()[0])


def test_ctrl_c_raises_keyboard_interrupt_within_a_step(sd15_file: Path) -> None:
    # A real SIGINT to a separate interpreter while the engine runs, as a terminal's Ctrl-C sends it.
    # Steps are counted, not timed: a lost Ctrl-C runs all 40 steps and the child says so.
    out = run_python(
        f"""
        import os, signal, threading, time, sdcpp
        start = time.monotonic()
        def say(*what): print(f"{{time.monotonic() - start:6.1f}} s", *what, flush=True)
        gen = sdcpp.Generator({str(sd15_file)!r}, device="cpu")
        say("loaded")
        steps = []
        def progress(step, total, seconds):
            steps.append(step)
            say("step", step)
            if step == 1:
                threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGINT)).start()
        try:
            gen.generate("x", seed=1, width=64, height=64, steps=40, progress=progress)
            say("NOT INTERRUPTED")
        except KeyboardInterrupt:
            say("INTERRUPTED after", len(steps), "reports")
        say("AGAIN", gen.generate("x", seed=1, width=64, height=64, steps=1)[0].size)
        """,
        timeout=900,
    )
    assert out.returncode == 0, out.stdout + out.stderr[-2000:]
    # Step 0, step 1, then at most the step during which the signal came.
    assert _interrupted_after(out.stdout) <= 4, out.stdout
    assert "AGAIN (64, 64)" in out.stdout


def test_ctrl_c_that_python_raises_inside_a_log_handler_still_stops_the_generation(sd15_file: Path) -> None:
    # Python raises a pending Ctrl-C in the first Python code its main thread runs, and during a
    # generation that can be a logging handler the engine's log line called. It must not die there.
    out = run_python(
        f"""
        import logging, sdcpp
        gen = sdcpp.Generator({str(sd15_file)!r}, device="cpu")

        class CtrlCArrives(logging.Handler):
            fired = False
            def emit(self, record):
                if not CtrlCArrives.fired:
                    CtrlCArrives.fired = True
                    raise KeyboardInterrupt

        logging.getLogger("sdcpp").setLevel(logging.INFO)
        logging.getLogger("sdcpp").addHandler(CtrlCArrives())
        steps = []
        try:
            gen.generate("x", seed=1, width=64, height=64, steps=40, progress=lambda s, n, t: steps.append(s))
            print("NOT INTERRUPTED", flush=True)
        except KeyboardInterrupt:
            print("INTERRUPTED after", len(steps), "reports", flush=True)
        print("handler fired:", CtrlCArrives.fired)
        """,
        timeout=900,
    )
    assert out.returncode == 0, out.stdout + out.stderr[-2000:]
    assert "handler fired: True" in out.stdout
    assert _interrupted_after(out.stdout) <= 1, out.stdout  # stopped when sampling began


def test_engine_threads_spin_briefly_at_barriers_unless_the_user_chose() -> None:
    # libgomp reads its settings once, when the compiled module loads it, and prints them with
    # OMP_DISPLAY_ENV: this shows sdcpp's default arrives in time and that a user's choice wins.
    clean = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    shown = {}
    for case, extra in {"default": {}, "user": {"GOMP_SPINCOUNT": "4321"},
                        "policy": {"OMP_WAIT_POLICY": "active"}}.items():
        out = run_python("import sdcpp", timeout=120, env={**clean, "OMP_DISPLAY_ENV": "verbose", **extra})
        assert out.returncode == 0, out.stderr
        shown[case] = out.stderr
    if "GOMP_SPINCOUNT" not in shown["default"]:
        pytest.skip("this build's CPU backend does not use libgomp")
    assert f"GOMP_SPINCOUNT = '{sdcpp._openmp.SPIN_COUNT}'" in shown["default"]
    assert "GOMP_SPINCOUNT = '4321'" in shown["user"]
    assert "OMP_WAIT_POLICY = 'ACTIVE'" in shown["policy"] and "GOMP_SPINCOUNT = '1000'" not in shown["policy"]


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
    params = sdcpp.GenerationParams("x", width=64, height=64, steps=1, seed=1, batch=2, sampler="euler", scheduler="discrete")
    arrays = generator._ctx.generate(to_core(params))
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
