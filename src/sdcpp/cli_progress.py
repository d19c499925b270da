"""What ``sdcpp generate`` shows while it works: a rich progress bar on a terminal, plain lines elsewhere.

The engine reports sampling steps through the progress callback (and the tiles of a tiled VAE
decode through the same callback), and its phases only through its log: "generating image: 2/4",
"hires fix: upscaling", "decoding 4 latents", "latent 1 decoded, taking 0.52s". :class:`Tracker`
turns both into calls on a display; a phase whose log line changes in a later engine is shown
under the previous label, never wrong numbers.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import Any, Optional

__all__ = ["Display", "Tracker", "make_display"]


class Display:
    """Shows nothing (``--quiet``); the base of the plain and rich displays."""

    def __enter__(self) -> Display:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def phase(self, text: str) -> None:
        """Work of unknown length has begun (loading, preparing)."""

    def steps(self, label: str, done: int, total: int, seconds: float, unit: str = "step") -> None:
        """``done`` of ``total`` units of ``label`` are done, ``seconds`` per unit on average."""

    def line(self, text: str) -> None:
        """A message for the user (warnings, logs), on stderr."""

    def result(self, text: str) -> None:
        """A result (a written file), on stdout: shown even when quiet, as scripts read it."""
        print(text, flush=True)


class PlainDisplay(Display):
    """One line per event on stderr: for logs, pipes and CI."""

    def phase(self, text: str) -> None:
        print(f"{text}...", file=sys.stderr, flush=True)

    def steps(self, label: str, done: int, total: int, seconds: float, unit: str = "step") -> None:
        timing = f", {seconds:.2f} s/{unit}, {_duration((total - done) * seconds)} left" if done else ""
        print(f"{label}: {unit} {done}/{total}{timing}", file=sys.stderr, flush=True)

    def line(self, text: str) -> None:
        print(text, file=sys.stderr, flush=True)


class RichDisplay(Display):
    """A bar per image (steps, percentage, it/s, time left), a spinner for work of unknown length."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TaskProgressColumn, TextColumn

        self._progress = Progress(
            SpinnerColumn(finished_text="[green]✓"), TextColumn("{task.description}"), BarColumn(),
            TaskProgressColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
            TextColumn("{task.fields[left]}"),
            console=Console(stderr=True), redirect_stdout=False,  # stdout may be a pipe of file names
        )
        self._task: Any = None
        self._key: Optional[tuple[str, int]] = None
        self._stdout_is_terminal = sys.stdout.isatty()

    def __enter__(self) -> Display:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def phase(self, text: str) -> None:
        self._end_task()
        self._task = self._progress.add_task(text, total=None, rate="", left="")

    def steps(self, label: str, done: int, total: int, seconds: float, unit: str = "step") -> None:
        if self._key != (label, total) or done < self._progress.tasks[-1].completed:
            self._end_task()
            self._key = (label, total)
            self._task = self._progress.add_task(label, total=total, rate="", left="")
        rate = "" if not done or seconds <= 0 else f"{1 / seconds:.2f} it/s" if seconds < 1 else f"{seconds:.2f} s/it"
        left = f"{_duration((total - done) * seconds)} left" if done else ""
        self._progress.update(self._task, completed=done, rate=rate, left=left)

    def _end_task(self) -> None:
        """A spinner goes away; a bar stays as a line of what was done."""
        if self._task is not None and self._progress.tasks[-1].total is None:
            self._progress.remove_task(self._task)
        self._task = self._key = None

    def line(self, text: str) -> None:
        self._progress.console.print(text, markup=False, highlight=False)

    def result(self, text: str) -> None:
        if self._stdout_is_terminal:  # the same screen: above the bar, not through it
            self.line(text)
        else:
            super().result(text)


def make_display(quiet: bool) -> Display:
    """The display for this process: rich on a terminal (plain and a hint when rich is missing)."""
    if quiet:
        return Display()
    if not sys.stderr.isatty():
        return PlainDisplay()
    try:
        import rich.progress  # noqa: F401
    except ImportError:
        print("sdcpp: for a progress bar, install rich: python -m pip install rich",
              file=sys.stderr)
        return PlainDisplay()
    return RichDisplay()


class Tracker(logging.Handler):
    """Reads the engine's log lines and progress reports of one run and tells the display what happens.

    Attached to the ``sdcpp`` logger (which must let INFO through); call :meth:`start` before each
    ``generate`` and pass :meth:`progress` as its progress callback.
    """

    def __init__(self, display: Display, images: int) -> None:
        super().__init__(logging.INFO)
        self.display = display
        self.images = images  # in the whole run
        self.first = 0  # how many images earlier generate calls made
        self.label = ""
        self.unit = "step"
        self.latents = 0

    def start(self, first: int, batch: int) -> None:
        self.first = first
        self.label, self.unit = f"image {first + 1}/{self.images}", "step"
        self.display.phase(f"preparing image {first + 1}{f'-{first + batch}' if batch > 1 else ''}/{self.images}")

    def progress(self, step: int, steps: int, seconds: float) -> None:
        # While decoding, the callback counts the tiles of a tiled decode.
        self.display.steps(self.label, step, steps, seconds, "step" if self.unit == "step" else "tile")

    def emit(self, record: logging.LogRecord) -> None:
        message = re.sub(r"^\S+:\d+\s+- ", "", record.getMessage())  # "stable-diffusion.cpp:3566 - ..."
        if match := re.match(r"generating image: (\d+)/\d+", message):
            self.label, self.unit = f"image {self.first + int(match.group(1))}/{self.images}", "step"
        elif message.startswith("hires fix: upscaling"):
            self.label, self.unit = "hires fix", "step"
        elif match := re.match(r"decoding (\d+) latents", message):
            self.latents = int(match.group(1))
            self.label, self.unit = f"decoding {self.latents} image{'s' if self.latents > 1 else ''}", "image"
            self.display.steps(self.label, 0, self.latents, 0.0, self.unit)
        elif match := re.match(r"latent (\d+) decoded, taking ([\d.]+)s", message):
            self.display.steps(self.label, int(match.group(1)), self.latents, float(match.group(2)), self.unit)


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else \
        f"{seconds // 60}:{seconds % 60:02d}"
