"""The one exception type audfer raises for bad input."""


class AudferError(ValueError):
    """Bad input: the message names the file, row/column and what was expected.

    The CLI prints it as one line and exits with status 2.
    """


class TrainingStopped(AudferError):
    """Training stopped on SIGINT/SIGTERM at a step boundary; the run folder resumes (``--resume``).

    ``exit_code`` is the shell convention for the signal (130 SIGINT, 143 SIGTERM)."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code
