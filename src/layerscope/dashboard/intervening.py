"""What the Intervene view asks of the model: the test set re-evaluated with units switched off, one image's
probabilities before and after, attribution maps and their model-randomisation check.

Whole-test-set work (an ablation's evaluation, a randomisation check) runs in the interventions' own thread
(`jobs.Runner`) with a model of its own; its last results are kept, keyed by what was asked, for every page. The model
side (torch, ablation, attribution) is imported where first used, as in state.py.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from functools import cached_property, lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np

from layerscope.dashboard.jobs import Job, Runner
from layerscope.progress import ProgressFn

if TYPE_CHECKING:
    from torch import nn

    from layerscope.ablation import Ablation, AblationResult
    from layerscope.attribution import Attribution, RandomisationStep
    from layerscope.dashboard.state import DashboardState

__all__ = ["KEPT", "Interventions"]

KEPT = 24  # results kept; one let go is computed again when asked for again


class Interventions:
    def __init__(self, state: DashboardState) -> None:
        self._state = state
        self._lock = threading.Lock()
        self.jobs: dict[tuple[str, str], Job] = {}
        self._results: dict[tuple[str, str], Any] = {}
        self._runner = Runner("interventions", self.jobs)

    def _result(self, key: tuple[str, str], work: Callable[[ProgressFn], Any], again: bool = True) -> tuple[Job, Any]:
        """(job, result or None): ``work``'s result, computed in the interventions' thread on first ask. A job that
        was cancelled or failed is started again only when ``again`` (the user asked again, not a poll)."""
        results = self._results
        with self._lock:
            if key in results:
                return self.jobs[key], results[key]
            job = self.jobs.get(key)
            if job is not None and job.stopped and not again:
                return job, None
            if job is not None and job.finished and job.error is None:  # its result was let go
                del self.jobs[key]
            while len(results) >= KEPT:
                oldest = next(iter(results))
                del results[oldest]
                self.jobs.pop(oldest, None)

        def store(progress: ProgressFn) -> None:
            results[key] = work(progress)

        job = self._runner.start(key, store)
        return job, results.get(key)

    @cached_property
    def _model(self) -> nn.Module:
        """A model of its own for ablation passes (only the interventions' thread uses it): seconds of hooked passes
        must not hold the shared model's lock."""
        return self._state.run.load_model("cpu")

    def ablation(self, ablations: Sequence[Ablation], again: bool = True) -> tuple[Job, AblationResult | None]:
        """The test set re-evaluated with ``ablations`` (started in the background on first ask): (job, result). One
        cancelled or failed is started again only when ``again``."""
        ablations = tuple(ablations)

        from layerscope.ablation import evaluate_ablation

        def work(progress: ProgressFn) -> AblationResult:
            return evaluate_ablation(self._state.run, ablations, model=self._model, progress=progress)

        return self._result(_ablation_key(ablations), work, again)

    def cancel_ablation(self, ablations: Sequence[Ablation]) -> bool:
        """Ask the re-evaluation with ``ablations`` to stop; False when none runs. Its result would be kept for every
        page: as with a projection (`DashboardState.cancel_projection`), every page waiting on it sees it cancelled
        and may start it again."""
        return self._runner.cancel(_ablation_key(tuple(ablations)))

    def ablated_probs(self, key: Any, ablations: Sequence[Ablation]) -> tuple[np.ndarray, np.ndarray] | None:
        """(K,) class probabilities of image ``key`` before and after ``ablations``; None for a key without pixels."""
        from layerscope.ablation import predict_ablated

        state = self._state
        try:
            pixels = state.pixels(key)
        except Exception:
            return None
        with state.model_lock:
            before = predict_ablated(state.model, pixels, [])[0]
            after = predict_ablated(state.model, pixels, tuple(ablations))[0]
        return before, after

    def attribution(self, key: int | str, method: str, target: int | None, layer: str | None) -> Attribution:
        """One attribution map of image ``key`` (an index or "mean:k"); ``target`` None: the predicted class."""
        key = self._state.image_key(key)
        if isinstance(key, str) and key.startswith("draw:"):  # a drawing changes under its key: never cached
            return self._attribution(key, method, target, layer)
        return self._cached_attribution(key, method, target, layer)

    def _attribution(self, key: int | str, method: str, target: int | None, layer: str | None) -> Attribution:
        from layerscope.attribution import attribute

        state = self._state
        pixels = state.pixels(key)[0]
        with state.model_lock:
            return attribute(state.model, pixels, method, target, layer)

    @lru_cache(maxsize=128)  # noqa: B019 - one per dashboard, as long as the server runs
    def _cached_attribution(self, key: int | str, method: str, target: int | None, layer: str | None) -> Attribution:
        return self._attribution(key, method, target, layer)

    def randomisation(
        self, key: int | str, method: str, target: int | None, layer: str | None
    ) -> tuple[Job, list[RandomisationStep] | None]:
        """The model-randomisation check of one attribution (started in the background on first ask)."""
        from layerscope.attribution import randomisation_check

        state = self._state
        pixels = state.pixels(key)[0]

        def work(progress: ProgressFn) -> list[RandomisationStep]:
            with state.model_lock:  # the check copies the model; only the trained model's map runs on it
                return randomisation_check(state.model, pixels, method, target, layer=layer, progress=progress)

        # the pixels' hash in the key: a drawing's pixels change under the same key
        what = f"{key!r}|{hash(state.image_array(key).tobytes())}|{method}|{target}|{layer}"
        return self._result(("randomisation", what), work)


def _ablation_key(ablations: Sequence[Ablation]) -> tuple[str, str]:
    """The job key of re-evaluating the test set with ``ablations``."""
    return ("ablation", "; ".join(f"{a.layer}:{','.join(map(str, a.units))}*{a.scale!r}" for a in ablations))
