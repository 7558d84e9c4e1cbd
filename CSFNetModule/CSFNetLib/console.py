"""What the command-line front ends (`csfnet`, the batch script, `main.py`) show on the terminal.

The library logs (logger "CSFNetLib"), warns (Python warnings) and reports progress through callbacks;
here those become one line each on stderr and tqdm bars. A bar redraws itself in a terminal and stays
silent when stderr is a file, where the log lines alone tell the story. Errors a user can fix are worded with --options.
"""

import contextlib
import logging
import sys
import warnings
from typing import TYPE_CHECKING, Callable, Iterator, Optional

from .errors import UsageError, command_line_option

if TYPE_CHECKING:
    from tqdm import tqdm

LIBRARY_LOGGER = "CSFNetLib"


@contextlib.contextmanager
def messages_on_stderr(program: str, level: int = logging.INFO) -> Iterator[None]:
    """While the block runs, the library's log messages are `program: message` lines on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"{program}: %(message)s"))
    logger = logging.getLogger(LIBRARY_LOGGER)
    previous = logger.level, warnings.showwarning
    logger.addHandler(handler)
    logger.setLevel(level)

    def one_line(message, category, filename, lineno, file=None, line=None) -> None:
        """A warning as one line, without the source line Python would print under it."""
        sys.stderr.write(f"{program}: warning: {message}\n")

    warnings.showwarning = one_line
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous[0])
        warnings.showwarning = previous[1]


def progress_bar(total: int, description: str, unit: str = "it") -> "tqdm":
    """A bar on stderr that redraws in a terminal and writes nothing to a file."""
    from tqdm import tqdm  # not needed by the batch script inside Slicer, which draws no bars

    return tqdm(total=total, desc=description, unit=unit, file=sys.stderr, disable=None, dynamic_ncols=True)


def counting_bar(description: str, unit: str) -> Callable[[int, int], None]:
    """A `progress(done, total)` callback drawing one bar (made on the first call, closed on the last)."""
    bar: Optional[tqdm] = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = progress_bar(total, description, unit)
        bar.update(done - bar.n)
        if done >= total:
            bar.close()

    return progress


def worded(error: Exception) -> str:
    """What went wrong, for the command line: a `UsageError` names its --options to change."""
    return error.worded(command_line_option) if isinstance(error, UsageError) else str(error)
