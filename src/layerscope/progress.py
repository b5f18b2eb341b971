"""How the core reports progress: a plain callable, so the library never prints (the CLI draws the bars)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

__all__ = ["Cancelled", "ProgressFn", "in_parts", "no_progress", "stoppable"]

# progress(task, done, total): ``task`` names the work ("train epoch 2/6", "capture", "pca conv2"), ``done`` of
# ``total`` units are finished. Called with done == 0 when a task starts and done == total when it ends.
ProgressFn = Callable[[str, int, int], None]


def no_progress(task: str, done: int, total: int) -> None:
    """The default: report nothing."""


class Cancelled(Exception):  # noqa: N818 - what happened, as the user said it
    """The work was stopped on request (`stoppable`); nothing it would have written was written."""


def stoppable(progress: ProgressFn, stop: Callable[[], bool]) -> ProgressFn:
    """``progress`` that raises ``Cancelled`` as soon as ``stop()`` is true: every progress report of the core is a
    point where a long computation can be stopped (a t-SNE reports every 25 iterations, a PCA every pass). As
    openTSNE's callbacks stop its optimisation by returning True, but by an exception, so that a stopped t-SNE
    leaves no half-optimised embedding behind: the Run is written only by work that finished."""

    def report(task: str, done: int, total: int) -> None:
        if stop():
            raise Cancelled(task)
        progress(task, done, total)

    return report


def in_parts(progress: ProgressFn, task: str, parts: Sequence[int]) -> list[ProgressFn]:
    """One ``task`` done in consecutive parts of ``parts`` units each (their weights: steps, say): a ``ProgressFn``
    per part, which reports the part's own (done, total) to ``progress`` as one (done, sum(parts)) of ``task``.

    One bar that only rises: three optimisations reported each on its own scale read 0 -> 91 -> 35 -> 100%. A part's
    task name is not passed on (a name per part would be a bar per part in the CLI); a part that reports less than
    it did before, or an earlier part reporting late, does not move the bar back. Every report is passed on, so a
    `stoppable` ``progress`` still stops the work at each one.
    """
    sizes = [int(p) for p in parts]
    if any(s < 0 for s in sizes):
        raise ValueError(f"parts are sizes, at least 0; got {sizes}")
    total = sum(sizes)
    starts = [sum(sizes[:i]) for i in range(len(sizes))]
    reached = [0]  # the overall done reported so far

    def part(i: int) -> ProgressFn:
        def report(_task: str, done: int, of: int) -> None:
            share = min(max(done / of, 0.0), 1.0) if of > 0 else 1.0
            reached[0] = max(reached[0], starts[i] + int(sizes[i] * share))
            progress(task, reached[0], total)

        return report

    return [part(i) for i in range(len(sizes))]
