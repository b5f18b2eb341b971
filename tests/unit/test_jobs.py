"""The dashboard's background work (dashboard/jobs.py): a Runner's jobs report progress, stop when cancelled and free
their thread, keep an error as an error, and are not started again once they succeeded; every view writes a job's
status line the same way; and each kind of work a page can cancel stops at the core's next progress report."""

from __future__ import annotations

import json
import shutil
import threading
import time

import pytest

from layerscope.dashboard import draw, inside, interventions
from layerscope.dashboard.jobs import Job, Runner, status_line, stopped_line
from layerscope.dashboard.state import DashboardState
from layerscope.run import Run

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


def test_a_queued_job_cancelled_ends_at_once_and_never_runs():
    runner = Runner("test", {})
    release, ran = threading.Event(), []
    first = runner.start(("fc2", "tsne"), lambda progress: release.wait(LIMIT))
    queued = runner.start(("*", "pca"), lambda progress: ran.append("pca"))
    assert runner.cancel(("*", "pca"))
    assert queued.finished and queued.cancelled and queued.error == "cancelled"  # not waiting for the t-SNE
    release.set()
    wait_for(first)
    wait_for(runner.start(("fc1", "pca"), lambda progress: ran.append("next")))
    assert ran == ["next"]


# -- the status line every view writes --------------------------------------------------------------------------------


def test_a_status_line_says_what_the_job_does_how_far_it_is_and_when_it_ends():
    doing = "computing the top images of every unit over 70,000 images"
    assert status_line(doing, None) == f"{doing}… 0% (queued)"  # asked for, not started
    job = Job("*", "topk")
    job.report("pca conv1", 0, 10)  # the work it waits on is the task it names
    assert status_line(doing, job) == f"{doing}… 0% (pca conv1)"
    job.report("topk", 0, 100)
    job.task_started -= 20  # twenty seconds for the first quarter
    job.report("topk", 25, 100)
    text = status_line(doing, job)
    assert text.startswith(f"{doing}… 25% (topk), about 1 min ") and text.endswith(" s left"), text
    assert text == f"{doing}… {job.describe()}"
    job.cancel = True  # asked to stop: it says so until its next progress report stops it
    assert status_line(doing, job) == f"{doing}… stopping at 25%"
    job.cancelled, job.error, job.finished = True, "cancelled", True
    assert job.stopped
    again = "press 'Compute top images' to start it again."
    assert stopped_line("the search for the top images", job, again) == (
        "the search for the top images was cancelled; press 'Compute top images' to start it again."
    )
    failed = Job("conv2", "unit 3", error="RuntimeError: out of memory", finished=True)
    text = stopped_line("the feature visualisation", failed)
    assert text == "the feature visualisation failed: RuntimeError: out of memory"


def test_every_view_writes_its_jobs_status_line_the_same_way(state):
    job = Job("*", "pca")
    job.report("pca conv1, conv2", 0, 40)
    job.task_started -= 8
    job.report("pca conv1, conv2", 10, 40)
    eta = job.describe()
    assert "left" in eta
    lines = [
        str(draw._pca_status(job).children),
        str(inside._job_text(state, job, "computing the top images", "the top images", "Compute top images").children),
        str(interventions._job_text(job, "re-evaluating 1,000 test images", "the re-evaluation").children),
    ]
    assert lines == [
        f"computing the PCA of the conv layers… {eta}",
        f"computing the top images… {eta}",
        f"re-evaluating 1,000 test images… {eta}",
    ]


# -- cancelling each kind of work the pages can cancel: the core's next progress report stops it -------------------


@pytest.fixture
def state(tiny_run, tmp_path):
    """The dashboard's state on a copy of the tiny Run without what these jobs compute (other tests may have stored
    top-k, feature visualisations or the conv layers' PCA in the shared Run)."""
    path = shutil.copytree(tiny_run.path, tmp_path / "run")
    manifest = json.loads((path / "manifest.json").read_text())
    manifest.pop("topk", None)
    (path / "manifest.json").write_text(json.dumps(manifest))
    shutil.rmtree(path / "topk", ignore_errors=True)
    shutil.rmtree(path / "featurevis", ignore_errors=True)
    for info in Run(path).layers:
        if info.kind == "conv":
            for found in (path / "features").glob(f"{info.name}.pca_*.npy"):
                found.unlink()
    return DashboardState(Run(path))


@pytest.fixture
def held(monkeypatch):
    """Holds the first job that reports progress at that first report until ``release`` is set: the test cancels it
    there, and the job's next report (the core's own) is where it must stop. ``reports``: every (task, done, total)."""
    reached, release, reports = threading.Event(), threading.Event(), []
    report = Job.report

    def holding(job, task, done, total):
        report(job, task, done, total)
        reports.append((task, done, total))
        if not reached.is_set():
            reached.set()
            release.wait(LIMIT)

    monkeypatch.setattr(Job, "report", holding)
    yield reached, release, reports
    release.set()


def cancel_when_held(held, cancel) -> None:
    reached, release, _ = held
    assert reached.wait(LIMIT), "the job never reported progress"
    assert cancel()
    release.set()


def test_cancelling_top_k_stops_it_writes_nothing_and_waits_to_be_asked_again(state, held):
    assert state.topk("fc2") is None  # the first ask starts it
    job = state.unit_job("*", "topk")
    cancel_when_held(held, state.cancel_topk)
    wait_for(job)
    assert job.cancelled and job.done < job.total and "topk" not in state.run.reopen().manifest
    assert status_line("computing", job).startswith("computing… ")  # reads as the views show it
    assert state.topk("fc2") is None and state.unit_job("*", "topk") is job  # a poll does not start it again
    again = wait_for(state.start_topk())  # the user asking again does, in the thread the cancel freed
    assert again.error is None and state.topk("fc2") is not None


def test_cancelling_a_feature_visualisation_stops_it_and_writes_nothing(state, held):
    job = state.start_featurevis("fc2", 3)
    cancel_when_held(held, lambda: state.cancel_featurevis("fc2", 3))
    wait_for(job)
    assert job.cancelled and job.task.startswith("featurevis fc2") and job.done < job.total
    assert state.featurevis("fc2", 3) is None and not (state.run.path / "featurevis").exists()
    assert not state.cancel_featurevis("fc2", 3)  # nothing runs any more
    # the thread is free: the next piece of work in it runs to the end
    assert wait_for(state.start_topk()).error is None


def test_cancelling_an_ablations_re_evaluation_stops_it_and_a_poll_does_not_start_it_again(state, held):
    from layerscope.ablation import Ablation

    ablations = [Ablation("conv2", (0, 1, 2), 0.0)]
    job, result = state.interventions.ablation(ablations)
    assert result is None
    cancel_when_held(held, lambda: state.interventions.cancel_ablation(ablations))
    wait_for(job)
    assert job.cancelled and job.task == "ablation" and job.done < job.total
    assert state.interventions.ablation(ablations, again=False) == (job, None)  # a poll shows it cancelled
    again, _ = state.interventions.ablation(ablations)  # the user asking again starts it afresh
    assert again is not job and wait_for(again).error is None
    assert state.interventions.ablation(ablations, again=False)[1] is not None


def test_cancelling_the_conv_layers_pca_stops_it_within_a_pass(state, monkeypatch):
    missing = state.missing_pca()
    assert missing == state.conv_layers and missing
    reports = []
    report = Job.report

    def cancelling(job, task, done, total):  # the user presses Cancel once two batches of the pass are done
        report(job, task, done, total)
        reports.append((done, total))
        if done == 2:
            assert state.cancel_conv_pca()

    monkeypatch.setattr(Job, "report", cancelling)
    job = wait_for(state.start_conv_pca())
    assert job.cancelled and job.task.startswith("pca ") and state.missing_pca() == missing
    # reported batch by batch (1,024 images each) within the pass, and stopped at the report after the cancel
    batches = -(-state.n // 1024)
    assert batches > 2 and job.total % batches == 0 and reports == [(0, job.total), (1, job.total), (2, job.total)]
    # asked again, it starts afresh in the thread the cancel freed (and is stopped here: it takes a minute)
    again = state.start_conv_pca()
    assert again is not job and state.cancel_conv_pca()
    assert wait_for(again).cancelled and state.missing_pca() == missing
