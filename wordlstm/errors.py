"""One exception type for problems the user can fix; the CLI prints it as one line."""

import re
from collections.abc import Callable


class UserError(Exception):
    """Bad input or a bad request: shown to the user without a traceback.

    A message names the library's fields in backticks (`top_p`); `say_fields` turns them
    into the words of whoever shows it (the CLI's flags, the API's JSON fields)."""


_FIELD = re.compile(r"`([a-z][a-z0-9_]*)`")


def say_fields(message: str, say: Callable[[str], str] = lambda name: name) -> str:
    """`message` with each backticked field name replaced by `say(name)`."""
    return _FIELD.sub(lambda m: say(m.group(1)), message)
