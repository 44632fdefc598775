"""Ctrl-C and SIGTERM: one way to stop (a KeyboardInterrupt), remembered when swallowed, held during a publish."""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator

from edgecut.errors import Terminated

_interrupted: list[BaseException] = []  # what `terminate_as_interrupt`'s handlers raised, while active


def raise_if_interrupted() -> None:
    """Raise again an interrupt whose exception something swallowed.

    A signal handler's exception that lands in a `__del__` (or a callback that catches everything) is
    printed as "Exception ignored" and lost: without this, an export told to stop would go on and publish.
    """
    if _interrupted:
        raise _interrupted[0]


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM (timeout, CI cancellation, docker stop) into `Terminated`, a KeyboardInterrupt.

    Every `except KeyboardInterrupt` / `finally` cleanup then runs as for Ctrl-C. Only the first SIGTERM
    raises; later ones, while that cleanup runs, are ignored. Ctrl-C and SIGTERM are remembered, so that
    `staging` never publishes after one and the block still ends in it when its exception was swallowed.
    Outside the main thread (where Python cannot install handlers) it does nothing. The previous handlers
    are restored on exit.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_sigterm(signum: int, frame: object) -> None:
        if not _interrupted:
            _interrupted.append(Terminated(f"terminated by signal {signum}"))
            raise _interrupted[0]

    def on_sigint(signum: int, frame: object) -> None:
        _interrupted.append(KeyboardInterrupt())
        raise _interrupted[-1]

    previous_hook = sys.unraisablehook

    def quiet_about_our_stop(unraisable) -> None:
        # The swallowed stop is raised again (see raise_if_interrupted): its "Exception ignored" traceback
        # would only bury the one error line under a traceback the user cannot act on.
        if not any(unraisable.exc_value is stop for stop in _interrupted):
            previous_hook(unraisable)

    _interrupted.clear()
    sys.unraisablehook = quiet_about_our_stop
    previous_term = signal.signal(signal.SIGTERM, on_sigterm)
    previous_int = signal.getsignal(signal.SIGINT)
    own_sigint = previous_int is signal.default_int_handler  # leave a handler someone else installed alone
    if own_sigint:
        signal.signal(signal.SIGINT, on_sigint)
    try:
        yield
        raise_if_interrupted()
    finally:
        signal.signal(signal.SIGTERM, previous_term)
        if own_sigint:
            signal.signal(signal.SIGINT, previous_int)
        sys.unraisablehook = previous_hook
        _interrupted.clear()


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold Ctrl-C and SIGTERM during the final renames: the destination is then all old or all new."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
