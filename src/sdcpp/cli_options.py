"""Command-line options derived from the library's own definitions, never listed by hand.

``sdcpp generate`` has one option per parameter of :class:`Generator` (its signature, type hints and
the ``Args:`` section of its docstring) and one per setting of :class:`GenerationParams` (its
fields), plus a path option per input image. A parameter added there is an option here, typed by
its annotation: bool (``--x/--no-x``), int, float, str or path, an enum (its values as choices),
``Mapping`` (``NAME=VALUE ...``), a sequence (several values), a small dataclass (``KEY=VALUE,...``,
where a list-valued key takes the values up to the next ``KEY=``: ``layers=7,8,9,scale=2.5``),
each possibly ``Optional``; any other type takes JSON.

Options store nothing unless given (``argparse.SUPPRESS``), so that :func:`given` returns what the
user typed: the callee's own defaults apply to the rest, and ``--from IMAGE`` can tell which of the
image's settings the command line overrides.
"""

from __future__ import annotations

import argparse
import collections.abc
import dataclasses
import enum
import inspect
import json
import os
import re
import types
import typing
from typing import Any, Callable, Mapping, NamedTuple, Optional, Sequence

from PIL import Image

from .generator import Generator
from .params import GenerationParams, settings

__all__ = ["Option", "KeyValues", "add_options", "generator_options", "given", "image_mode", "image_options", "setting_options"]


class Option(NamedTuple):
    """One command-line option: ``--name-with-dashes``, stored as ``name``."""

    name: str
    hint: Any  # the type annotation
    default: Any  # only shown in the help: the namespace holds given values only
    help: str


# Generator's parameters that are not options: the model is positional; ``name`` only names the logger.
_NOT_OPTIONS = {"self", "model", "name"}


def generator_options() -> list[Option]:
    """One option per keyword parameter of ``Generator(...)``, with the help its docstring gives."""
    hints = typing.get_type_hints(Generator.__init__)
    docs = docstring_args(inspect.getdoc(Generator) or "")
    return [
        Option(p.name, hints[p.name], p.default, docs.get(p.name, ""))
        for p in inspect.signature(Generator.__init__).parameters.values()
        if p.name not in _NOT_OPTIONS
    ]


def setting_options() -> list[Option]:
    """One option per setting of GenerationParams but the prompt (positional on the command line)."""
    hints = typing.get_type_hints(GenerationParams)
    return [
        Option(f.name, hints[f.name], f.default if f.default_factory is dataclasses.MISSING else f.default_factory(),
               f.metadata["help"])
        for f in settings() if f.name != "prompt"
    ]


def image_options() -> list[Option]:
    """A path option per input image of GenerationParams (init_image, mask_image, ...), a paths option
    per list of them (ref_images).

    The other inputs (callbacks) have no command-line form.
    """
    hints = typing.get_type_hints(GenerationParams)
    names = {f.name for f in settings()}
    options = []
    for f in dataclasses.fields(GenerationParams):
        if f.name in names:
            continue
        converted = f"converted to {'grayscale' if image_mode(f.name) == 'L' else 'RGB'}"
        if Image.Image in _union_args(hints[f.name]):
            options.append(Option(f.name, Optional[os.PathLike], None,
                                  f"{f.metadata['help']}; here an image file, {converted}"))
        elif Image.Image in _union_args(_sequence_item(_unwrap(hints[f.name])[0])):
            options.append(Option(f.name, Optional[Sequence[os.PathLike]], None,
                                  f"{f.metadata['help']}; here image files, {converted}"))
    return options


def image_mode(name: str) -> str:
    """The PIL mode the input image ``name`` is converted to: one channel for masks (white: repaint)."""
    return "L" if "mask" in name else "RGB"


def docstring_args(doc: str) -> dict[str, str]:
    """``name -> text`` from a Google-style ``Args:`` section; ``a, b: text`` documents both."""
    out: dict[str, str] = {}
    names: list[str] = []
    indent = None
    lines = iter(doc.splitlines())
    for line in lines:
        if line.strip() == "Args:":
            break
    for line in lines:
        if line and not line[0].isspace():
            break  # the next section
        if not line.strip():
            continue
        depth = len(line) - len(line.lstrip())
        indent = depth if indent is None else indent
        entry = re.match(r"([\w, ]+):\s*(.*)", line.strip())
        if depth == indent and entry:
            names = [n.strip() for n in entry.group(1).split(",")]
            out.update((n, entry.group(2)) for n in names)
        else:
            out.update((n, out[n] + " " + line.strip()) for n in names)
    return {name: _plain_text(text) for name, text in out.items()}


def _plain_text(rst: str) -> str:
    """``:class:`X``` -> X and ````x```` -> x: the docstring's markup in a terminal's help."""
    return re.sub(r":\w+:`~?([^`]+)`", r"\1", rst).replace("``", "")


def add_options(group: Any, options: Sequence[Option], short: Optional[Mapping[str, str]] = None) -> None:
    """Add each option to the parser or argument group, typed by its hint (see the module's doc)."""
    for option in options:
        flags = [short[option.name]] if short and option.name in short else []
        flags.append("--" + option.name.replace("_", "-"))
        kwargs, more = _argument(option.hint)
        shown = _shown_default(option.default)
        text = option.help + more + (f" (default: {shown})" if shown else "")
        group.add_argument(*flags, dest=option.name, default=argparse.SUPPRESS,
                           help=text.replace("%", "%%"), **kwargs)  # argparse %-formats help


def given(namespace: argparse.Namespace, options: Sequence[Option]) -> dict[str, Any]:
    """The options the command line gave, by name."""
    return {o.name: getattr(namespace, o.name) for o in options if hasattr(namespace, o.name)}


class KeyValues(dict):  # type: ignore[type-arg]
    """``--option KEY=VALUE,...`` for a dataclass-typed setting: the keys given, applied to a base value."""

    def __init__(self, cls: type, values: Mapping[str, Any]) -> None:
        super().__init__(values)
        self.cls = cls

    def apply(self, base: Any) -> Any:
        """``base`` with these keys replaced (a new value from the defaults where base is not one)."""
        return dataclasses.replace(base, **self) if isinstance(base, self.cls) else self.cls(**self)


# --- from a type hint to argparse's keywords --------------------------------------------------------

_BOOLS = {"true": True, "yes": True, "on": True, "1": True, "false": False, "no": False, "off": False, "0": False}
_NONE = ("none", "null")


def _argument(hint: Any) -> tuple[dict[str, Any], str]:
    """argparse's keywords for an option of type ``hint``, and what its help should add."""
    kind, optional = _unwrap(hint)
    many = _sequence_item(kind)
    if kind is bool:
        return {"action": argparse.BooleanOptionalAction}, ""
    if _is_enum(kind):
        names = [m.value for m in kind]
        return {"choices": names, "metavar": "NAME"}, f"; one of: {', '.join(names)}"
    if typing.get_origin(kind) in (collections.abc.Mapping, dict):
        value = (typing.get_args(kind) or (str, str))[1]
        return {"nargs": "+", "action": _pairs_action(_converter(value)), "metavar": "NAME=VALUE"}, ""
    if dataclasses.is_dataclass(kind):
        hints = typing.get_type_hints(kind)
        keys = ", ".join(f"{f.name} ({_type_name(hints[f.name])}, {_shown_default(f.default) or 'none'})"
                         for f in dataclasses.fields(kind))
        return {"type": _key_values(kind, optional), "metavar": "KEY=VALUE,..."}, (
            f"; keys: {keys}" + ("; 'none' turns it off" if optional else ""))
    path = {"metavar": "PATH"} if _is_path(many if many is not None else kind) else {}
    if many is None:
        return {"type": _converter(hint), **path}, ""
    # Union[X, Sequence[X]] takes one value as X; a plain sequence keeps its list.
    one_too = any(a is not type(None) and _sequence_item(a) is None for a in _union_args(hint))
    return {"nargs": "+", "type": _converter(many), **path, **({"action": _OneOrMany} if one_too else {})}, ""


def _converter(kind: Any) -> Callable[[str], Any]:
    """A function from the command line's text to a value of ``kind``."""
    kind, optional = _unwrap(kind)

    def convert(text: str) -> Any:
        if optional and text.lower() in _NONE:
            return None
        if kind is bool:
            if text.lower() not in _BOOLS:
                raise argparse.ArgumentTypeError(f"{text!r} is not a yes/no value (true, false, on, off, 1, 0)")
            return _BOOLS[text.lower()]
        if kind in (int, float):
            try:
                return kind(text)
            except ValueError:
                raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
        if _is_enum(kind):
            if text not in [m.value for m in kind]:
                raise argparse.ArgumentTypeError(f"{text!r} is not one of {', '.join(m.value for m in kind)}")
            return text
        if kind is str or _is_path(kind):
            return text
        try:  # a type with no command-line form of its own: JSON, or else the text itself
            return json.loads(text)
        except ValueError:
            return text

    convert.__name__ = getattr(kind, "__name__", "value")  # argparse names it in "invalid int value"
    return convert


def _key_values(cls: type, optional: bool) -> Callable[[str], Any]:
    hints = typing.get_type_hints(cls)
    keys = [f.name for f in dataclasses.fields(cls)]

    def parse(text: str) -> Any:
        if optional and text.lower() in _NONE:
            return None
        if text.lower() in _BOOLS:  # a group that is on (its defaults) or off
            return _BOOLS[text.lower()]
        values: dict[str, Any] = {}
        key = None
        for item in text.split(","):
            name, sep, value = item.partition("=")
            if not sep and key is not None and isinstance(values[key], list):
                values[key].append(_converter(_sequence_item(_unwrap(hints[key])[0]))(item.strip()))
                continue  # layers=7,8,9: the next value of the list
            if not sep or name.strip() not in keys:
                if not item.strip():
                    continue
                raise argparse.ArgumentTypeError(f"{item!r} is not KEY=VALUE with KEY one of {', '.join(keys)}")
            key = name.strip()
            item_type = _sequence_item(_unwrap(hints[key])[0])
            if item_type is None:
                values[key] = _converter(hints[key])(value.strip())
            else:  # a list: this value and each following one without '='
                values[key] = [_converter(item_type)(value.strip())] if value.strip() else []
        return KeyValues(cls, values)

    parse.__name__ = cls.__name__
    return parse


def _pairs_action(convert: Callable[[str], Any]) -> type[argparse.Action]:
    class Pairs(argparse.Action):
        """``NAME=VALUE ...`` -> {NAME: VALUE}; NAME may itself contain '=' (the last one splits)."""

        def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                     option_string: Optional[str] = None) -> None:
            pairs = dict(getattr(namespace, self.dest, None) or {})  # a repeated option adds to the first
            for item in values:
                name, sep, value = item.rpartition("=")
                if not sep or not name:
                    parser.error(f"{option_string}: {item!r} is not NAME=VALUE")
                try:
                    pairs[name] = convert(value)
                except argparse.ArgumentTypeError as e:
                    parser.error(f"{option_string}: {name}: {e}")
            setattr(namespace, self.dest, pairs)

    return Pairs


class _OneOrMany(argparse.Action):
    """For ``Union[X, Sequence[X]]``: one value is given as X, several as a list."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: Optional[str] = None) -> None:
        setattr(namespace, self.dest, values[0] if len(values) == 1 else list(values))


def _unwrap(hint: Any) -> tuple[Any, bool]:
    """(the type that the command line parses, whether None is allowed)."""
    args = _union_args(hint)
    if not args:
        return hint, False
    rest = [a for a in args if a is not type(None)]
    optional = len(rest) < len(args)
    enums = [a for a in rest if _is_enum(a)]
    many = [a for a in rest if _sequence_item(a) is not None]
    if enums:  # Union[Sampler, str]: the name of a member
        return enums[0], optional
    groups = [a for a in rest if dataclasses.is_dataclass(a)]
    if groups:  # Union[VaeTiling, bool]: its fields as KEY=VALUE,... (or true: its defaults)
        return groups[0], optional
    if many:  # Union[PathLike, Sequence[PathLike]]: one or several
        return many[0], optional
    if all(a is str or _is_path(a) for a in rest):
        return (os.PathLike if any(_is_path(a) for a in rest) else str), optional
    return (rest[0] if len(rest) == 1 else hint), optional


# ``X | None`` (Python 3.10+) is a types.UnionType, not a typing.Union.
_UNIONS = (typing.Union, getattr(types, "UnionType", typing.Union))


def _union_args(hint: Any) -> tuple[Any, ...]:
    return typing.get_args(hint) if typing.get_origin(hint) in _UNIONS else ()


def _sequence_item(hint: Any) -> Any:
    """X for Sequence[X], list[X] and tuple[X, ...]; None for anything else."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (collections.abc.Sequence, list) and args:
        return args[0]
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        return args[0]
    return None


def _is_enum(hint: Any) -> bool:
    return isinstance(hint, type) and issubclass(hint, enum.Enum)


def _is_path(hint: Any) -> bool:
    return hint is os.PathLike or typing.get_origin(hint) is os.PathLike or (
        bool(_union_args(hint)) and all(a is str or _is_path(a) for a in _union_args(hint))
    )


def _type_name(hint: Any) -> str:
    kind, optional = _unwrap(hint)
    item = _sequence_item(kind)
    name = f"{_type_name(item)} list, as 1,2,3" if item is not None else getattr(kind, "__name__", str(kind))
    return name + (" or none" if optional else "")


def _shown_default(default: Any) -> str:
    """The default as the help shows it, or "" where the help reads better without (None, off, empty)."""
    if default is None or default is dataclasses.MISSING or default is inspect.Parameter.empty:
        return ""
    if isinstance(default, bool):
        return "on" if default else ""
    if isinstance(default, enum.Enum):
        return str(default.value)
    return "" if default in ("", {}, ()) else str(default)
