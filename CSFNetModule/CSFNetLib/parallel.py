"""Jobs shared among worker processes, their results back in order, a bounded number in flight."""

import itertools
import multiprocessing
import os
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Callable, Deque, Iterable, Iterator, TypeVar

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
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
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
