"""The one exception type users see: the CLI prints its message as one line, no traceback."""


class MemoptError(Exception):
    """A problem with the user's input or environment, with a message saying what to do next."""


def first_line(e: Exception) -> str:
    """The telling line of a framework's long error message (its first error-like line), shortened."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    telling = next((ln for ln in lines if "rror" in ln or "must" in ln or "ncompatible" in ln), lines[0] if lines else "")
    return telling[:200]


def some(names, what: str = "operations", shown: int = 3) -> str:
    """A list for one line: "a, b" or "58 global operations, e.g. a, b, c, ..." (a row's reason never
    lists every op)."""
    names = list(names)
    if len(names) <= shown:
        return ", ".join(names)
    return f"{len(names)} {what}, e.g. {', '.join(names[:shown])}, ..."
