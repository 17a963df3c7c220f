"""audfer's one exception family. Every error audfer raises for something outside the code (a file, a config, a
checkpoint, a video) is an ``AudferError``: the message names the file, row/column or key and what was expected;
the CLI prints it as one line and exits with status 2 (``TrainingStopped``: the signal's status).

``AudferError`` subclasses ``ValueError``, so code that caught ``ValueError`` keeps working.
"""

from __future__ import annotations

from pathlib import Path


class AudferError(ValueError):
    """Bad input of any kind; the base of the family."""


class InputError(AudferError):
    """A data file (AU CSV, label list, split file, frame folder, video, knowledge or pos-weight table) that is not
    what it should be."""


class ConfigError(AudferError):
    """A config key, value or combination of options that cannot work (names key, value and source)."""


class CheckpointError(AudferError):
    """A checkpoint that is missing, not a checkpoint, or does not fit the model."""


class CacheEntryError(AudferError):
    """A cache entry that is not whole (cut off, edited, foreign): caught where it is read, and the entry rebuilt
    from the source files; never reaches the user as an error."""


class NoFaceError(InputError):
    """No face was found in a video."""


class UnreadableFrameError(InputError):
    """A frame image that cannot be decoded, or a JPEG that is cut off or corrupt (``.path`` names it, ``.reason``
    says what is wrong with it)."""

    def __init__(self, path: Path, reason: str = "unreadable frame image") -> None:
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = path, reason


class TrainingStopped(AudferError):
    """Training stopped on SIGINT/SIGTERM at a step boundary; the run folder resumes (``--resume``).

    ``exit_code`` is the shell convention for the signal (130 SIGINT, 143 SIGTERM)."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code
