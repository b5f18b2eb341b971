"""What the benchmarks share: one row format for ``make bench``'s table, medians, and the machine's description.

Every benchmark reports through a ``Table``: each row is printed as it is measured and, when ``run_all.py`` runs the
script, also appended to the file named by ``$LAYERSCOPE_BENCH_ROWS`` so that one table of all figures can be
printed at the end. Ratios are rows too (unit ``x``), always of two figures measured in the same run.
"""

from __future__ import annotations

import importlib.metadata
import json
import math
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "ROWS_ENV",
    "Row",
    "Table",
    "load_average",
    "machine",
    "markdown_table",
    "median_seconds",
    "percentile",
    "read_rows",
]

ROWS_ENV = "LAYERSCOPE_BENCH_ROWS"
_PACKAGES = ("torch", "numpy", "scikit-learn", "openTSNE", "umap-learn", "dash", "plotly", "captum", "playwright")


@dataclass(frozen=True)
class Row:
    section: str  # the benchmark script
    figure: str  # what was measured
    value: float
    unit: str  # "s", "ms", "images/s", "MB", "x" (a ratio), "errors" (a count of them), "" (a score or a count)
    note: str = ""

    def value_text(self) -> str:
        v = self.value
        if math.isnan(v):
            return "-"
        if self.unit == "x":
            return f"{v:.2f}x"
        if self.unit in ("images/s", "errors"):
            return f"{v:,.0f} {self.unit}"
        if self.unit in ("ms", "MB"):
            return f"{v:,.1f} {self.unit}" if abs(v) < 10 else f"{v:,.0f} {self.unit}"
        if self.unit == "s":
            if abs(v) < 1:
                return f"{v:.3f} s"
            return f"{v:.2f} s" if abs(v) < 10 else f"{v:,.1f} s"
        if abs(v) < 10:  # a share or a score
            text = f"{v:.3f}"
        else:
            text = f"{v:,.0f}" if v.is_integer() else f"{v:.4g}"
        return f"{text} {self.unit}".strip()


class Table:
    """The rows one benchmark script reports, printed as they come."""

    def __init__(self, section: str) -> None:
        self.section = section
        self.rows: list[Row] = []
        self._sink = os.environ.get(ROWS_ENV)

    def add(self, figure: str, value: float, unit: str, note: str = "") -> Row:
        row = Row(self.section, figure, float(value), unit, note)
        self.rows.append(row)
        print(f"  {figure:<62} {row.value_text():>16}  {note}", flush=True)
        if self._sink:
            with open(self._sink, "a", encoding="utf-8") as f:
                f.write(json.dumps(asdict(row)) + "\n")
        return row

    def ratio(self, figure: str, numerator: float, denominator: float, note: str = "") -> Row:
        return self.add(figure, numerator / denominator if denominator else float("nan"), "x", note)

    def skip(self, figure: str, why: str) -> Row:
        """A figure that could not be measured on this machine, with the reason printed in its place."""
        return self.add(figure, float("nan"), "", f"skipped: {why}")

    def percentiles(self, figure: str, values: list[float], unit: str, note: str = "") -> tuple[Row, Row]:
        """Two rows, ``<figure>, p50`` and ``<figure>, p95``, of ``values`` (already in ``unit``)."""
        where = f"n = {len(values)}" + (f"; {note}" if note else "")
        return (
            self.add(f"{figure}, p50", percentile(values, 0.5), unit, where),
            self.add(f"{figure}, p95", percentile(values, 0.95), unit, where),
        )


def median_seconds(work: Callable[[], Any], repeats: int, warmup: int = 0) -> tuple[float, list[float]]:
    """Median wall-clock seconds of ``work()`` over ``repeats`` calls, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        work()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0-1) of ``values`` by nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> str:
    """One line: cores, CPU, Python and the versions of the libraries the figures depend on."""
    versions = []
    for name in _PACKAGES:
        try:
            versions.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            pass
    return (
        f"{os.cpu_count()} cores ({_cpu_model()}, {platform.machine()}), Python {platform.python_version()}, "
        + ", ".join(versions)
    )


def load_average() -> str:
    """The 1, 5 and 15 minute load averages: other work on the machine moves every figure."""
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f} (1, 5, 15 min)"


def read_rows(path: str | os.PathLike[str]) -> list[Row]:
    """The rows ``Table`` appended to ``path`` (``$LAYERSCOPE_BENCH_ROWS``), in the order they were measured."""
    p = Path(path)
    if not p.is_file():
        return []
    return [Row(**json.loads(line)) for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_table(rows: Iterable[Row], order: Iterable[str] = ()) -> str:
    """One Markdown table ``| section | figure | value | note |`` of ``rows``, grouped by section: the sections in
    ``order`` first (as given), then any other in the order they first appear."""
    rows = list(rows)
    sections = [s for s in order if any(r.section == s for r in rows)]
    sections += [s for s in dict.fromkeys(r.section for r in rows) if s not in sections]
    lines = ["| section | figure | value | note |", "|---|---|---:|---|"]
    for section in sections:
        for r in rows:
            if r.section == section:
                lines.append(f"| {_cell(section)} | {_cell(r.figure)} | {_cell(r.value_text())} | {_cell(r.note)} |")
    return "\n".join(lines)
