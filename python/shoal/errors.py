"""shoal's exception classes and the one table mapping shoal::ErrorKind to them.

Every error raised by the C++ core arrives as one of these; the extension
calls :func:`_from_kind` (and nothing else) to build it. Each class also
derives from the closest built-in exception, so ``except ValueError`` etc.
keep working.
"""

__all__ = [
    "Error",
    "InvalidArgumentError",
    "DTypeError",
    "UnsupportedError",
    "OutOfMemoryError",
    "DeviceError",
    "InternalError",
]


class Error(Exception):
    """Base class of every shoal error. ``kind`` names the shoal::ErrorKind."""

    kind = "error"


class InvalidArgumentError(Error, ValueError):
    """Bad input from the caller: a file, a shape, a value."""

    kind = "invalid_argument"


class DTypeError(InvalidArgumentError, TypeError):
    """An array of the wrong element type (also a TypeError)."""

    kind = "dtype"


class UnsupportedError(Error, NotImplementedError):
    """Well-formed, but shoal cannot do it (an operator, a dtype)."""

    kind = "unsupported"


class OutOfMemoryError(Error, MemoryError):
    """An allocation failed."""

    kind = "out_of_memory"


class DeviceError(Error, RuntimeError):
    """A device failed or is unavailable."""

    kind = "device"


class InternalError(Error, RuntimeError):
    """A bug in shoal."""

    kind = "internal"


# shoal::ErrorKind (include/shoal/error.hpp) value -> exception class.
_BY_KIND = {
    1: InvalidArgumentError,
    2: UnsupportedError,
    3: OutOfMemoryError,
    4: DeviceError,
    5: InternalError,
    6: DTypeError,
}


def _from_kind(kind, message):
    """Builds the exception for a shoal::ErrorKind value (called from C++)."""
    return _BY_KIND.get(kind, InternalError)(message)
