"""The corpus makers' pool: one fresh process per task, dead workers named, nothing left over."""

import os
import signal
import time

import pytest

from speechlm.corpus.fresh import FreshProcesses, WorkerError


def test_each_task_runs_in_its_own_process_and_results_keep_their_order():
    with FreshProcesses(2, []) as pool:
        pids = [pool.submit(os.getpid).get() for _ in range(3)]
        assert len(set(pids)) == 3 and os.getpid() not in pids
        assert list(pool.imap(abs, [-3, 2, -1, 0, -7])) == [3, 2, 1, 0, 7]


def test_a_task_that_raises_or_dies_is_an_error_naming_it():
    with FreshProcesses(1, []) as pool:
        with pytest.raises(WorkerError, match=r"(?s)chunk 7 failed in its worker.*ValueError"):
            pool.submit(int, "seven", name="chunk 7").get()
        # a worker killed from outside (the OS, OOM) must not leave its caller waiting for ever
        with pytest.raises(WorkerError, match=r"chunk 8: worker process died \(exit code 3\)"):
            pool.submit(os._exit, 3, name="chunk 8").get()


def test_leaving_the_pool_kills_what_still_runs():
    with FreshProcesses(2, []) as pool:
        tasks = [pool.submit(time.sleep, 600) for _ in range(2)]
    # killed, not waited for: a finished sleep would have exited with 0
    assert [t.process.exitcode for t in tasks] == [-signal.SIGKILL] * 2
