"""The one exception type audfer raises for bad input."""


class AudferError(ValueError):
    """Bad input: the message names the file, row/column and what was expected.

    The CLI prints it as one line and exits with status 2.
    """
