"""Run every benchmark (``make bench``) and print one table of all their figures, measured in this run.

    python benchmarks/run_all.py [--only dashboard,draw] [--skip training] [--out bench.md]

Each script runs alone in a subprocess, in the order below, with ``$LAYERSCOPE_BENCH_ROWS`` naming one temporary
file: every row a script reports through ``common.Table`` is appended there. At the end the rows of all scripts are
printed as one Markdown table grouped by script, between the machine's description and the load average. A script
that is missing is noted and skipped; one that fails is reported, the others still run, and the exit status is 1.
The scripts that take ``--run`` (``SHARE_RUN``) are given one Run, made here once from the shipped weights.
"""

from __future__ import annotations

import argparse
import datetime
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROWS_ENV, Row, Table, load_average, machine, markdown_table, read_rows
from dashboard import bench_run

SCRIPTS = [
    "training",
    "projections",
    "topk",
    "featurevis",
    "dashboard",
    "inside",
    "draw",
    "interventions",
    "interop",
    "safety",
    "cli",
    "any_model",
    "compare",
]
HERE = Path(__file__).resolve().parent
# scripts that take --run: they share one Run made from the shipped weights here, instead of making one each
# (dashboard.py makes its own through `layerscope demo`, which is one of its figures)
SHARE_RUN = {"projections", "inside", "draw", "interventions", "interop", "safety", "cli"}


def names(text: str | None) -> list[str]:
    """Script stems from ``a,b`` (``.py`` optional), each one of ``SCRIPTS``."""
    if not text:
        return []
    out = [n.strip().removesuffix(".py") for n in text.split(",") if n.strip()]
    unknown = [n for n in out if n not in SCRIPTS]
    if unknown:
        raise SystemExit(f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(SCRIPTS)}")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", help="run only these scripts (stems, comma separated)")
    parser.add_argument("--skip", help="run all but these scripts (stems, comma separated)")
    parser.add_argument("--out", type=Path, help="also write the final table to this file")
    args = parser.parse_args()
    only, skip = names(args.only), names(args.skip)
    chosen = [s for s in SCRIPTS if (not only or s in only) and s not in skip]

    started = datetime.datetime.now().astimezone()
    head = [
        f"layerscope benchmarks, {started:%Y-%m-%d %H:%M %Z}",
        f"machine: {machine()}",
        f"at the start: {load_average()}",
    ]
    print("\n".join(head), flush=True)
    print(f"scripts: {', '.join(chosen)}", flush=True)

    notes: list[Row] = []  # scripts not run or failed, as rows of the final table
    failed: list[str] = []
    with tempfile.TemporaryDirectory(prefix="layerscope-bench-rows-") as tmp:
        sink = Path(tmp) / "rows.jsonl"
        sink.touch()
        os.environ[ROWS_ENV] = str(sink)  # this script's own rows (the shared Run) go there too
        env = dict(os.environ)
        env["PYTHONUNBUFFERED"] = "1"
        try:
            shared: list[str] = []
            if SHARE_RUN & set(chosen):
                print("\n== the Run the scripts share, from the shipped weights", flush=True)
                shared = ["--run", str(bench_run(None, Table("run_all")).path)]
            for stem in chosen:
                script = HERE / f"{stem}.py"
                if not script.is_file():
                    print(f"\n== {stem}.py: not there (yet), skipped", flush=True)
                    notes.append(Row(stem, "(not run)", float("nan"), "", f"{script.name} does not exist"))
                    continue
                print(f"\n== {stem}.py  ({load_average()})", flush=True)
                start = time.perf_counter()
                extra = shared if stem in SHARE_RUN else []
                code = subprocess.call([sys.executable, str(script), *extra], env=env, cwd=HERE.parent)
                seconds = time.perf_counter() - start
                if code:
                    failed.append(stem)
                    print(f"== {stem}.py FAILED (exit status {code}) after {seconds:.0f} s", flush=True)
                    notes.append(Row(stem, "(failed)", float("nan"), "", f"exit status {code} after {seconds:.0f} s"))
                else:
                    print(f"== {stem}.py done in {seconds:.0f} s", flush=True)
        except KeyboardInterrupt:
            print("\ninterrupted: the table holds the rows measured so far", flush=True)
            failed.append("(interrupted)")
        rows = read_rows(sink)

    table = "\n".join(
        [
            *head,
            "",
            markdown_table([*rows, *notes], order=["run_all", *SCRIPTS]),
            "",
            f"at the end: {load_average()}; "
            f"{(datetime.datetime.now().astimezone() - started).total_seconds() / 60:.0f} min in all",
        ]
    )
    print("\n" + "=" * 100 + "\n" + table, flush=True)
    if args.out:
        args.out.write_text(table + "\n", encoding="utf-8")
        print(f"\n(written to {args.out})")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
