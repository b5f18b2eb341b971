"""The dashboard's background work (dashboard/jobs.py): a Runner's jobs report progress, stop when cancelled and free
their thread, keep an error as an error, and are not started again once they succeeded."""

from __future__ import annotations

import threading
import time

from layerscope.dashboard.jobs import Job, Runner

LIMIT = 60.0  # seconds a job may take to reach the state waited for, on a loaded machine


def wait_for(job: Job) -> Job:
    deadline = time.monotonic() + LIMIT
    while not job.finished and time.monotonic() < deadline:
        time.sleep(0.01)
    assert job.finished, job
    return job


def test_work_that_succeeded_is_not_started_again():
    runs, rereads = [], []
    runner = Runner("test", {}, after=lambda: rereads.append(1))

    def work(progress):
        progress("pca", 1, 1)
        runs.append(1)

    job = wait_for(runner.start(("fc2", "pca"), work))
    assert job.error is None and (job.task, job.percent) == ("pca", 100)
    assert runner.start(("fc2", "pca"), work) is job
    assert runs == [1] and rereads == [1]


def test_an_error_is_kept_and_asking_again_starts_afresh():
    runner = Runner("test", {})
    attempts = []

    def work(progress):
        attempts.append(1)
        if len(attempts) == 1:
            raise ValueError("no activations for fc9")

    failed = wait_for(runner.start(("fc9", "tsne"), work))
    assert failed.error == "ValueError: no activations for fc9" and not failed.cancelled
    again = wait_for(runner.start(("fc9", "tsne"), work))
    assert again is not failed and again.error is None and len(attempts) == 2


def test_cancelling_stops_the_work_and_frees_the_thread():
    runner = Runner("test", {})
    started = threading.Event()
    steps = []

    def endless(progress):
        started.set()
        while True:
            steps.append(1)
            progress("tsne", len(steps), 10**9)  # the core's progress report: where a cancel stops the work
            time.sleep(0.001)

    job = runner.start(("fc2", "tsne"), endless)
    assert started.wait(LIMIT)
    assert runner.busy and not runner.cancel(("fc1", "tsne"))  # nothing runs under that key
    assert runner.cancel(("fc2", "tsne"))
    wait_for(job)
    assert job.cancelled and job.error == "cancelled" and not runner.busy
    # the thread is free: the next job runs
    assert wait_for(runner.start(("fc1", "pca"), lambda progress: None)).error is None


def test_runners_sharing_a_thread_take_turns():
    projections = Runner("test", {})
    pca = Runner("test-pca", {}, share=projections)
    release, order = threading.Event(), []

    def first(progress):
        release.wait(LIMIT)
        order.append("projection")

    a = projections.start(("fc2", "tsne"), first)
    b = pca.start(("*", "pca"), lambda progress: order.append("pca"))
    time.sleep(0.2)  # ample time for the second job to run, were it not waiting for the thread
    assert not b.finished and order == []
    release.set()
    wait_for(a), wait_for(b)
    assert order == ["projection", "pca"]
