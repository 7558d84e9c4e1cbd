import math

import pytest

from CSFNetLib.parallel import ordered_map


@pytest.mark.parametrize("workers", [1, 2])
def test_results_come_back_in_the_jobs_order(workers):
    jobs = [30, 1, 25, 2, 20, 3, 12]  # large and small jobs mixed: a later one often finishes first
    assert list(ordered_map(math.factorial, jobs, workers, ahead=3)) == [math.factorial(n) for n in jobs]


@pytest.mark.parametrize("workers", [1, 2])
def test_a_failed_job_raises_where_its_result_would_come(workers):
    results = ordered_map(math.sqrt, [4.0, -1.0, 9.0], workers)
    assert next(results) == 2.0
    with pytest.raises(ValueError, match="math domain error"):
        next(results)


def test_a_consumer_may_stop_early():
    results = ordered_map(math.factorial, range(100), 2)
    assert [next(results) for _ in range(3)] == [1, 1, 2]
    results.close()  # drops the jobs not started; nothing hangs


def _itk_threads(_job) -> int:
    import SimpleITK as sitk

    return sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()


def test_workers_share_the_cores_for_itk(monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 8)  # read in the parent, before the workers start
    assert set(ordered_map(_itk_threads, range(4), 2)) == {4}
