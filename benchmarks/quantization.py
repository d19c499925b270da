"""Size, memory, speed and agreement of quantized models (issue 12, "Size and speed of quantized models").

For one model file (the random-weight SD1.5 or SDXL fixture: the numbers do not depend on the weights'
values), converts it with ``sdcpp.convert`` to each weight type, then, each in a fresh child process
(so that its peak RSS is its own), loads it, draws one warm-up image and one measured image (same
seed), and reports:

* file size, and the share of the file's tensor bytes that stay f16 whatever the type (embeddings,
  and the convolution kernels whose rows are no whole blocks: docs/inspect-convert.md);
* the child's peak RSS (``ru_maxrss``), and the weight types the engine holds per component;
* seconds per sampling step (the engine's "sampling completed" time over the steps) and per image,
  and the CPU seconds the image took (all threads; on a shared machine steadier than the wall clock);
* PSNR of each image against the f16 model's image.

    python -m benchmarks.quantization /tmp/sdcpp-test-models/b41ef064e350/sd15.safetensors \\
        --name sd15 --size 256 --steps 4 --workdir /tmp/quant --markdown out.md

The converted files are kept in ``--workdir`` and reused when run again (unless ``--discard``).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

TYPES = ("f16", "q8_0", "q5_0", "q5_K", "q4_0", "q4_K")
_SAMPLING = re.compile(r"sampling completed, taking ([0-9.]+)s")


def _child(model: str, size: int, steps: int, seed: int, threads: int, image_out: str, device: str = "cpu") -> None:
    """Runs in the child: load, warm up, measure, print one JSON line."""
    import logging

    import sdcpp

    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    logging.getLogger("sdcpp").addHandler(Keep())
    logging.getLogger("sdcpp").setLevel(logging.INFO)
    start = time.perf_counter()
    gen = sdcpp.Generator(model, device=device, threads=threads)
    load_s = time.perf_counter() - start
    settings = dict(width=size, height=size, steps=steps, seed=seed, sampler="euler", scheduler="discrete")
    gen.generate("a lighthouse at dusk", **settings)  # warm-up: first-call allocations
    lines.clear()
    cpu = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    image = gen.generate("a lighthouse at dusk", **settings)[0]
    image_s = time.perf_counter() - start
    used = resource.getrusage(resource.RUSAGE_SELF)
    np.save(image_out, np.asarray(image))
    sampling = [float(m.group(1)) for line in lines for m in [_SAMPLING.search(line)] if m]
    print(json.dumps({
        "load_s": load_s,
        "image_s": image_s,
        # CPU seconds (all threads): on a shared machine, steadier than the wall clock
        "image_cpu_s": used.ru_utime + used.ru_stime - cpu.ru_utime - cpu.ru_stime,
        "step_s": sampling[-1] / steps if sampling else math.nan,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "weight_types": gen.weight_types,
        "vram_mib": _vram_in_use_mib() if device != "cpu" else None,
    }))


def _vram_in_use_mib() -> float | None:
    """GPU memory in use while the model is loaded (nvidia-smi; the benchmark's process is the GPU's only user)."""
    if shutil.which("nvidia-smi") is None:
        return None
    out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
                         capture_output=True, text=True, check=True).stdout
    return float(out.split()[0])


def f16_share(path: Path) -> float:
    """Fraction of the file's tensor bytes held as f16."""
    from sdcpp._headers import _ggml_types, read_header

    sizes = {name: (block, size) for name, block, size in _ggml_types().values()}
    total = f16 = 0
    for t in read_header(path).tensors:
        block, size = sizes[t.dtype]
        nbytes = math.prod(t.shape) // block * size
        total += nbytes
        f16 += nbytes if t.dtype == "f16" else 0
    return f16 / total


# ModelLoader::tensor_should_be_converted (src/model.cpp): names the engine's converter never quantizes.
_KEPT_SUFFIXES = (".bias", ".scale")
_KEPT_PARTS = ("img_in.", "txt_in.", "time_in.", "vector_in.", "guidance_in.", "final_layer.", "x_embedder.",
               "t_embedder.", "y_embedder.", "pos_embed", "context_embedder.", "time_embed.", "label_emb.", "embedding")


def predicted_mb(path: Path, kind: str, prefix: str = "", flat_kernels: bool = False) -> float:
    """The tensor bytes ``sdcpp.convert`` would write for ``kind``, from the header alone (no conversion,
    no memory): the engine's rule, checked against the measured files in benchmarks/RESULTS.md.

    ``prefix``: count only the tensors whose names start with it (``"model.diffusion_model."``: the
    UNet). ``flat_kernels``: as if convolution kernels were stored as ``[OC, IC*KH*KW]`` matrices and
    quantized like Linear weights (docs/inspect-convert.md: what an engine patch could do)."""
    from sdcpp._detect import is_unused
    from sdcpp._headers import _ggml_types, read_header

    sizes = {name: (block, size) for name, block, size in _ggml_types().values()}
    block, size = sizes[kind]
    total = 0
    for t in read_header(path).tensors:
        n = math.prod(t.shape)
        if is_unused(t.name) or t.dtype not in sizes or not t.name.startswith(prefix):
            continue  # dropped by the engine, an int64 buffer it skips, or not asked for
        row = math.prod(t.shape[1:]) if flat_kernels and len(t.shape) == 4 else t.shape[-1]
        keep = (
            row % block != 0  # a row must be whole blocks (ggml's ne[0], the innermost dimension)
            or t.name.endswith(_KEPT_SUFFIXES)
            or any(part in t.name for part in _KEPT_PARTS)
            or t.name.endswith("model.text_projection")  # transposed at load: never block-quantized
        )
        own_block, own_size = sizes[t.dtype]
        total += n // own_block * own_size if keep else n // block * size
    return total / 1e6


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255**2 / mse)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="an f16 single-file model")
    parser.add_argument("--name", default=None, help="prefix of the converted files (default: the model's stem)")
    parser.add_argument("--types", default=",".join(TYPES), help="ggml types; 'source' runs the model file itself")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="where the images are drawn: cpu, cuda, metal (Generator's device)")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/sdcpp-quantization"))
    parser.add_argument("--predict", action="store_true",
                        help="print the sizes convert would write (whole file and UNet, today and with flattened kernels) and stop")
    parser.add_argument("--discard", action="store_true", help="delete each converted file once measured (SDXL: 4-7 GB each)")
    parser.add_argument("--json", type=Path, help="write the rows as JSON here")
    parser.add_argument("--markdown", type=Path, help="write the table here")
    args = parser.parse_args(argv)
    if args.predict:
        print("| type | file MB | UNet MB | file MB, kernels quantized too | UNet MB, kernels quantized too |")
        print("| --- | ---: | ---: | ---: | ---: |")
        for kind in args.types.split(","):
            sizes = [predicted_mb(args.model, kind, prefix, flat) for flat in (False, True)
                     for prefix in ("", "model.diffusion_model.")]
            print(f"| {kind} | " + " | ".join(f"{mb:.0f}" for mb in sizes) + " |")
        return
    import sdcpp

    args.workdir.mkdir(parents=True, exist_ok=True)
    name = args.name or args.model.stem
    rows, reference = [], None
    for kind in args.types.split(","):
        # "source": the model file itself, as the reference, without writing a 7 GB f16 copy of SDXL
        dst = args.model if kind == "source" else args.workdir / f"{name}-{kind}.gguf"
        start = time.perf_counter()
        if not dst.exists():
            sdcpp.convert(args.model, dst, kind)
        convert_s = time.perf_counter() - start
        image_out = args.workdir / f"{name}-{kind}-{args.size}.npy"
        code = (f"from benchmarks.quantization import _child; _child({str(dst)!r}, {args.size}, {args.steps}, "
                f"{args.seed}, {args.threads}, {str(image_out)!r}, {args.device!r})")
        out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
        row = json.loads(out.strip().splitlines()[-1])
        image = np.load(image_out)
        reference = image if reference is None else reference
        row.update(type=kind, file_mb=dst.stat().st_size / 1e6, f16_share=f16_share(dst), convert_s=convert_s,
                   psnr_db=psnr(image, reference), max_abs=int(np.abs(image.astype(int) - reference.astype(int)).max()))
        rows.append(row)
        if args.discard and kind != "source":
            dst.unlink()
        print(_row_text(row), flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    if args.markdown:
        args.markdown.write_text(table(rows) + "\n")
    print(table(rows))


def _row_text(r: dict) -> str:
    return (f"{r['type']}: {r['file_mb']:.0f} MB, f16 {100 * r['f16_share']:.0f} %, peak RSS {r['peak_rss_mib']:.0f} MiB, "
            f"{r['step_s']:.2f} s/step, {r['image_s']:.1f} s/image ({r['image_cpu_s']:.1f} CPU s), PSNR {r['psnr_db']:.1f} dB")


def table(rows: list[dict]) -> str:
    gpu = any(r.get("vram_mib") is not None for r in rows)
    head = ("| type | file MB | of which f16 | peak RSS MiB | " + ("VRAM in use MiB | " if gpu else "")
            + "s/step | s/image | CPU s/image | PSNR vs f16 dB | max abs diff |\n"
            + "| --- | ---: | ---: | ---: | " + ("---: | " if gpu else "") + "---: | ---: | ---: | ---: | ---: |")
    body = [
        f"| {r['type']} | {r['file_mb']:.0f} | {100 * r['f16_share']:.0f} % | {r['peak_rss_mib']:.0f} | "
        + (f"{r['vram_mib']:.0f} | " if gpu else "")
        + f"{r['step_s']:.2f} | {r['image_s']:.1f} | {r['image_cpu_s']:.1f} | {r['psnr_db']:.1f} | {r['max_abs']} |"
        for r in rows
    ]
    return "\n".join([head, *body])


if __name__ == "__main__":
    main()
