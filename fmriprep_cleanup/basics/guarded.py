"""The one way to read a file the tool did not write: rule files, policies, dataset_description.json, run
configs, subject reports, manifests, journals, emissions files.

The tool runs as root over folders many people can write to, so a planted file must not stall, crash or
mislead it. Every read here:

* opens with O_NONBLOCK (a FIFO cannot hang the open) and, where a link is not expected, O_NOFOLLOW;
* accepts regular files only (checked with fstat on the open handle: a FIFO, a device, /dev/zero behind a
  symlink are refused), and at most a size cap per kind of file;
* parses YAML without anchors or aliases (no alias bomb) and JSON, YAML and TOML to a bounded depth.

Every failure is one CleanupError naming the file (and the line, where there is one).
"""

from __future__ import annotations

import errno
import json
import os
import re
import stat
import sys
from collections.abc import Iterator
from itertools import accumulate
from typing import Any

import yaml

from .errors import CleanupError

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the same parser, as a package
    import tomli as tomllib

MIB = 1024 * 1024
MAX_DEPTH = 64  # nesting of JSON, YAML and TOML values; real files use a handful of levels
SIZE_CAPS = {  # bytes read at most, per kind of file
    "rule file": 1 * MIB,
    "pipeline description": 1 * MIB,
    "regeneration spec": 1 * MIB,
    "policy file": 1 * MIB,
    "dataset description": 1 * MIB,
    "run config": 4 * MIB,
    "report": 64 * MIB,
    "manifest": 4096 * MIB,
    "archive record": 1 * MIB,
    "emissions file": 256 * MIB,
    "partial result": 1024 * MIB,
}


class BrokenFileError(CleanupError):
    """A file we read is not what it should be (not a regular file, too big, not parseable)."""


def open_regular(path: str, kind: str, follow_links: bool = True) -> int:
    """A file descriptor of the regular file ``path`` (never blocking on a FIFO or a device); BrokenFileError
    naming what it is otherwise."""
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | (0 if follow_links else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            what = "a symlink loop" if follow_links else "a symlink (not followed)"
            raise BrokenFileError(f"{path}: {what}, not a {kind}") from None
        raise BrokenFileError(f"cannot read {path}: {_reason(exc)}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise BrokenFileError(f"{path}: not a regular file ({_file_type(st.st_mode)}), so not a {kind}")
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_bytes(path: str, kind: str, follow_links: bool = True, cap: int | None = None) -> bytes:
    """The content of a regular file, at most its kind's size cap; BrokenFileError otherwise."""
    cap = cap if cap is not None else SIZE_CAPS[kind]
    fd = open_regular(path, kind, follow_links)
    try:
        size = os.fstat(fd).st_size
        if size > cap:
            raise BrokenFileError(f"{path}: {size:,} bytes is too big for a {kind} (at most {cap:,})")
        chunks = []
        left = cap + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        data = b"".join(chunks)
        if len(data) > cap:
            raise BrokenFileError(f"{path}: more than {cap:,} bytes is too big for a {kind}")
        return data
    except OSError as exc:
        raise BrokenFileError(f"cannot read {path}: {_reason(exc)}") from None
    finally:
        os.close(fd)


def read_lines(path: str, kind: str, line_cap: int) -> Iterator[tuple[int, str]]:
    """The lines of a regular file with their numbers, streamed (a file of any length, no line longer than
    ``line_cap`` bytes); BrokenFileError names the line that is too long or not UTF-8."""
    fd = open_regular(path, kind)
    with os.fdopen(fd, "rb") as stream:
        number = 0
        while True:
            try:
                line = stream.readline(line_cap + 1)
            except OSError as exc:
                raise BrokenFileError(f"cannot read {path}: {_reason(exc)}") from None
            if not line:
                return
            number += 1
            if len(line) > line_cap:
                raise BrokenFileError(f"{path}:{number}: a line longer than {line_cap:,} bytes is not a {kind}'s")
            try:
                yield number, line.decode("utf-8")
            except UnicodeDecodeError:
                raise BrokenFileError(f"{path}:{number}: not UTF-8 text") from None


def _reason(exc: OSError) -> str:
    return "permission denied" if exc.errno == errno.EACCES else (exc.strerror or str(exc))


def _file_type(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a directory"), (stat.S_ISLNK, "a symlink")):
        if test(mode):
            return name
    return "not a file"


def read_text(path: str, kind: str, follow_links: bool = True, cap: int | None = None) -> str:
    """UTF-8 text of a regular file; a byte that is not UTF-8 is reported with its line."""
    data = read_bytes(path, kind, follow_links, cap)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise BrokenFileError(f"{path}:{line}: not UTF-8 text (byte 0x{data[exc.start]:02x})") from None


# --- JSON --------------------------------------------------------------------------------------------------

JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"?', re.DOTALL)  # a string literal; an unterminated one runs to the end
NOT_BRACKET = re.compile(r"[^\[\]{}]+")


def json_depth(text: str) -> int:
    """The deepest nesting of [ and { in JSON text (strings skipped): checked before parsing, so a deeply
    nested file is refused instead of exhausting the parser's recursion. Regular expressions do the scanning
    (a loop over every character took 0.2 ms per run config: seconds on a thousand subjects)."""
    brackets = NOT_BRACKET.sub("", JSON_STRING.sub("", text))
    return max(0, max(accumulate(1 if char in "[{" else -1 for char in brackets), default=0))


def too_deep(text: str) -> bool:
    """Nested more than MAX_DEPTH levels: counted only where there are enough brackets for it (a run config has
    a few dozen; counting them is a hundredth of the scan)."""
    return text.count("[") + text.count("{") > MAX_DEPTH and json_depth(text) > MAX_DEPTH


def parse_json(text: str, path: str) -> Any:
    if too_deep(text):
        raise BrokenFileError(f"{path}: nested more than {MAX_DEPTH} levels deep")
    try:
        return json.loads(text, parse_constant=_no_constant)
    except ValueError as exc:
        line = getattr(exc, "lineno", None)
        raise BrokenFileError(f"{path}{f':{line}' if line else ''}: not valid JSON: {getattr(exc, 'msg', exc)}") from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def load_json(path: str, kind: str, follow_links: bool = True) -> Any:
    return parse_json(read_text(path, kind, follow_links), path)


# --- TOML --------------------------------------------------------------------------------------------------

def load_toml(path: str, kind: str, follow_links: bool = True) -> dict[str, Any]:
    text = read_text(path, kind, follow_links)
    if too_deep(text) and too_deep(re.sub(r"(?m)^\s*\[+[^\]\n]*\]+\s*$", "", text)):  # table headers are not nesting
        raise BrokenFileError(f"{path}: nested more than {MAX_DEPTH} levels deep")
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise BrokenFileError(f"{path} is not valid TOML: {exc}") from None
    except RecursionError:
        raise BrokenFileError(f"{path}: nested too deeply") from None


# --- YAML with line numbers, no aliases, bounded depth -----------------------------------------------------

class LinedMapping(dict):
    """A YAML mapping that remembers the line of itself and of each key."""

    line: int = 0
    key_lines: dict[str, int]


class WrittenInt(int):
    """An integer read from YAML that remembers how it was written: YAML reads the label 03 as the number 3,
    and the message that says so should show the 03."""

    written: str = ""
    line: int = 0


class _GuardedLoader(yaml.SafeLoader):
    """SafeLoader that refuses anchors and aliases (an alias bomb expands a 1 KB file into gigabytes), limits
    nesting, and keeps line numbers on mappings."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            raise yaml.MarkedYAMLError(problem="anchors and aliases (& and *) are not allowed here; write the values out",
                                       problem_mark=event.start_mark)
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise yaml.MarkedYAMLError(problem=f"nested more than {MAX_DEPTH} levels deep",
                                           problem_mark=event.start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _construct_mapping(loader: _GuardedLoader, node: yaml.MappingNode) -> LinedMapping:
    mapping = LinedMapping()
    mapping.line = node.start_mark.line + 1
    mapping.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        if not isinstance(key, str):
            raise yaml.MarkedYAMLError(problem=f"keys must be text, not {key!r}", problem_mark=key_node.start_mark)
        if key in mapping:
            raise yaml.MarkedYAMLError(problem=f"duplicate key {key!r}", problem_mark=key_node.start_mark)
        mapping[key] = loader.construct_object(value_node, deep=True)
        mapping.key_lines[key] = line
    return mapping


def _construct_int(loader: _GuardedLoader, node: yaml.ScalarNode) -> WrittenInt:
    number = WrittenInt(loader.construct_yaml_int(node))
    number.written = node.value
    number.line = node.start_mark.line + 1
    return number


def label_problem(key: str, value: Any) -> str | None:
    """Why ``value`` cannot be a subject or session label read from YAML (None if it can): labels are text, and
    an unquoted 03 is the number 3."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    written = getattr(value, "written", str(value))
    return f'{key}: {written} is read by YAML as the number {value}, not a label; write it in quotes: "{written}"'


_GuardedLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_GuardedLoader.add_constructor("tag:yaml.org,2002:int", _construct_int)


QUOTED_VALUE = re.compile(r"""^\s*(?:-\s+)?(?:[^\s:#'"][^:#]*:\s+)?(["'])""")  # a value or item opening a quote


def unclosed_quote(text: str, before: int) -> int | None:
    """The first line before line ``before`` whose value opens a quote the line does not close (a YAML error
    after it is then reported where the next quote is), or None."""
    for number, line in enumerate(text.splitlines()[:max(before - 1, 0)], start=1):
        opening = QUOTED_VALUE.match(line)
        if opening is None:
            continue
        rest, quote = line[opening.end():], opening.group(1)
        closed = re.search(r'(?<!\\)"' if quote == '"' else r"'(?!')", rest.replace("''", ""))
        if closed is None:
            return number
    return None


def load_yaml(path: str, kind: str) -> Any:
    """Parse a YAML file (rule file, policy); every failure is one BrokenFileError naming file and line."""
    text = read_text(path, kind)
    try:
        return yaml.load(text, Loader=_GuardedLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else 0
        opened = unclosed_quote(text, line)
        if opened is not None:  # YAML reads on to the next quote and fails there: say where the quote opened
            raise BrokenFileError(f"{path}:{opened}: a quote opened on this line is not closed on it (YAML then "
                                  f"fails at line {line}: {exc.problem or 'invalid YAML'})") from None
        raise BrokenFileError(f"{path}:{line}: {exc.problem or 'invalid YAML'}") from None
    except yaml.YAMLError as exc:
        raise BrokenFileError(f"{path}: invalid YAML: {exc}") from None
    except RecursionError:
        raise BrokenFileError(f"{path}: nested too deeply") from None
