"""Waiting for a condition with a deadline: the one polling loop the lab, the drills and the bench share.

Standard library only: the post-deploy hook in AWS Lambda may carry it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class WaitTimeout(TimeoutError):
    """``condition`` did not hold within ``timeout`` seconds; the message names what was waited for."""

    def __init__(self, what: str, timeout: float, state: str = ""):
        self.what, self.timeout, self.state = what, timeout, state
        super().__init__(f"timed out after {timeout:.0f} s waiting for {what}" + (f" ({state})" if state else ""))


def wait_until(
    what: str,
    condition: Callable[[], T | None],
    timeout: float,
    interval: float = 0.5,
    *,
    ignore: tuple[type[Exception], ...] = (),
    check: Callable[[], None] | None = None,
    state: Callable[[], str] | None = None,
) -> T:
    """Poll ``condition`` every ``interval`` s until it returns something true, and return that.

    Polling (instead of one blocking call) is how every wait here works: a cluster that is forming, an
    instance changing status or a process starting offers nothing to block on. ``ignore`` lists exceptions
    that count as "not yet" (e.g. a moment without a leader); ``check`` runs between polls and may raise to
    stop waiting early (a process that exited); ``state`` describes what there is instead, for the error.
    Raises :class:`WaitTimeout` naming ``what`` once ``timeout`` has passed; ``condition`` is asked at least once.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = condition()
        except ignore:
            result = None
        if result:
            return result
        if time.monotonic() > deadline:
            raise WaitTimeout(what, timeout, state() if state else "")
        if check is not None:
            check()
        time.sleep(interval)


def holds_within(
    what: str,
    condition: Callable[[], object],
    timeout: float,
    interval: float = 0.5,
    ignore: tuple[type[Exception], ...] = (),
) -> bool:
    """:func:`wait_until` for a check that reports rather than fails (a drill's): True when it held in time."""
    try:
        wait_until(what, condition, timeout, interval, ignore=ignore)
    except WaitTimeout:
        return False
    return True
