"""The dashboard's one way to run background work: a ``Runner`` runs each piece of work in its own thread, one at a
time, as a ``Job`` that reports its progress (percent, task, ETA), can be cancelled (the core's progress callback
stops the work at its next report, as openTSNE's callbacks do) and keeps an error as an error.

A job is keyed ``(layer, what)`` and lives in a dict the pages read to show progress and to know when to stop
polling; two runners may share one dict (the projections and the drawings' placements: one poller for both) and
each still has its own thread. Work that succeeded is not started again; work that failed or was cancelled is, when
asked for again.

Every page writes a job's status line the same way, `status_line` while it runs ("computing the t-SNE of fc2… 42%
(tsne), about 1 min 10 s left": what the page asked for, then `Job.describe`) and `stopped_line` once it failed or
was cancelled, so a projection, a top-k, a feature visualisation and an ablation read alike.

Why not Dash's background callbacks (``background=True`` with ``progress=`` and ``cancel=``): what projections, top-k
and feature visualisations compute belongs to the Run and is shared by every session. Here there is one job per key,
started by whichever page asks first and found by every other page that asks (deduplicated across sessions), and it
writes into the Run in this process, which then reads the Run again (``after``). Dash's background callbacks need a
diskcache or Celery manager, run each call in a process of its own that would load the model and the Run again, and
key a result by the callback (its source, arguments and trigger), not by the Run: a second page asking for the same
t-SNE while the first computes it would start a second one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from layerscope.progress import Cancelled, ProgressFn, stoppable

__all__ = ["Job", "Runner", "WorkFn", "status_line", "stopped_line"]

WorkFn = Callable[[ProgressFn], Any]


@dataclass(eq=False)  # hashed by identity: a page's Scratch remembers the jobs it has shown
class Job:
    """Work in the background: a projection (layer, method), a feature visualisation (layer, "unit 7"), top-k."""

    layer: str
    method: str
    done: int = 0
    total: int = 1
    task: str = "queued"
    error: str | None = None
    finished: bool = False
    ended: float = 0.0  # time.monotonic() when it finished: a page opened later has nothing to wait for
    cancel: bool = False  # asked to stop: the next progress report stops it (progress.stoppable)
    cancelled: bool = False  # it stopped on request (then `error` says so too)
    task_started: float = field(default_factory=time.monotonic)  # when `task` began, for its ETA
    future: Future[None] | None = field(default=None, repr=False)  # its place in the runner's queue

    @property
    def stopped(self) -> bool:
        """Whether it ended without a result: it failed or was cancelled (`error` says which)."""
        return self.finished and self.error is not None

    @property
    def percent(self) -> int:
        return int(100 * self.done / max(self.total, 1))

    def report(self, task: str, done: int, total: int) -> None:
        """A progress report (``ProgressFn``): a new task restarts the clock its ETA is measured on."""
        if task != self.task:
            self.task_started = time.monotonic()
        self.task, self.done, self.total = task, done, total

    @property
    def eta(self) -> float | None:
        """Seconds left in the current task at its pace so far; None until a tenth of it is done (too early to say)."""
        if self.finished or self.total <= 0 or self.done < 0.1 * self.total or self.done >= self.total:
            return None
        elapsed = time.monotonic() - self.task_started
        return elapsed / self.done * (self.total - self.done)

    def describe(self) -> str:
        """ "42% (tsne), about 1 min 10 s left" for a status line."""
        text = f"{self.percent}% ({self.task})"
        eta = self.eta
        if eta is not None:
            text += f", about {_duration(eta)} left"
        return text


def status_line(doing: str, job: Job | None) -> str:
    """A running job's status line, the same in every view: ``doing`` (what the page asked for, "computing the t-SNE of
    fc2 over 70,000 images"), then how far it is (`Job.describe`): its percent, the task it is on (the work it waits
    on, as the PCA a t-SNE starts from, or "queued" behind other work) and, once it can be estimated, the time left.
    No job yet reads as queued; a job asked to stop says so until its next progress report stops it."""
    if job is None:
        return f"{doing}… 0% (queued)"
    if job.cancel and not job.finished:
        return f"{doing}… stopping at {job.percent}%"
    return f"{doing}… {job.describe()}"


def stopped_line(what: str, job: Job, again: str = "") -> str:
    """The status line of a job that ended without a result: "``what`` was cancelled" or "``what`` failed: <error>",
    then ``again``, how to start it again ("choose the method again to compute it")."""
    text = f"{what} was cancelled" if job.cancelled else f"{what} failed: {job.error}"
    return f"{text}; {again}" if again else text


def _duration(seconds: float) -> str:
    """12 s, 1 min 5 s, 1 h 3 min."""
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s"
    return f"{s // 3600} h {s % 3600 // 60} min"


class Runner:
    """Background work of one kind, in a thread of its own (named ``name``), each piece a ``Job`` in ``jobs``.

    ``after``: called in that thread once a piece of work succeeded (the state re-reads its Run, which the work may
    have written into)."""

    def __init__(
        self,
        name: str,
        jobs: dict[tuple[str, str], Job],
        after: Callable[[], None] | None = None,
        share: Runner | None = None,
    ) -> None:
        """``share``: run in that runner's thread instead, one piece of work at a time with its own."""
        self.jobs = jobs
        self._after = after
        self._lock = threading.Lock()
        self.pool: ThreadPoolExecutor = (
            share.pool if share is not None else ThreadPoolExecutor(1, thread_name_prefix=f"layerscope-{name}")
        )

    def start(self, key: tuple[str, str], work: WorkFn) -> Job:
        """Run ``work(progress)`` unless it is running or has succeeded; returns its job."""
        with self._lock:
            job = self.jobs.get(key)
            if job is not None and (not job.finished or job.error is None):
                return job
            job = Job(*key)
            self.jobs[key] = job

        def run() -> None:
            try:
                if job.cancel:  # cancelled while it was queued, in the moment it got the thread
                    raise Cancelled(job.task)
                work(stoppable(job.report, lambda: job.cancel))
                if self._after is not None:
                    self._after()
            except Cancelled:
                job.cancelled, job.error = True, "cancelled"
            except Exception as e:  # shown where the result would be; the page stays usable
                job.error = f"{type(e).__name__}: {e}"
            finally:
                job.ended = time.monotonic()
                job.finished = True

        job.future = self.pool.submit(run)
        return job

    def cancel(self, key: tuple[str, str]) -> bool:
        """Ask the running job ``key`` to stop; False when none runs. A job still queued (behind another in the
        thread) ends at once; a running one stops at the core's next progress report (`progress.stoppable`), which
        leaves the thread free for the next job."""
        job = self.jobs.get(key)
        if job is None or job.finished:
            return False
        job.cancel = True
        if job.future is not None and job.future.cancel():  # never started: `run` will not end it
            job.cancelled, job.error = True, "cancelled"
            job.ended = time.monotonic()
            job.finished = True
        return True

    @property
    def busy(self) -> bool:
        return any(not job.finished for job in list(self.jobs.values()))
