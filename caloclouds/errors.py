"""Errors raised for bad user input.

Every problem a user can fix (a missing file, a wrong dataset, NaN energies, a bad config key) is
raised as :class:`CaloCloudsError` or a subclass, with a message that names the file (and the
dataset or branch) and what is wrong. The CLI prints these without a traceback.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["CaloCloudsError", "InputFileError", "ConfigError", "Terminated"]


class CaloCloudsError(Exception):
    """Base class of all errors a user can act on."""


class InputFileError(CaloCloudsError, ValueError):
    """A file could not be read, or its content breaks the expected format.

    Args:
        path: the file.
        problem: what is wrong, in words.
        where: the dataset, branch or key inside the file, if any.
    """

    def __init__(self, path: str | Path, problem: str, *, where: str | None = None) -> None:
        self.path = str(path)
        problem = " ".join(str(problem).split())  # one line, even when wrapping a multi-line library message
        self.problem = problem
        self.where = where
        location = f"{self.path}[{where}]" if where else self.path
        super().__init__(f"{location}: {problem}")


class ConfigError(CaloCloudsError, ValueError):
    """A configuration value or file is invalid."""


class Terminated(KeyboardInterrupt):
    """The process received SIGTERM; raised like Ctrl-C so that every writer drops its temporary file."""
