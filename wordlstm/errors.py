"""One exception type for problems the user can fix; the CLI prints it as one line."""


class UserError(Exception):
    """Bad input or a bad request: shown to the user without a traceback."""
