"""The one exception type the CLI turns into a one-line message and exit code 2."""


class CleanupError(Exception):
    """Bad input or a refused request: said to the user in one line, never as a traceback."""
