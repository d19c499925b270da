"""Rewrites the engine patch series so that each patch applies with no offset and no fuzz.

    python tools/refresh_patches.py /path/to/stable_diffusion_cpp_python-0.4.7.tar.gz

Applies the patches in file-name order to a fresh unpack of the pinned archive, each to the tree the
ones before it leave; a patch that needed an offset or fuzz is written anew as the diff it made (the
same change, with today's line numbers). tests/test_engine_source.py checks the result.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

PATCHES = Path(__file__).resolve().parent.parent / "third_party" / "patches"
MEMBER = "stable_diffusion_cpp_python-0.4.7/vendor/stable-diffusion.cpp"


def touched(patch: bytes) -> list[str]:
    return [line[6:].split(b"\t")[0].decode() for line in patch.splitlines() if line.startswith(b"+++ b/")]


def main(archive: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        with tarfile.open(archive) as tar:
            tar.extractall(tmp, members=[m for m in tar.getmembers() if m.name.startswith(MEMBER + "/")],
                           filter="data")
        tree = Path(tmp) / MEMBER
        for patch in sorted(PATCHES.glob("*.patch")):
            text = patch.read_bytes()
            files = touched(text)
            before = Path(tmp) / "before"
            shutil.rmtree(before, ignore_errors=True)
            for f in files:
                if (tree / f).exists():
                    (before / f).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(tree / f, before / f)
            out = subprocess.run(["patch", "-p1", "--batch", "--forward", "--no-backup-if-mismatch", "-i", str(patch)],
                                 cwd=tree, capture_output=True, text=True)
            if out.returncode != 0:
                sys.exit(f"{patch.name} does not apply:\n{out.stdout}{out.stderr}")
            if "offset" not in out.stdout and "fuzz" not in out.stdout:
                continue
            diff = text[: text.find(b"--- ")]  # the patch's own description, kept
            for f in files:
                old = before / f if (before / f).exists() else Path("/dev/null")
                diff += subprocess.run(["diff", "-uN", "--label", f"a/{f}", "--label", f"b/{f}", str(old), str(tree / f)],
                                       capture_output=True).stdout
            patch.write_bytes(diff)
            print(f"rewrote {patch.name}")


if __name__ == "__main__":
    main(sys.argv[1])
