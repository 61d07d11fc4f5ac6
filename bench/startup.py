"""Benchmark: how fast ``imgctl --help`` and every command's ``--help`` answer, beside skopeo's.

For ``imgctl --help`` and the ``--help`` of every command and subcommand (walked from the
command tree, so a new command is measured without editing this file), ``--rounds`` rounds each
start the installed console script once, and ``skopeo --help`` once in the same round (the
yardstick: a Go binary's start-up), alternating which goes first. Two floors are measured the
same way: the interpreter of the console script doing nothing (``python -c pass``) and importing
typer (what any typer command line pays before it reads its arguments).

Per command it prints the median wall time and the median CPU time of the process (user +
system, from ``wait4``; CPU is what to trust on a busy machine), their ratios to skopeo's and to
the ``import typer`` floor. The load average is printed with the figures.

The exit status depends only on a ratio to what the same run measured (issue 23 item 5): every
help's median wall time (``--judge cpu``: CPU, for a machine shared with other work) over the
``import typer`` floor's, at most ``MAX_TO_TYPER``; exit status 1 when one is over it, 2 when a
help fails. The ratio to skopeo and issue 21's absolute figure (100 ms of wall time for every
help) are printed beside it, not judged: typer's import alone is 4x skopeo's start. Children run
with bytecode caching on (as an installed imgctl does), after one untimed warm-up run each.
``--instructions`` adds what valgrind's callgrind counts in one run of each (skopeo, a Go
binary, does not run under valgrind; the two floors are the yardstick there): a figure that
other processes on the machine cannot move.

    python bench/startup.py                    # 5 rounds, every command
    python bench/startup.py --rounds 3 --only cip --only "catalog serve"
    python bench/startup.py --json             # one JSON document instead of the table
    python bench/startup.py --instructions     # plus valgrind instruction counts (slow)
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as ``python bench/startup.py``, this file's directory comes first on sys.path, where
# bench/copy.py would shadow the standard library's ``copy``. Put the repository root there.
_BENCH_DIR = Path(__file__).resolve().parent
ROOT = _BENCH_DIR.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _BENCH_DIR]

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402

# What decides the exit status (issue 23 item 5): each help over ``python -c 'import typer'`` of
# the same run, what any typer command line pays before it reads an argument. docs/performance.md
# "Start-up", 2026-12-07: 0.9-1.45x of wall and 1.07-1.40x of CPU quiet (the slowest, cip --help:
# 77.9 ms over 53.7 ms, 62.8 ms over 44.7 ms of CPU); 0.72-1.91x of wall and 1.09-1.49x of CPU at
# a load of 9 (13:18, 42 helps); before issue 21, 925-1,179 M instructions against typer's 242 M
# (3.8-4.9x). 2x leaves a third over the slowest CPU and fails a help that imported every command
# module or rich again; on a loaded machine judge CPU (wall reached 1.91x at that load).
MAX_TO_TYPER = 2.0
TYPER_FLOOR = "python -c 'import typer'"
STATED_MS = 100.0  # issue 21 target 2, stated absolutely: printed, not judged


@dataclass
class Row:
    """One measured command line: its label, argv and the samples of its rounds."""

    label: str
    argv: list[str]
    kind: str  # "imgctl", "yardstick" or "floor"
    wall_ms: list[float] = field(default_factory=list)
    cpu_ms: list[float] = field(default_factory=list)

    def median_wall(self) -> float:
        """Median wall time of the rounds, in ms."""
        return statistics.median(self.wall_ms)

    def median_cpu(self) -> float:
        """Median CPU time (user + system) of the rounds, in ms."""
        return statistics.median(self.cpu_ms)


# An installed imgctl runs from cached bytecode (pip compiles it); with PYTHONDONTWRITEBYTECODE
# set, every run would compile each module whose .pyc is missing or stale.
CHILD_ENV = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}


def run_once(argv: list[str]) -> tuple[float, float]:
    """Run ``argv`` to its end (output discarded): its wall time and its own CPU time, in ms."""
    start = time.perf_counter()
    process = subprocess.Popen(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=CHILD_ENV
    )
    # wait4 gives this child's own rusage (RUSAGE_CHILDREN would mix in earlier children).
    _, status, usage = os.wait4(process.pid, 0)
    wall = (time.perf_counter() - start) * 1000
    process.returncode = os.waitstatus_to_exitcode(status)
    stderr = process.stderr.read().decode(errors="replace") if process.stderr else ""
    if process.stderr:
        process.stderr.close()
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {process.returncode}: {stderr.strip()[:500]}")
    return wall, (usage.ru_utime + usage.ru_stime) * 1000


# Run by the console script's interpreter, which has imgctl and typer (this one may not).
_WALK = """
import json, typer
from imgctl.cli._app import app

def walk(group, path):
    found = [path]
    for name, command in getattr(group, "commands", {}).items():
        found.extend(walk(command, [*path, name]))
    return found

print(json.dumps(walk(typer.main.get_command(app), [])))
"""


def command_paths(python: str) -> list[tuple[str, ...]]:
    """Every command path of imgctl: () for the root, then each command and subcommand."""
    result = subprocess.run(
        [python, "-c", _WALK], capture_output=True, text=True, env=CHILD_ENV, check=False
    )
    if result.returncode != 0:
        sys.exit(f"bench/startup.py: cannot list imgctl's commands: {result.stderr.strip()[-500:]}")
    return [tuple(path) for path in json.loads(result.stdout)]


def find_imgctl(given: str | None) -> str:
    """The console script to measure: --imgctl, else the project's venv, else PATH."""
    if given:
        return given
    venv = ROOT / ".venv" / "bin" / "imgctl"
    if venv.exists():
        return str(venv)
    found = shutil.which("imgctl")
    if not found:
        sys.exit(
            "bench/startup.py: no imgctl console script (run scripts/test.sh or pass --imgctl)"
        )
    return found


def interpreter_of(script: str) -> str:
    """The Python interpreter named on the console script's #! line."""
    with open(script, "rb") as handle:
        first = handle.readline().decode(errors="replace").strip()
    if not first.startswith("#!"):
        sys.exit(f"bench/startup.py: {script} is not a script with a #! line (pass --imgctl)")
    return first[2:].split()[0]


def instructions(argv: list[str]) -> int:
    """Instructions ``argv`` executes in user space, counted by valgrind's callgrind."""
    result = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *argv],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=CHILD_ENV,
        check=False,
    )
    for line in result.stderr.splitlines():
        if "Collected :" in line:
            return int(line.rsplit(":", 1)[1].strip())
    raise RuntimeError(f"valgrind counted nothing for {' '.join(argv)}: {result.stderr[-300:]}")


def measure(rows: list[Row], rounds: int) -> None:
    """Measure each imgctl row against the yardstick and floors, ``rounds`` rounds, alternating."""
    yardsticks = [row for row in rows if row.kind != "imgctl"]
    for row in rows:  # untimed: writes the bytecode caches, warms the page cache
        run_once(row.argv)
    for round_number in range(rounds):
        for row in rows:
            if row.kind != "imgctl":
                continue
            pair = [row, *yardsticks] if round_number % 2 == 0 else [*yardsticks, row]
            for each in pair:
                wall, cpu = run_once(each.argv)
                each.wall_ms.append(wall)
                each.cpu_ms.append(cpu)


def main() -> int:
    """Parse the flags, measure, print the table; exit 1 when a help's ratio to typer is over."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="rounds per command (>= 3)")
    parser.add_argument("--imgctl", help="console script to measure (default: .venv/bin/imgctl)")
    parser.add_argument(
        "--only", action="append", default=[], help='command path to measure ("" for the root)'
    )
    parser.add_argument(
        "--judge",
        choices=("wall", "cpu"),
        default="wall",
        help="which median the ratio to the import-typer floor judges (cpu on a busy machine)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="also count each command's instructions once with valgrind (load-independent; "
        "skopeo, a Go binary, does not run under valgrind: the floors are the yardstick)",
    )
    args = parser.parse_args()
    if args.rounds < 3:
        parser.error("--rounds must be at least 3 (medians of at least 3 rounds)")
    skopeo = shutil.which("skopeo")
    if not skopeo:
        sys.exit("bench/startup.py: skopeo not found (apt-get install skopeo): it is the yardstick")
    imgctl = find_imgctl(args.imgctl)
    python = interpreter_of(imgctl)

    paths = command_paths(python)
    if args.only:
        wanted = {tuple(item.split()) for item in args.only}
        unknown = wanted - set(paths)
        if unknown:
            sys.exit(
                f"bench/startup.py: no such command: {', '.join(' '.join(p) for p in unknown)}"
            )
        paths = [path for path in paths if path in wanted]
    rows = [
        Row(" ".join(("imgctl", *path, "--help")), [imgctl, *path, "--help"], "imgctl")
        for path in paths
    ]
    rows += [
        Row("skopeo --help", [skopeo, "--help"], "yardstick"),
        Row("python -c pass", [python, "-c", "pass"], "floor"),
        Row("python -c 'import typer'", [python, "-c", "import typer"], "floor"),
    ]
    try:
        measure(rows, args.rounds)
    except RuntimeError as error:
        print(f"bench/startup.py: {error}", file=sys.stderr)
        return 2
    counts: dict[str, int] = {}
    if args.instructions:
        try:
            for row in rows:
                if row.kind != "yardstick":
                    counts[row.label] = instructions(row.argv)
        except (OSError, RuntimeError) as error:
            print(f"bench/startup.py: {error}", file=sys.stderr)
            return 2
    load = os.getloadavg()
    skopeo_row = next(row for row in rows if row.kind == "yardstick")
    skopeo_wall, skopeo_cpu = skopeo_row.median_wall(), skopeo_row.median_cpu()
    typer_row = next(row for row in rows if row.label == TYPER_FLOOR)

    def judged_ms(row: Row) -> float:
        return row.median_wall() if args.judge == "wall" else row.median_cpu()

    def to_typer(row: Row) -> float:
        return judged_ms(row) / judged_ms(typer_row)

    judged = [row for row in rows if row.kind == "imgctl" and to_typer(row) > MAX_TO_TYPER]
    over_stated = [row for row in rows if row.kind == "imgctl" and row.median_wall() > STATED_MS]
    if args.json:
        print(
            json.dumps(
                {
                    "rounds": args.rounds,
                    "load_average": load,
                    "judge": args.judge,
                    "max_to_typer": MAX_TO_TYPER,
                    "stated_ms_not_judged": STATED_MS,
                    "rows": [
                        {
                            "command": row.label,
                            "kind": row.kind,
                            "wall_ms": round(row.median_wall(), 1),
                            "cpu_ms": round(row.median_cpu(), 1),
                            "wall_vs_skopeo": round(
                                row.median_wall() / skopeo_row.median_wall(), 2
                            ),
                            "cpu_vs_skopeo": round(row.median_cpu() / skopeo_row.median_cpu(), 2),
                            "wall_vs_typer": round(row.median_wall() / typer_row.median_wall(), 2),
                            "cpu_vs_typer": round(row.median_cpu() / typer_row.median_cpu(), 2),
                        }
                        for row in rows
                    ],
                    "missed": [row.label for row in judged],
                    "over_stated_ms_not_judged": [row.label for row in over_stated],
                },
                indent=2,
            )
        )
    else:
        print(
            f"medians of {args.rounds} rounds; load average {load[0]:.2f} {load[1]:.2f} "
            f"{load[2]:.2f}; check: every imgctl help's {args.judge} <= {MAX_TO_TYPER:g}x "
            f"the import-typer floor's"
        )
        width = max(len(row.label) for row in rows)
        print(
            f"{'command':<{width}}  {'wall ms':>8}  {'cpu ms':>8}  {'wall/typer':>10}  "
            f"{'cpu/typer':>9}  {'check':>5}  {'wall/skopeo':>11}  {'cpu/skopeo':>10}"
            + ("  instructions" if counts else "")
        )
        for row in rows:
            verdict = ""
            if row.kind == "imgctl":
                verdict = "ok" if to_typer(row) <= MAX_TO_TYPER else "MISS"
            count = f"  {counts[row.label] / 1e6:>8.1f}M" if row.label in counts else ""
            print(
                f"{row.label:<{width}}  {row.median_wall():>8.1f}  {row.median_cpu():>8.1f}  "
                f"{row.median_wall() / typer_row.median_wall():>9.2f}x  "
                f"{row.median_cpu() / typer_row.median_cpu():>8.2f}x  {verdict:>5}  "
                f"{row.median_wall() / skopeo_wall:>10.1f}x  "
                f"{row.median_cpu() / skopeo_cpu:>9.1f}x{count}"
            )
        imgctl_rows = [row for row in rows if row.kind == "imgctl"]
        slowest = max(imgctl_rows, key=to_typer)
        print(
            f"checks (decide the exit status): {len(judged)} of {len(imgctl_rows)} helps over "
            f"{MAX_TO_TYPER:g}x the import-typer floor by {args.judge}; the highest, "
            f"{slowest.label}: {to_typer(slowest):.2f}x"
        )
        print(
            f"issue 21's absolute figure, not judged: {len(over_stated)} of {len(imgctl_rows)} "
            f"helps over {STATED_MS:.0f} ms of wall time (the slowest "
            f"{max(row.median_wall() for row in imgctl_rows):.1f} ms)"
        )
    return 1 if judged else 0


if __name__ == "__main__":
    sys.exit(main())
