"""What the README, docs/ and the error messages tell a user to run exists.

sdcpp is not on the package index: every ``pip install`` of sdcpp must name a checkout (a path), never
the bare package name or the CUDA wheels' name; every relative link must lead to a file (and a
heading, where it names one), and every file of this repository that a page or a source comment cites
must exist.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

import sdcpp
from sdcpp.devices import resolve_device

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
SOURCES = [*sorted((ROOT / "cpp").glob("*.cpp")), *sorted((ROOT / "src" / "sdcpp").glob("*.py"))]
CITING = [
    *PAGES,
    RESULTS,
    ROOT / "CMakeLists.txt",
    ROOT / "pyproject.toml",
    *sorted((ROOT / "third_party").glob("*.cmake")),
    *sorted((ROOT / "cpp").glob("*.[ch]*")),
    *sorted((ROOT / "src" / "sdcpp").rglob("*.py")),
]
ENGINE = ROOT / "third_party" / "stable-diffusion.cpp"  # fetched by the build; absent in a fresh checkout
# A path of this repository's as prose and comments cite it; `{a,b}` stands for two files.
REFERENCE = re.compile(r"(?<![\w./<>{}-])((?:docs|benchmarks|tests|tools|cpp|src/sdcpp|third_party/patches)/[\w.{},/-]*[\w/}])")
OUR_NAMES = {"sdcpp", "sdcpp-cu13"}
OPTIONS_WITH_A_VALUE = {"-d", "--dest", "-r", "--requirement", "-f", "--find-links", "-c", "--constraint", "--no-binary", "--only-binary"}

needs_checkout = pytest.mark.skipif(not README.exists(), reason="needs the source checkout")


def pip_installs(text: str) -> list[list[str]]:
    """The arguments of every ``pip install`` in a text, each command cut at a shell operator or the end
    of its line or inline code span."""
    commands = []
    for match in re.finditer(r"pip install ([^`\n]*)", text):
        args = re.split(r"&&|\|\||;|#", match.group(1))[0].split()
        commands.append([a.strip("\"'") for a in args])
    return commands


def packages_named(args: list[str]) -> list[str]:
    """The requirement names among pip's arguments: not options or their values, not paths."""
    names, skip = [], False
    for arg in args:
        if skip or arg.startswith("-"):
            skip = not skip and arg in OPTIONS_WITH_A_VALUE
            continue
        if arg.startswith((".", "/", "~")) or "/" in arg or arg.endswith((".tar.gz", ".whl", ".zip")):
            continue  # a checkout, a source distribution or a wheel file
        names.append(re.split(r"[\[<>=!~;@ ]", arg, maxsplit=1)[0].lower().replace("_", "-"))
    return names


def test_the_parser_sees_the_commands_that_misled_users() -> None:
    old = "pip install sdcpp\n`pip install sdcpp-cu13`\nCMAKE_ARGS=x pip install sdcpp --no-binary sdcpp  # CPU"
    assert [packages_named(c) for c in pip_installs(old)] == [["sdcpp"], ["sdcpp-cu13"], ["sdcpp"]]
    fine = 'python -m pip install ".[test,parity]" && x\npip install --no-index --find-links wheelhouse dist/sdcpp-0.1.0.tar.gz'
    assert [packages_named(c) for c in pip_installs(fine)] == [[], []]


@needs_checkout
@pytest.mark.parametrize("page", PAGES + SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_install_of_a_package_that_is_not_published(page: Path) -> None:
    for args in pip_installs(page.read_text()):
        assert not OUR_NAMES & set(packages_named(args)), f"{page.name}: pip install {' '.join(args)}"


@needs_checkout
def test_the_readme_installs_from_a_checkout_and_names_no_cuda_wheel() -> None:
    text = README.read_text()
    install = text[text.index("## Install") : text.index("\n## ", text.index("## Install") + 1)]
    assert "python -m pip install ." in install
    assert 'CMAKE_ARGS="-DSD_CUDA=ON" python -m pip install .' in install
    assert "sdcpp-cu13" not in text


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    return {slug(h) for h in re.findall(r"^#+ (.+)$", page.read_text(), re.MULTILINE)}


@needs_checkout
@pytest.mark.parametrize("page", [*PAGES, RESULTS], ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page: Path) -> None:
    links = re.findall(r"\]\(([^)\s]+)\)", page.read_text())
    relative = [link for link in links if not re.match(r"[a-z]+:", link)]
    for link in relative:
        path, _, anchor = link.partition("#")
        target = (page.parent / path).resolve() if path else page
        assert target.exists(), f"{page.name}: {link} leads nowhere"
        if anchor:
            assert anchor in anchors(target), f"{page.name}: {link} names no heading of {target.name}"


def expand_braces(path: str) -> list[str]:
    """``a-{on,off}.md`` -> ``a-on.md``, ``a-off.md`` (one brace group, as the docs write them)."""
    match = re.search(r"\{([^{}]*)\}", path)
    if not match:
        return [path]
    return [path[: match.start()] + part + path[match.end() :] for part in match.group(1).split(",")]


def broken_references(text: str, root: Path, engine: Path) -> list[str]:
    """The file paths a text cites that lead nowhere. A path right after "the engine's" is the engine's
    own (its ``docs/flux.md``, not ours), checked in the engine's source where the build fetched it."""
    broken = []
    for match in REFERENCE.finditer(text):
        engines = re.search(r"engine's\s+`?$", text[: match.start()]) is not None
        if engines and not engine.exists():
            continue
        base = engine if engines else root
        broken += [p for p in expand_braces(match.group(1)) if not (base / p).exists()]
    return broken


def test_the_reference_check_tells_our_files_from_the_engines(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "usage.md").write_text("")
    (tmp_path / "benchmarks" / "results").mkdir(parents=True)
    for name in ("a-on.md", "a-off.md"):
        (tmp_path / "benchmarks" / "results" / name).write_text("")
    engine = tmp_path / "engine"
    text = "see docs/usage.md, `benchmarks/results/a-{on,off}.md` and the engine's docs/flux.md"
    assert broken_references(text, tmp_path, engine) == []  # not fetched: the engine's paths are not checked
    engine.mkdir()
    assert broken_references(text, tmp_path, engine) == ["docs/flux.md"]
    assert broken_references(text.replace("the engine's ", ""), tmp_path, engine) == ["docs/flux.md"]
    assert broken_references("(docs/usage.md, docs/gone.md; tests/test_x.py::test_y)", tmp_path, engine) == [
        "docs/gone.md",
        "tests/test_x.py",
    ]


@needs_checkout
@pytest.mark.parametrize("source", CITING, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_file_a_page_or_comment_cites_exists(source: Path) -> None:
    assert broken_references(source.read_text(), ROOT, ENGINE) == [], source.name


@needs_checkout
def test_the_readme_links_every_page_of_docs() -> None:
    linked = {(ROOT / p).resolve() for p in re.findall(r"\]\((docs/[^)#\s]+)", README.read_text())}
    assert linked == {p.resolve() for p in PAGES[1:]}


def test_an_unknown_device_says_how_to_build_the_backend() -> None:
    with pytest.raises(sdcpp.DeviceError) as e:
        resolve_device("npu")
    message = str(e.value)
    assert 'CMAKE_ARGS="-DSD_CUDA=ON" python -m pip install .' in message
    assert not OUR_NAMES & {n for args in pip_installs(message) for n in packages_named(args)}


@needs_checkout
@pytest.mark.slow
def test_the_readmes_first_command_generates_the_image_it_names(sd15_file: Path, tmp_path: Path) -> None:
    """The set-up line a newcomer copies: install, write a random-weight model, generate. The install is
    this test run's own; the model step is the fixture's writer with its defaults; the generate step runs
    as written, on that model."""
    text = README.read_text()
    section = text[text.index("## Set up for development") :]
    line = next(l for l in section.splitlines() if l.startswith("python -m pip install . && python tests/models.py"))
    install, write, generate = (part.strip() for part in line.split("&&"))
    assert install == "python -m pip install ." and write.startswith("python tests/models.py ")
    model = write.split()[-1]
    args = shlex.split(generate)
    assert args[:3] == ["sdcpp", "generate", model]
    args[2] = str(sd15_file)  # written by models.write_sd15_single_file with the script's defaults
    out = tmp_path / args[args.index("-o") + 1]
    args[args.index("-o") + 1] = str(out)
    done = subprocess.run([sys.executable, "-m", "sdcpp", *args[1:]], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    from PIL import Image

    with Image.open(out) as image:
        assert image.size == (256, 256) and image.text["parameters"].startswith("a lighthouse at dusk\n")
