"""The one exception type users see: the CLI prints its message as one line, no traceback."""


class MemoptError(Exception):
    """A problem with the user's input or environment, with a message saying what to do next."""
