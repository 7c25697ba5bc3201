"""The one exception type that the command line turns into a one-line message and exit code 2."""


class UsageError(Exception):
    """Bad input from the user: the message names the problem and the fix, on one line."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a run: the message says what was kept and how to continue."""
