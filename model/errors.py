"""One exception base and one exit-code table for every orcaport command.

Every error the project raises on purpose derives from `OrcaportError`; its class says which exit
code a command returns for it (`exit_code`), and its str() is one line naming what is wrong and the
fix. Runtime errors about bad data also derive from ValueError (callers catching ValueError keep
working). A command's `main` maps an `OrcaportError` to its code with `exit_code_for` /
`report_error`, never with a number of its own.

Exit codes (the README's table is this one):

    0    OK           done; every check passed
    1    FAILED       the command ran and its answer is no: parity failed at a stage, a negative
                      control was missed, a variant failed, some files could not be processed
    2    USAGE        bad command line (argparse's own code; nothing else uses 2)
    3    BAD_INPUT    an input is unusable: model folder, weights, config, references, tolerances,
                      audio, report, card config -- the message names which and the fix
    4    REFUSED      a gate refused: the parity report does not allow a publish
    5    OUTPUT       outputs could not be written (reports, staging, --output); nothing was replaced
    6    REMOTE       the Hub refused or could not be reached
    130  INTERRUPTED  Ctrl-C (128 + SIGINT, as the shell reports it)
"""

from __future__ import annotations

import sys
from enum import IntEnum
from typing import ClassVar, TextIO


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1
    USAGE = 2
    BAD_INPUT = 3
    REFUSED = 4
    OUTPUT = 5
    REMOTE = 6
    INTERRUPTED = 130


class OrcaportError(Exception):
    """Base of every error orcaport raises on purpose. Subclasses set `exit_code`."""

    exit_code: ClassVar[ExitCode] = ExitCode.BAD_INPUT


class UsageError(OrcaportError, ValueError):
    """Bad command-line input that argparse itself could not see (exit 2, as argparse's own)."""

    exit_code = ExitCode.USAGE


class InputError(OrcaportError, ValueError):
    """A named input (file, folder) is missing or unusable (exit 3)."""


class FailedError(OrcaportError):
    """The command ran and its answer is no (exit 1)."""

    exit_code = ExitCode.FAILED


class RefusedError(OrcaportError):
    """A gate refused (exit 4)."""

    exit_code = ExitCode.REFUSED


class OutputError(OrcaportError):
    """Outputs could not be written; nothing was replaced (exit 5)."""

    exit_code = ExitCode.OUTPUT


class RemoteError(OrcaportError):
    """The Hub refused or could not be reached (exit 6)."""

    exit_code = ExitCode.REMOTE


def exit_code_for(error: BaseException) -> ExitCode:
    """The exit code a command returns for `error`: an OrcaportError's own, INTERRUPTED for Ctrl-C.
    Anything else (an OSError included: reading and writing both raise it, so the caller wraps it
    in the error that says which) is not mapped: TypeError."""
    if isinstance(error, OrcaportError):
        return error.exit_code
    if isinstance(error, KeyboardInterrupt):
        return ExitCode.INTERRUPTED
    raise TypeError(f"{type(error).__name__} is not an orcaport error") from error


def one_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def report_error(prog: str | None, error: BaseException, stream: TextIO | None = None) -> ExitCode:
    """Print `prog: error: <one line>` (or `prog: interrupted`; without prog the line starts at
    `error:`) to stderr; return the error's exit code."""
    code = exit_code_for(error)
    message = "interrupted" if code is ExitCode.INTERRUPTED else f"error: {one_line(error)}"
    print(f"{prog}: {message}" if prog else message, file=stream or sys.stderr)
    return code
