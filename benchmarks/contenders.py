"""One contender of the benchmark, timed in this process; run by compare.py, one process each.

    python benchmarks/contenders.py sdcpp|cli|peer|diffusers --json SETTINGS

Prints one line "RESULT {json}": load time, seconds per image (first and steady state), the
engine's stage times (conditioning, sampling, VAE decode) and peak memory.
"""

from __future__ import annotations

import json
import os
import re
import resource
import statistics
import subprocess
import sys
import threading
import time
from typing import Any, Callable

PROMPT = "a lighthouse at dusk, oil painting"

# The engine logs each stage's time; sdcpp, its CLI and the ctypes peer all print these lines.
_STAGES = {
    "conditioning_s": re.compile(r"get_learned_condition completed, taking ([\d.]+)s"),
    "sampling_s": re.compile(r"sampling completed, taking ([\d.]+)s"),
    "vae_s": re.compile(r"decode_first_stage completed, taking ([\d.]+)s"),
    "engine_image_s": re.compile(r"generate_image completed in ([\d.]+)s"),
}


def engine_stages(lines: list[str]) -> dict[str, float]:
    """Stage times of the one generation whose log is ``lines``."""
    out = {}
    for key, pattern in _STAGES.items():
        found = [float(m.group(1)) for line in lines for m in [pattern.search(line)] if m]
        if found:
            out[key] = found[-1]
    return out


class GpuMemory:
    """Peak GPU memory in use on the card while running (whole card, less what was in use before:
    each contender runs alone), read with nvidia-smi every 50 ms; NVIDIA only."""

    def __init__(self, enabled: bool):
        self.enabled, self.peak_mb, self._stop = enabled, 0.0, threading.Event()
        self._base = self._read() if enabled else 0.0
        self._thread = threading.Thread(target=self._poll, daemon=True)

    @staticmethod
    def _read() -> float:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits", "-i", "0"],
            capture_output=True, text=True, check=True,
        ).stdout
        return float(out.split()[0])

    def _poll(self) -> None:
        while not self._stop.wait(0.05):
            self.peak_mb = max(self.peak_mb, self._read() - self._base)

    def __enter__(self) -> GpuMemory:
        if self.enabled:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self.enabled:
            self._thread.join()


def timed_runs(generate: Callable[[], list[str]], runs: int) -> dict[str, Any]:
    """One cold generation, then ``runs`` more; ``generate`` returns the engine's log lines of its run."""
    walls, stages = [], []
    for _ in range(runs + 1):
        t0 = time.perf_counter()
        lines = generate()
        walls.append(time.perf_counter() - t0)
        stages.append(engine_stages(lines))
    return {"first_image_s": walls[0], "image_s": walls[1:], "image_s_median": statistics.median(walls[1:]),
            **stage_medians(stages[1:])}


def stage_medians(stages: list[dict[str, float]]) -> dict[str, float]:
    """Each stage's median over the runs that logged it."""
    out = {}
    for key in _STAGES:
        values = [s[key] for s in stages if key in s]
        if values:
            out[key] = statistics.median(values)
    return out


class _Lines:
    """Collects log records' messages (engine lines arrive through Python logging)."""

    def __init__(self, logger_name: str):
        import logging

        self.lines: list[str] = []
        handler = logging.Handler()
        handler.emit = lambda record: self.lines.append(record.getMessage())  # type: ignore[method-assign]
        logger = logging.getLogger(logger_name)
        logger.setLevel(logging.INFO)
        logger.addHandler(handler)

    def take(self) -> list[str]:
        taken, self.lines = self.lines, []
        return taken


def run_sdcpp(s: dict[str, Any]) -> dict[str, Any]:
    lines = _Lines("sdcpp")
    import sdcpp

    t0 = time.perf_counter()
    options = {k: s[k] for k in ("flash_attn", "batched_cfg") if s.get(k) is not None}
    gen = sdcpp.Generator(s["model_file"], device=s["device"], threads=s["threads"], **options)
    load_s = time.perf_counter() - t0

    def generate() -> list[str]:
        lines.take()
        gen.generate(PROMPT, width=s["width"], height=s["height"], steps=s["steps"], cfg_scale=s["cfg"],
                     sampler="euler", seed=s["seed"])
        return lines.take()

    # getattr: builds older than Generator.flash_attn are compared too (before/after runs).
    settings = f"device={gen.device} flash_attn={getattr(gen, 'flash_attn', None)} batched_cfg={s.get('batched_cfg')}"
    return {"load_s": load_s, "settings": settings, **timed_runs(generate, s["runs"])}


def run_cli(s: dict[str, Any]) -> dict[str, Any]:
    """The engine's own command line program, one process per image (it loads the model each time):
    the image time is what the engine reports for generate_image, the load the rest of the process."""
    cmd = [s["cli"], "-m", s["model_file"], "-p", PROMPT, "-W", str(s["width"]), "-H", str(s["height"]),
           "--steps", str(s["steps"]), "--cfg-scale", str(s["cfg"]), "--sampling-method", "euler",
           "-s", str(s["seed"]), "-o", os.path.join(s["scratch"], "cli.png"), "-v"]
    if s["threads"]:
        cmd += ["-t", str(s["threads"])]
    if s["flash_attn"]:
        cmd += ["--diffusion-fa"]
    results, loads, peak = [], [], 0.0
    for _ in range(s["runs"] + 1):
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if proc.returncode:
            raise RuntimeError(f"{cmd[0]} failed ({proc.returncode}): {proc.stderr[-2000:]}{proc.stdout[-2000:]}")
        stages = engine_stages((proc.stdout + proc.stderr).splitlines())
        results.append(stages)
        loads.append(wall - stages["engine_image_s"])
        peak = max(peak, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)
    steady = results[1:]
    out: dict[str, Any] = {"load_s": statistics.median(loads), "first_image_s": results[0]["engine_image_s"],
                           "image_s": [r["engine_image_s"] for r in steady], "peak_rss_mb_children": peak}
    out["image_s_median"] = statistics.median(out["image_s"])
    out.update(stage_medians(steady))
    out["settings"] = f"flash_attn={bool(s['flash_attn'])}"
    return out


class _StderrLines:
    """Collects what is printed to sys.stderr: the peer prints the engine's log lines there."""

    def __init__(self) -> None:
        self.text = ""
        sys.stderr = self  # type: ignore[assignment]

    def write(self, text: str) -> int:
        self.text += text
        return len(text)

    def flush(self) -> None:
        pass

    def take(self) -> list[str]:
        taken, self.text = self.text, ""
        return taken.splitlines()


def run_peer(s: dict[str, Any]) -> dict[str, Any]:
    from stable_diffusion_cpp import StableDiffusion

    lines = _StderrLines()

    t0 = time.perf_counter()
    sd = StableDiffusion(model_path=s["model_file"], n_threads=s["threads"] or -1,
                         diffusion_flash_attn=bool(s["flash_attn"]), verbose=True)
    load_s = time.perf_counter() - t0

    def generate() -> list[str]:
        lines.take()
        sd.generate_image(prompt=PROMPT, width=s["width"], height=s["height"], sample_steps=s["steps"],
                          cfg_scale=s["cfg"], sample_method="euler", seed=s["seed"])
        return lines.take()

    return {"load_s": load_s, "settings": f"flash_attn={bool(s['flash_attn'])}", **timed_runs(generate, s["runs"])}


def run_diffusers(s: dict[str, Any]) -> dict[str, Any]:
    import torch
    from diffusers import DiffusionPipeline, EulerDiscreteScheduler

    sys.path.insert(0, s["repo"])
    from tests.reference import clip_tokenizer, sdxl_tokenizers

    cuda = s["device"] == "cuda"
    torch_device = {"cpu": "cpu", "cuda": "cuda", "metal": "mps"}[s["device"]]
    dtype = torch.float32 if torch_device == "cpu" else torch.float16
    if s["threads"]:
        torch.set_num_threads(s["threads"])
    t0 = time.perf_counter()
    if s["family"] == "sdxl":
        tokenizers = dict(zip(("tokenizer", "tokenizer_2"), sdxl_tokenizers()))
    else:
        tokenizers = {"tokenizer": clip_tokenizer()}
    pipe = DiffusionPipeline.from_pretrained(s["model_dir"], torch_dtype=dtype, **tokenizers)
    pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    pipe.to(torch_device)
    sync = {"cuda": torch.cuda.synchronize, "mps": torch.mps.synchronize}.get(torch_device, lambda: None)
    load_s = time.perf_counter() - t0

    vae_times: list[float] = []
    decode = pipe.vae.decode

    def timed_decode(*args: Any, **kwargs: Any) -> Any:
        t = time.perf_counter()
        out = decode(*args, **kwargs)
        sync()
        vae_times.append(time.perf_counter() - t)
        return out

    pipe.vae.decode = timed_decode

    def generate() -> list[str]:
        with torch.inference_mode():
            pipe(PROMPT, negative_prompt="", width=s["width"], height=s["height"], num_inference_steps=s["steps"],
                 guidance_scale=s["cfg"], generator=torch.Generator("cpu").manual_seed(s["seed"]), output_type="pil")
        sync()
        return []

    out = {"load_s": load_s, "settings": f"torch {torch.__version__} {dtype}".replace("torch.", ""),
           **timed_runs(generate, s["runs"])}
    out["vae_s"] = statistics.median(vae_times[1:])
    if cuda:
        out["peak_vram_mb_torch"] = torch.cuda.max_memory_reserved() / 2**20
    return out


CONTENDERS = {"sdcpp": run_sdcpp, "cli": run_cli, "peer": run_peer, "diffusers": run_diffusers}


def main() -> None:
    name, settings = sys.argv[1], json.loads(sys.argv[3])
    with GpuMemory(settings["device"] == "cuda") as gpu:
        result = CONTENDERS[name](settings)
    result["peak_rss_mb"] = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                                result.pop("peak_rss_mb_children", 0.0))
    if gpu.enabled:
        result["peak_vram_mb"] = gpu.peak_mb
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
