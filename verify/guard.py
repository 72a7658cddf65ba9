"""Guards around a candidate's calls: its inputs left as they were, and a time limit per call.

A candidate that overwrites an input array (``x *= 2`` inside its forward)
changes what every later check computes from: :func:`guarded` compares each
input with a copy taken before the call and fails the check that made it,
naming the input. A candidate that hangs on one input is stopped after
``limit`` seconds (on the main thread, where ``SIGALRM`` can interrupt it;
elsewhere the call is timed and failed afterwards) with a report that says so.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time

import numpy as np

from ._tree import is_array, tree_leaves
from .checks import CheckError

__all__ = ["CandidateTimeout", "guarded"]


class CandidateTimeout(CheckError):
    """The candidate took longer than the per-call limit on one input."""


@contextlib.contextmanager
def _time_limit(seconds, what):
    if seconds is None:
        yield
        return
    message = f"{what} took more than {seconds:g} s on one input (the per-call limit, " \
              "verify.check(..., timeout=...))"
    interruptible = threading.current_thread() is threading.main_thread() and hasattr(
        signal, "setitimer")
    start = time.perf_counter()
    if interruptible:
        def expire(signum, frame):
            raise CandidateTimeout(message)

        previous = signal.signal(signal.SIGALRM, expire)
        signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        if interruptible:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
    if time.perf_counter() - start > seconds:
        raise CandidateTimeout(message)


def _labelled(args, kwargs, names):
    """``(label, array)`` for every array leaf of the call's arguments."""
    labels = list(names) + [f"argument {i}" for i in range(len(names), len(args))]
    for label, value in [*zip(labels, args), *kwargs.items()]:
        for leaf in tree_leaves(value):
            yield label, leaf


def guarded(fn, what: str, to_numpy, limit: float | None, names=()):
    """``fn`` that fails when it modifies an input array or runs longer than ``limit`` seconds.

    ``names`` label the positional arguments in reports (the primals, then
    the cotangents); keyword arguments are labelled by their names.
    """
    def call(*args, **kwargs):
        before = [(label, leaf, np.array(to_numpy(leaf), copy=True))
                  for label, leaf in _labelled(args, kwargs, names) if is_array(leaf)]
        with _time_limit(limit, what):
            result = fn(*args, **kwargs)
        for label, leaf, value in before:
            if not np.array_equal(np.asarray(to_numpy(leaf)), value, equal_nan=True):
                raise CheckError(f"{what} modified its input {label} in place; a candidate "
                                 "must leave its inputs unchanged (copy before writing)")
        return result

    return call
