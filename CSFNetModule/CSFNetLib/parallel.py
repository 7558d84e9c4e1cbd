"""Jobs shared among worker processes, their results back in order, a bounded number in flight."""

import ctypes
import itertools
import multiprocessing
import os
import sys
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Callable, Deque, Iterable, Iterator, TypeVar

_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # glibc's mallopt parameters (malloc.h)

Job = TypeVar("Job")
Result = TypeVar("Result")


def default_workers(most: int = 4) -> int:
    """Processes to read scans with: the machine's cores, at most `most` (reading is memory-hungry)."""
    return max(1, min(most, os.cpu_count() or 1))


def ordered_map(function: Callable[[Job], Result], jobs: Iterable[Job], workers: int,
                ahead: int = 0) -> Iterator[Result]:
    """function(job) for every job, yielded in the jobs' order.

    With `workers` > 1 the jobs run in that many spawned processes (`function` must be importable and
    its jobs and results picklable), at most `ahead` (default 4 x workers) at a time: results wait for
    the consumer, not pile up. With one worker everything runs here, one job at a time.
    """
    if workers <= 1:
        yield from map(function, jobs)
        return
    todo = iter(jobs)
    context = multiprocessing.get_context("spawn")  # not fork: the parent may hold threads (torch, ITK)
    threads = max(1, (os.cpu_count() or 1) // workers)
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_prepare_worker, initargs=(threads,)) as pool:
        first = itertools.islice(todo, ahead or 4 * workers)
        pending: Deque[Future] = deque(pool.submit(function, job) for job in first)
        try:
            while pending:
                result = pending.popleft().result()
                pending.extend(pool.submit(function, job) for job in itertools.islice(todo, 1))
                yield result
        finally:  # the consumer stopped early or a job failed: drop what has not started
            for future in pending:
                future.cancel()


def _prepare_worker(threads: int) -> None:
    """A worker's share of the cores for ITK's filters (each would otherwise run as many threads as the
    machine has cores, and the workers would crowd each other out), and its memory kept for reuse."""
    import SimpleITK as sitk

    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(threads)
    _keep_freed_memory()


def _keep_freed_memory() -> None:
    """Where the C library is glibc: serve large blocks from the heap and keep what is freed, instead of
    mapping each scan's buffer afresh from the system and handing it back (the pages of every new scan
    were zeroed and faulted in again: 16 whole-chest scans took 7.3 s to read instead of 6.3 s). A worker
    holds one patient's scans at a time, so its memory stays what its largest patient needs."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return
    mallopt(_M_MMAP_MAX, 0)
    mallopt(_M_TRIM_THRESHOLD, 1 << 30)
