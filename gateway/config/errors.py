"""``SettingsError``, and pydantic's validation errors retold as the keys of a config file."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from pydantic import ValidationError
from pydantic_core import ErrorDetails


class SettingsError(ValueError):
    """A setting is unknown, of the wrong type or out of range. Raised at start, never while
    serving; the message names each bad setting (``cache.chunk_bytes: not a size: 'lots'``),
    so the CLI prints it without a traceback. ``problems``: (dotted key, what is wrong)."""

    def __init__(self, message: str, problems: Sequence[tuple[str, str]] = ()) -> None:
        super().__init__(message)
        self.problems = tuple(problems) or (("", message),)

    @classmethod
    def of(cls, problems: Sequence[tuple[str, str]]) -> SettingsError:
        """``key: what; other.key: what``."""
        return cls("; ".join(f"{where}: {what}" if where else what for where, what in problems), problems)


@contextmanager
def named_errors() -> Iterator[None]:
    """Turn a pydantic ``ValidationError`` into one ``SettingsError`` naming each bad key."""
    try:
        yield
    except ValidationError as exc:
        raise SettingsError.of([problem for error in exc.errors() for problem in _problems(error)]) from None


def _problems(error: ErrorDetails) -> list[tuple[str, str]]:
    where = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in error["loc"])
    cause = error.get("ctx", {}).get("error")
    if isinstance(cause, SettingsError):  # from a section's own check, or parse_size: named within
        return [(_join(where, inner), what) for inner, what in cause.problems]
    what = "unknown key" if error["type"] == "extra_forbidden" else str(cause or error["msg"])
    return [(where.lstrip("."), what)]  # our validators' own words, not "Value error, ..."


def _join(outer: str, inner: str) -> str:
    """``cache`` and ``chunk_bytes`` → ``cache.chunk_bytes``; ``labels`` and ``[0]`` → ``labels[0]``."""
    if outer and inner and not inner.startswith("["):
        inner = "." + inner
    return (outer + inner).lstrip(".")
