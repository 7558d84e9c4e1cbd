"""Progress reports and cancellation for long runs (the Slicer panel's progress bar and Cancel button)."""

from typing import Callable

#: progress(step, fraction done): called between steps; it may raise `Cancelled` to stop the run.
Progress = Callable[[str, float], None]


class Cancelled(Exception):
    """Raised by a progress callback to stop a run; the run stops before it writes anything."""


def no_progress(step: str, fraction: float) -> None:
    """The default: nobody is listening."""
