"""The errors sparsetorch raises on purpose, and how one reads as a single line.

An error is *ours* when it reports input the user can fix: a bad argument, a missing or malformed
file, an incompatible store. Those are the documented types below; the command line prints each
as `error: <message>` on one line and exits with status 2. Any other exception is a bug in
sparsetorch: the command line prints its traceback and asks for a report.

| type | raised for |
|---|---|
| `SparsetorchError` (and subclasses, e.g. `bench.BenchError`) | problems with no better built-in type |
| `ValueError` (incl. `json.JSONDecodeError`, `UnicodeDecodeError`) | a bad value, a malformed file |
| `TypeError` | an argument or option of the wrong kind, an unknown option |
| `KeyError` | an unknown registered name (the message suggests the closest ones) |
| `OSError` (incl. `FileNotFoundError`, `data.DataNotFoundError`) | a missing, unreadable or unwritable path |
| `safetensors.SafetensorError` | a checkpoint that is not valid safetensors |

New error classes subclass `SparsetorchError` (and, where one fits, the built-in type callers
already catch, as `BenchError` is also a `RuntimeError`).
"""

from __future__ import annotations

from safetensors import SafetensorError

__all__ = ["USER_ERRORS", "SparsetorchError", "one_line"]


class SparsetorchError(Exception):
    """Base of sparsetorch's own error classes: input the user must fix, named in the message."""


USER_ERRORS: tuple[type[Exception], ...] = (
    SparsetorchError,
    ValueError,
    TypeError,
    KeyError,
    OSError,
    SafetensorError,
)


def one_line(err: BaseException) -> str:
    """The message of `err` on one line (a KeyError's own text, without the quotes `str` adds)."""
    text = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
    if isinstance(err, OSError) and err.filename is not None and str(err.filename) not in text:
        text = f"{text}: {err.filename}"
    return " ".join(text.split()) or type(err).__name__
