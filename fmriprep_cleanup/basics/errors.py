"""The one exception type the command line turns into a one-line message, and the exit codes, defined once."""

EXIT_OK = 0  # done (a dry run, or nothing to do, too)
EXIT_USAGE = 2  # bad input or refused, and nothing changed
EXIT_INCOMPLETE = 3  # done, but something was skipped, failed or could not be read
EXIT_FAILED = 4  # run POLICY: some dataset failed
EXIT_INTERRUPTED = 130  # stopped by Ctrl-C (128 + SIGINT, as shells report it)
EXIT_TERMINATED = 143  # stopped by SIGTERM (128 + SIGTERM)


class CleanupError(Exception):
    """Bad input or a refused request: said to the user in one line, never as a traceback."""
