"""numba's ``njit`` where numba is installed, else a decorator that leaves a function as it is
(so every compiled kernel also runs, slower, as plain Python); ``HAVE_NUMBA`` says which."""

from __future__ import annotations

try:
    from numba import njit

    HAVE_NUMBA = True
except ImportError:  # pragma: no cover - exercised only where numba is missing
    HAVE_NUMBA = False

    def njit(*args, **kwargs):  # type: ignore[no-redef]
        def wrap(function):
            return function

        return wrap(args[0]) if args and callable(args[0]) else wrap


__all__ = ["HAVE_NUMBA", "njit"]
