"""A benchmark run as a markdown table and an SVG bar chart, each contender as a ratio to diffusers."""

from __future__ import annotations

from html import escape
from typing import Any


def _ratio(value: float | None, reference: float | None) -> str:
    if value is None or not reference:
        return ""
    return f" ({value / reference:.2f}x)"


def _cell(result: dict[str, Any], key: str, reference: dict[str, Any], fmt: str = "{:.2f}") -> str:
    value = result.get(key)
    if value is None:
        return "–"
    return fmt.format(value) + _ratio(value, reference.get(key))


def markdown(run: dict[str, Any]) -> str:
    results = run["results"]
    ref = results.get("diffusers", {})
    steps = run["steps"]
    head = (f"{run['family']} {run['size']}x{run['size']}, {steps} steps, Euler, cfg {run['cfg']}, "
            f"{run['device']}; {run['machine']}; {run['date']}, commit {run['commit']}. "
            f"Medians of {run['runs']} images after a cold one; ratios are to diffusers in the same run.")
    lines = [
        head, "",
        "| contender | load s | s/image | first image s | s/step | sampling s | VAE decode s | peak RAM MiB | peak VRAM MiB | settings |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for name, r in results.items():
        if "skipped" in r:
            lines.append(f"| {name} | skipped: {r['skipped']} |||||||||")
            continue
        per_step = {"sampling_s": r["sampling_s"] / steps} if "sampling_s" in r else {}
        ref_step = {"sampling_s": ref["sampling_s"] / steps} if "sampling_s" in ref else {}
        lines.append(
            f"| {name} | {_cell(r, 'load_s', ref)} | {_cell(r, 'image_s_median', ref)} | "
            f"{_cell(r, 'first_image_s', ref)} | {_cell(per_step, 'sampling_s', ref_step)} | "
            f"{_cell(r, 'sampling_s', ref)} | {_cell(r, 'vae_s', ref)} | "
            f"{_cell(r, 'peak_rss_mb', ref, fmt='{:.0f}')} | {_cell(r, 'peak_vram_mb', ref, fmt='{:.0f}')} | "
            f"{r.get('settings', '')} |"
        )
    sdcpp, cli = results.get("sdcpp", {}), results.get("cli", {})
    if "engine_image_s" in sdcpp and "image_s_median" in sdcpp:
        overhead = sdcpp["image_s_median"] / sdcpp["engine_image_s"] - 1
        lines += ["", f"Binding overhead: sdcpp's generate() takes {overhead:+.2%} over the engine's own "
                      f"generate_image time in the same process."]
        if "first_image_s" in cli and "first_image_s" in sdcpp:
            lines.append(f"Against the CLI (cold image, the only one a CLI process makes): sdcpp "
                         f"{sdcpp['first_image_s']:.2f} s, sd-cli {cli['first_image_s']:.2f} s "
                         f"({sdcpp['first_image_s'] / cli['first_image_s'] - 1:+.1%}); steady state sdcpp "
                         f"{sdcpp['image_s_median']:.2f} s.")
    return "\n".join(lines)


def svg(run: dict[str, Any]) -> str:
    """Horizontal bars: seconds per image (steady state), sampling and VAE decode shaded apart."""
    rows = [(n, r) for n, r in run["results"].items() if "image_s_median" in r]
    width, bar_h, left, top = 640, 26, 110, 40
    longest = max((r["image_s_median"] for _, r in rows), default=1.0)
    scale = (width - left - 90) / longest
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{top + bar_h * len(rows) + 40}" '
        'font-family="sans-serif" font-size="13">',
        f'<text x="10" y="22" font-weight="bold">{escape(run["family"])} {run["size"]}px, {run["steps"]} steps, '
        f'{escape(run["device"])}: seconds per image (sampling dark, VAE light)</text>',
    ]
    for i, (name, r) in enumerate(rows):
        y = top + i * bar_h
        total = r["image_s_median"]
        sampling, vae = r.get("sampling_s", 0.0), r.get("vae_s", 0.0)
        parts.append(f'<text x="10" y="{y + 17}">{escape(name)}</text>')
        parts.append(f'<rect x="{left}" y="{y + 4}" width="{total * scale:.1f}" height="{bar_h - 8}" fill="#c9d6ea"/>')
        parts.append(f'<rect x="{left}" y="{y + 4}" width="{sampling * scale:.1f}" height="{bar_h - 8}" fill="#3b6bb5"/>')
        parts.append(f'<rect x="{left + sampling * scale:.1f}" y="{y + 4}" width="{vae * scale:.1f}" '
                     f'height="{bar_h - 8}" fill="#8fb0e0"/>')
        parts.append(f'<text x="{left + total * scale + 6:.1f}" y="{y + 17}">{total:.2f} s</text>')
    parts.append("</svg>\n")
    return "\n".join(parts)
