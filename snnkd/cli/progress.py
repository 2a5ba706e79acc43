"""Progress bars with an ETA for the commands that are not training (``evaluate``, ``export``).

The convention of training's bar: on stderr, only on a terminal (so the workflow's log files
get the result lines, not bar redraws), and off with ``--no-progress``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

BAR_FORMAT = "{desc}: {n_fmt}/{total_fmt} [{elapsed}<{remaining} ETA, {rate_fmt}]"


def add_progress_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-progress", action="store_true", help="no progress bar (it is shown only on a terminal)")


def enabled(a: argparse.Namespace) -> bool:
    """Whether to draw a bar: not ``--no-progress``, and stderr is a terminal."""
    return not getattr(a, "no_progress", False) and sys.stderr.isatty()


def bar(iterable: Iterable[T], desc: str, show: bool, total: int | None = None, unit: str = "it") -> Iterator[T]:
    """``iterable`` itself, or wrapped in a tqdm bar on stderr (elapsed < remaining ETA)."""
    if not show:
        return iter(iterable)
    from tqdm import tqdm
    # redrawn after every item (mininterval 0): these loops have few, slow items (batches), and
    # tqdm's default 0.1 s minimum would show no estimate at all for a run of a few batches
    return iter(tqdm(iterable, desc=desc, total=total, unit=unit, leave=False, file=sys.stderr, bar_format=BAR_FORMAT,
                     mininterval=0, miniters=1))


class Steps:
    """A bar over the named steps of a command (``with Steps(names, show) as s: s.next("...")``)."""

    def __init__(self, total: int, desc: str, show: bool) -> None:
        self._bar = None
        if show:
            from tqdm import tqdm
            self._bar = tqdm(total=total, desc=desc, leave=False, file=sys.stderr, bar_format=BAR_FORMAT)
        self._started = False

    def next(self, what: str) -> None:
        """Mark the previous step done and show ``what`` as the one now running."""
        if self._bar is None:
            return
        if self._started:
            self._bar.update(1)
        self._started = True
        self._bar.set_description_str(what)

    def close(self, done: bool = True) -> None:
        """End the bar; ``done``: the last step finished (not an error)."""
        if self._bar is not None:
            if self._started and done:
                self._bar.update(1)
            self._bar.close()
            self._bar = None

    def __enter__(self) -> Steps:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close(exc[0] is None)
