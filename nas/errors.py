"""User-facing errors: the CLI prints ``error: <message>`` on one line and exits with code 2."""


class UsageError(Exception):
    """Bad input the user can fix (unknown name, malformed value, bad path, unreachable address)."""
