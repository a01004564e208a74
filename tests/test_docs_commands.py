"""The documentation's commands parse and its links resolve (issue 21).

A reader copies commands out of README.md, docs/ and CONTRIBUTING.md: every
``envelope`` command in a shell block there must be accepted by today's
argument parser (not run: the parser is built with the command line, as
``envelope`` builds it, and parse_args is called on the shlex-split words).
A flag renamed or removed in the code then fails here, naming the doc file
and line, instead of failing for the reader.  Every relative link in
README.md, CONTRIBUTING.md and docs/ must point to a file of the repository
(and, with ``#anchor``, to a heading of that file).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import shlex
from pathlib import Path

import pytest

from envelope.cli.main import build_parser

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *sorted((ROOT / "docs").glob("*.md"))]

#: Fenced blocks read as shell: no info string, or one of these.
SHELL_BLOCKS = {"", "sh", "bash", "shell", "console"}
#: Words that end one command of a pipeline or list and start the next.
SEPARATORS = {"|", "||", "&&", ";", "&"}
_FENCE = re.compile(r"^\s*(```+|~~~+)\s*([\w+-]*)")
_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def shell_lines(path: Path) -> list[tuple[int, str]]:
    """The logical lines of the shell blocks of *path*: continuations joined, prompts dropped, numbered."""
    lines: list[tuple[int, str]] = []
    fence: str | None = None
    shell = False
    pending: tuple[int, str] | None = None
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        match = _FENCE.match(raw)
        if fence is None:
            if match:
                fence, shell = match.group(1), match.group(2).lower() in SHELL_BLOCKS
            continue
        if match and raw.strip().startswith(fence) and not match.group(2):
            fence = None
            continue
        if not shell:
            continue
        text = raw.strip()
        if pending is None:
            text = text[2:] if text.startswith("$ ") else text
            pending = (number, "")
        start, sofar = pending
        if text.endswith("\\"):
            pending = (start, sofar + text[:-1] + " ")
            continue
        lines.append((start, sofar + text))
        pending = None
    return lines


def envelope_commands(line: str) -> list[list[str]]:
    """The arguments of each ``envelope`` command in one shell line (each stage of a pipeline or list)."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars="|&;<>")
    lexer.whitespace_split = True
    lexer.commenters = "#"
    words = list(lexer)
    commands: list[list[str]] = []
    stage: list[str] = []
    for word in [*words, ";"]:
        if word in SEPARATORS:
            if stage and Path(stage[0]).name == "envelope":
                commands.append(stage[1:])
            stage = []
        else:
            stage.append(word)
    return [_without_redirections(args) for args in commands]


def _without_redirections(args: list[str]) -> list[str]:
    """Drops ``> FILE``, ``2> FILE``, ``< FILE`` and ``2>&1``: the shell's, not envelope's."""
    kept: list[str] = []
    skip = False
    for index, word in enumerate(args):
        if skip:
            skip = False
            continue
        if word and set(word) <= set("<>&"):
            if kept and kept[-1].isdigit() and index > 0:
                kept.pop()
            skip = True
            continue
        kept.append(word)
    return kept


def documented_commands() -> list[tuple[str, list[str]]]:
    found = []
    for path in DOCS:
        for number, line in shell_lines(path):
            for args in envelope_commands(line):
                found.append((f"{path.relative_to(ROOT)}:{number}", args))
    return found


COMMANDS = documented_commands()


def test_the_docs_have_envelope_commands_to_check() -> None:
    """The extraction finds the commands (an empty list would make the next test pass vacuously)."""
    assert len(COMMANDS) > 100, COMMANDS
    where = {place.split(":")[0] for place, _ in COMMANDS}
    assert {"README.md", "docs/cli.md", "docs/local-kms.md", "docs/s3.md", "docs/aws.md"} <= where


def _parser(args: list[str], built: dict[str, argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """The parser ``envelope ARGS`` builds; one per command (``keys`` alone has dozens of subparsers)."""
    if not args or args[0].startswith("-"):  # --version, --as: as built for this very command line
        return build_parser(args)
    if args[0] not in built:
        built[args[0]] = build_parser(args[:1])
    return built[args[0]]


def test_every_documented_envelope_command_parses() -> None:
    rejected = []
    built: dict[str, argparse.ArgumentParser] = {}
    for place, args in COMMANDS:
        err = io.StringIO()
        try:
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                _parser(args, built).parse_args(args)
        except SystemExit as exc:  # --help and --version exit 0; argparse's refusals exit non-zero
            if exc.code not in (0, None):
                message = err.getvalue().strip().splitlines()
                rejected.append(f"{place}: envelope {shlex.join(args)}\n    {message[-1] if message else exc.code}")
    assert not rejected, "documented commands the parser refuses:\n" + "\n".join(rejected)


def test_a_refused_command_is_reported_with_its_file_and_line(tmp_path: Path) -> None:
    """The checker itself: a bad flag in a doc's shell block is found, with its line."""
    doc = tmp_path / "doc.md"
    doc.write_text("text\n\n```sh\n$ cat x | envelope encrypt-file x \\\n    --no-such-flag && ls\n```\n")
    [(number, line)] = shell_lines(doc)
    assert number == 4
    [args] = envelope_commands(line)
    assert args == ["encrypt-file", "x", "--no-such-flag"]
    with pytest.raises(SystemExit) as exc, contextlib.redirect_stderr(io.StringIO()):
        build_parser(args).parse_args(args)
    assert exc.value.code != 0


def test_redirections_and_comments_are_not_arguments() -> None:
    line = "envelope decrypt-file a.envelope -o - 2>err > /dev/null   # to the null device"
    assert envelope_commands(line) == [["decrypt-file", "a.envelope", "-o", "-"]]


def _slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    anchors: set[str] = set()
    fenced = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if _FENCE.match(line):
            fenced = not fenced
        elif not fenced and line.startswith("#"):
            anchors.add(_slug(line.lstrip("#")))
    return anchors


@pytest.mark.parametrize("path", [p for p in DOCS if p.exists()], ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(path: Path) -> None:
    broken = []
    fenced = False
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if _FENCE.match(line):
            fenced = not fenced
            continue
        if fenced:
            continue
        for target in _LINK.findall(line):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
                continue
            file_part, _, anchor = target.partition("#")
            linked = (path.parent / file_part).resolve() if file_part else path
            if not linked.exists():
                broken.append(f"{path.relative_to(ROOT)}:{number}: {target} (no such file)")
            elif anchor and linked.suffix == ".md" and anchor not in _anchors(linked):
                broken.append(f"{path.relative_to(ROOT)}:{number}: {target} (no such heading)")
    assert not broken, "\n".join(broken)
