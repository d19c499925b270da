"""The ``sdcpp`` command (also ``python -m sdcpp``): generate, show, info, doctor, inspect, convert, serve.

Exit status: 0 done, 1 an error (one line saying what to do; ``--verbose`` adds the traceback),
2 a command line that cannot run (argparse's usage errors), 130 stopped by Ctrl-C. See docs/cli.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import traceback
from typing import Any, Optional, Sequence

from . import SdcppError, self_test, system_info
from .cli_generate import UsageError
from .cli_generate import add_parser as add_generate
from .doctor import report
from .images import read_metadata
from .server import cli as server_cli
from .tools_cli import add_tool_commands


def _info(args: argparse.Namespace) -> int:
    print(json.dumps(system_info(), indent=2))
    return 0


def _doctor(args: argparse.Namespace) -> int:
    info = system_info()
    print(f"sdcpp {info['version']}, ggml {info['engine']['ggml_version']}, backends: {', '.join(info['backends'])}")
    for d in info["devices"]:
        tensor_api = {True: ", Metal 4 tensor API", False: ", no tensor API", None: ""}[d["tensor_api"]]
        print(f"  {d['name']:<6} {d['type']:<5} {d['description']} ({d['memory_total'] / 2**30:.1f} GiB{tensor_api})")
    print(f"Metal tensor API: {info['metal_tensor_api']}")
    checks = self_test(args.device)
    print(report(checks))
    failed = [c for c in checks if not c.passed]
    print(f"{len(checks) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


def _show(args: argparse.Namespace) -> int:
    for i, path in enumerate(args.images):
        record = read_metadata(path)
        if args.json:
            print(json.dumps(record))
            continue
        width = max(map(len, record))
        print(("\n" if i else "") + path)
        for key, value in record.items():
            print(f"  {key:<{width}}  {_shown(value)}".replace("\n", "\n" + " " * (width + 4)))
    return 0


def _shown(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={_shown(v)}" for k, v in value.items()) or "none"
    if isinstance(value, list):
        return ", ".join(map(_shown, value)) or "none"
    return "default" if value is None else str(value)


def _version() -> str:
    info = system_info()
    engine = info["engine"]
    return (f"sdcpp {info['version']}, ggml {engine['ggml_version']}, backends: {', '.join(info['backends'])}\n"
            f"engine: {engine['source'] if engine['version'] == 'unknown' else engine['version']}")


def _add_verbosity(p: argparse.ArgumentParser, default: Any) -> None:
    p.add_argument("-v", "--verbose", action="count", default=default,
                   help="show the engine's log (-vv: its debug lines too) and tracebacks")
    p.add_argument("-q", "--quiet", action="store_true", default=default,
                   help="show no progress and no messages, only errors (written files still go to stdout)")


def parser() -> argparse.ArgumentParser:
    """The command line's parser; ``generate`` has one option per parameter of Generator and
    setting of GenerationParams."""
    top = argparse.ArgumentParser(prog="sdcpp", description=__doc__,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    top.add_argument("--version", action="version", version=_version())
    _add_verbosity(top, None)
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_generate(sub)
    s = sub.add_parser("show", help="print the parameters an image was generated with (PNG files sdcpp saved)")
    s.add_argument("images", nargs="+", metavar="IMAGE")
    s.add_argument("--json", action="store_true", help="the whole record as JSON, one line per image")
    s.set_defaults(run=_show)
    sub.add_parser("info", help="print versions, backends, devices and CPU features as JSON").set_defaults(run=_info)
    d = sub.add_parser("doctor", help="list the devices and check their kernels against the CPU and numpy")
    d.add_argument("--device", help="check only this device (default: all)")
    d.set_defaults(run=_doctor)
    add_tool_commands(sub)
    server_cli.add_parser(sub)
    for command in sub.choices.values():  # `sdcpp generate ... -v` as well as `sdcpp -v generate ...`
        _add_verbosity(command, argparse.SUPPRESS)
    return top


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parser().parse_args(argv)
    verbose = args.verbose or 0
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(message)s")
    try:
        return args.run(args)
    except KeyboardInterrupt:
        print("sdcpp: interrupted", file=sys.stderr)
        return 130
    except UsageError as e:
        print(f"sdcpp {args.command}: error: {e}", file=sys.stderr)
        return 2
    except Exception as e:
        if verbose:
            traceback.print_exc()
        print(f"sdcpp: error: {_message(e, verbose)}", file=sys.stderr)
        return 1


def _message(e: Exception, verbose: int) -> str:
    """sdcpp's errors say what to do; a file's error names the file; anything else is a bug to report."""
    if isinstance(e, SdcppError):
        return str(e)
    if isinstance(e, OSError) and e.strerror:
        return f"{e.strerror}: {e.filename}" if e.filename else e.strerror
    if isinstance(e, OSError):
        return str(e)
    return f"{type(e).__name__}: {e}" + ("" if verbose else " (--verbose shows where)")


if __name__ == "__main__":
    sys.exit(main())
