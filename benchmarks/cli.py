"""How fast the command line answers: ``layerscope --version``, ``--help`` and ``info`` on the demo's Run, each the
median wall time of ``--repeats`` fresh processes, beside the same commands of baseline commits (checked out into
temporary git worktrees and run in the same session, with the same Python and packages).

    python benchmarks/cli.py [--run DIR] [--baseline REV ...] [--repeats 5]

Also, from ``python -X importtime``, what each version imports for ``info``: the import time of the layerscope
modules and everything they pull in, the number of modules, and whether torch is among them. Goals on the 2-core
machine: ``--version`` and ``--help`` at most 0.5 s, ``info`` at most 1.5 s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import Table, load_average

ROOT = Path(__file__).resolve().parents[1]
# main before this benchmark existed, and the commit whose command line imported torch, Dash and captum up front
BASELINES = ("35d9656", "0c39475")
# the console entry point as the installed `layerscope` script calls it, for any checkout on PYTHONPATH
ENTRY = "import sys; sys.argv[0] = 'layerscope'; from layerscope.cli import main; main()"


def _env(src: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(src), "PYTHONDONTWRITEBYTECODE": "1"}


def wall_time(src: Path, args: list[str], repeats: int) -> float:
    """Median seconds of ``layerscope ARGS`` from ``src``, each run a new process (one warm-up run first)."""
    times = []
    for i in range(repeats + 1):
        start = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-c", ENTRY, *args], capture_output=True, text=True, env=_env(src), timeout=600
        )
        elapsed = time.perf_counter() - start
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr.strip().splitlines()[-1][:120] if proc.stderr.strip() else "no output")
        if i:  # the first run warms the page cache (and compiles nothing: no bytecode is written)
            times.append(elapsed)
    return statistics.median(times)


def imports(src: Path, args: list[str]) -> tuple[float, int, bool]:
    """(seconds of all imports, modules imported, torch imported) of ``layerscope ARGS``, by ``-X importtime``."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", ENTRY, *args],
        capture_output=True,
        text=True,
        env=_env(src),
        timeout=600,
    )
    total_us, modules, torch = 0, 0, False
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative, raw = line.removeprefix("import time:").split("|")
        name = raw.strip()
        modules += 1
        torch = torch or name == "torch"
        if len(raw) - len(raw.lstrip()) == 1:  # a top-level import: its cumulative time holds those it triggered
            total_us += int(cumulative)
    return total_us / 1e6, modules, torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, help="a Run directory (default: the demo's MNIST Run)")
    parser.add_argument("--baseline", action="append", help=f"commits to compare with (default: {BASELINES})")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    if args.run is None:
        from layerscope.pipeline import demo_run

        args.run = demo_run(device="cpu").path
    baselines = args.baseline or list(BASELINES)
    print(f"Run {args.run}; baselines {', '.join(baselines)}; {load_average()}")
    table = Table("cli")
    commands = {"--version": ["--version"], "--help": ["--help"], "info": ["info", str(args.run)]}
    with tempfile.TemporaryDirectory() as tmp:
        srcs = {"new": ROOT / "src"}
        try:
            for rev in baselines:
                tree = Path(tmp) / rev
                add = ["git", "-C", str(ROOT), "worktree", "add", "-q", "--detach", str(tree), rev]
                subprocess.run(add, check=True)
                srcs[rev] = tree / "src"
            for name, command in commands.items():
                goal = "goal <= 1.5 s" if name == "info" else "goal <= 0.5 s"
                new = wall_time(srcs["new"], command, args.repeats)
                table.add(f"layerscope {name}: new", new, "s", f"median of {args.repeats}; {goal}")
                for rev in baselines:
                    try:
                        old = wall_time(srcs[rev], command, args.repeats)
                    except RuntimeError as e:  # an old version that cannot read this Run's format
                        table.add(f"layerscope {name}: {rev}", float("nan"), "s", f"failed: {e}")
                        continue
                    table.add(f"layerscope {name}: {rev}", old, "s")
                    table.ratio(f"layerscope {name}: new / {rev}", new, old)
            for version, src in srcs.items():
                total, modules, torch = imports(src, commands["info"])
                note = f"{modules} modules; torch {'imported' if torch else 'not imported'}"
                table.add(f"imports of 'layerscope info' (-X importtime): {version}", total, "s", note)
        finally:
            for rev in baselines:
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(Path(tmp) / rev)])


if __name__ == "__main__":
    main()
