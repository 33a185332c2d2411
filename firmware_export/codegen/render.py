"""Template files -> text, with every value escaped (or refused) at this one point.

Templates live in ``codegen/templates/``. A placeholder names the context its value lands in,
``${context:name}``, and the context decides how the value is written:

========== =================================================================================
``int``    an integer, in decimal (``int``), ``hex`` as ``0x...``, ``group`` with ``,`` groups
``ident``  a C identifier; anything else is refused
``cstr``   a C string literal, quotes included: printable ASCII kept, the rest octal-escaped
``comment``a quoted, escaped string that cannot end a ``//``, ``/* */`` or ``;`` comment
``ini``    a ``platformio.ini`` value: a short allow-list of characters, anything else refused
``code``   text the generators built from values that passed through the contexts above
========== =================================================================================

So a model file name, a label or a board-profile string can never inject code into a C
comment, a header or ``platformio.ini`` (PlatformIO runs ``extra_scripts`` as Python).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from functools import cache
from importlib import resources

from edge.errors import ExportError

_PLACEHOLDER = re.compile(r"\$\{(\w+):(\w+)\}")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# What a platformio.ini value may hold: no newline, ';' (comments), '$' (interpolation), '%'
# (configparser), '[' / ']' (sections) or quotes; '#' (a git ref in lib_deps) only where it
# cannot start an inline comment, i.e. not after whitespace.
_INI_VALUE = re.compile(r"(?:[A-Za-z0-9_.,:/@+=<>~\-]|#(?<!\s#)| (?!#))*")
_PRINTABLE = frozenset(range(0x20, 0x7F)) - {ord('"'), ord("\\"), ord("?")}


class Code(str):
    """Text that a generator assembled from already escaped values; inserted as it is."""


def c_string(value: str) -> str:
    """A C/C++ string literal: printable ASCII kept, every other byte of the UTF-8 as ``\\ooo``.

    ``?`` is escaped too (no trigraphs), and octal escapes are always three digits, so a
    following digit never extends one.
    """
    body = "".join(chr(b) if b in _PRINTABLE else f"\\{b:03o}" for b in value.encode("utf-8"))
    return f'"{body}"'


def comment_text(value: str) -> str:
    """A string shown inside any comment: as a C string literal, with ``*/`` broken up.

    No newline, no trailing backslash (line splice), no ``*/`` survive, so the comment ends
    where the template ends it.
    """
    return c_string(value).replace("*/", "*\\057")


def ini_value(value: str, field: str = "value") -> str:
    """A ``platformio.ini`` value from the allow-list, or an error naming the field.

    Raises:
        ExportError: the value holds a character that could change the file's meaning.
    """
    if not _INI_VALUE.fullmatch(value):
        raise ExportError(f"{field} (={value!r}) cannot go into platformio.ini: only letters, "
                          "digits, spaces and . , : / @ + = < > ~ - _ # (not after a space) "
                          "are allowed")
    return value


def identifier(value: str, field: str = "identifier") -> str:
    """A C identifier, or an error naming the field.

    Raises:
        ExportError: not [A-Za-z_][A-Za-z0-9_]* or reserved (starts with ``__``).
    """
    if not _IDENTIFIER.fullmatch(value) or value.startswith("__"):
        raise ExportError(f"{field} (={value!r}) is not a C identifier (letters, digits and _, "
                          "not starting with a digit or __)")
    return value


def _integer(value: object, style: str) -> str:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{style} placeholder needs an int, got {value!r}")
    return {"int": f"{value}", "hex": f"{value:#x}", "hex8": f"{value:#010x}",
            "group": f"{value:,}"}[style]


def _code(value: object) -> str:
    if not isinstance(value, Code):
        raise TypeError(f"code placeholder needs a Code value, got {type(value).__name__}")
    return str(value)


def _text(escape: Callable[[str], str]) -> Callable[[object], str]:
    def apply(value: object) -> str:
        if not isinstance(value, str):
            raise TypeError(f"text placeholder needs a str, got {value!r}")
        return escape(value)
    return apply


ESCAPES: dict[str, Callable[[object], str]] = {
    "int": lambda v: _integer(v, "int"),
    "hex": lambda v: _integer(v, "hex"),
    "hex8": lambda v: _integer(v, "hex8"),
    "group": lambda v: _integer(v, "group"),
    "ident": _text(identifier),
    "cstr": _text(c_string),
    "comment": _text(comment_text),
    "ini": _text(ini_value),
    "code": _code,
}


@cache
def template(name: str) -> str:
    """The text of ``codegen/templates/NAME``."""
    return (resources.files("firmware_export.codegen") / "templates" / name).read_text(
        encoding="utf-8")


def fill(text: str, values: Mapping[str, object]) -> str:
    """Replace every ``${context:name}`` in ``text`` with ``values[name]`` escaped for context.

    Raises:
        ExportError: a value is not allowed in its context (the message names it).
        KeyError, TypeError: a template and its generator disagree (a bug, not user input).
    """
    used = set()

    def replace(match: re.Match[str]) -> str:
        context, name = match.groups()
        used.add(name)
        value = values[name]
        if context in ("ini", "ident"):
            checker = ini_value if context == "ini" else identifier
            return checker(str(value), name) if isinstance(value, str) else ESCAPES[context](value)
        return ESCAPES[context](value)

    out = _PLACEHOLDER.sub(replace, text)
    unused = set(values) - used
    if unused:
        raise KeyError(f"values not used by the template: {', '.join(sorted(unused))}")
    return out


def render(name: str, **values: object) -> str:
    """Template ``name`` filled with ``values`` (see :func:`fill`)."""
    return fill(template(name), values)
