"""Telling a listener's bind failure from other crashes, through trio's exception groups."""

from __future__ import annotations

__all__ = ["sole_os_error"]


def sole_leaf(exc: BaseException) -> BaseException:
    """``exc``, or what it wraps as the only leaf of nested exception groups."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def sole_os_error(exc: BaseException) -> OSError | None:
    """The OSError that ``exc`` is, or wraps as the only leaf of nested exception groups.

    A listener that cannot bind (port in use, address not available) raises an OSError
    that reaches the caller wrapped once per nursery it crossed. That one error is worth a
    one-line message; anything more (several errors, or another kind) is a real crash and
    gets None, so the caller re-raises it with its traceback.

    Args:
        exc: what a nursery (or the call starting a listener) raised.
    """
    exc = sole_leaf(exc)
    return exc if isinstance(exc, OSError) else None
