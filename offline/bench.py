"""Benchmark (``make bench`` / ``python -m offline.bench``): how long the plan and the test suite take.

Reports, as Markdown on stdout:
1. the plan of every committed stack as a user runs it (``python -m offline.plan <stack>`` in a fresh
   process: interpreter start, imports, program run, rendering, writing), best and median of a few runs;
2. how the plan time grows with the number of resources: the engine runs a synthetic program registering N
   resources (IAM roles with policies, log groups, security groups in small components, like the real
   program) and the plan renders it, in process, for N = 50, 100, 200, 400 by default;
3. the whole test suite (``python -m pytest -q``), once.

It measures and asserts no timing (a timing test would be flaky on a shared runner), but it fails (exit status
1) when what it measures fails: a plan, or the test suite, so that ``make bench`` cannot report a time for a
broken build. Options: ``--stacks``, ``--sizes``, ``--repeat``, ``--no-tests``, ``--tests``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pulumi
import pulumi_aws as aws

from offline.engine import ProgramRun, run_program
from offline.stack_files import ROOT, StackFiles, committed_stacks

# Five registrations per unit: the component, a role, its policy, a log group and a security group.
_TRUST = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "ecs-tasks.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
)


class Unit(pulumi.ComponentResource):
    """Four resources in a component, shaped like the real program's (a role and its policy, logs, a group)."""

    def __init__(self, name: str, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("bench:index:Unit", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        role = aws.iam.Role(f"{name}-role", assume_role_policy=_TRUST, opts=child)
        logs = aws.cloudwatch.LogGroup(f"{name}-logs", retention_in_days=7, opts=child)
        statement = {"Effect": "Allow", "Action": ["logs:PutLogEvents"], "Resource": [logs.arn]}
        aws.iam.RolePolicy(
            f"{name}-policy",
            role=role.id,
            policy=pulumi.Output.json_dumps({"Version": "2012-10-17", "Statement": [statement]}),
            opts=child,
        )
        aws.ec2.SecurityGroup(f"{name}-sg", description=f"{name} tasks", opts=child)
        self.register_outputs({"role": role.arn})


def synthetic_program(resources: int) -> None:
    """A program registering exactly ``resources`` resources."""
    for i in range(resources // 5):
        Unit(f"unit-{i}")
    for i in range(resources % 5):
        aws.cloudwatch.LogGroup(f"extra-{i}", retention_in_days=1)


def synthetic_files(resources: int) -> StackFiles:
    return StackFiles(project="bench", stack="bench", config={"aws:region": "eu-west-1"}, secret_keys=[])


def run_synthetic(resources: int) -> tuple[StackFiles, ProgramRun]:
    """Runs the synthetic program for ``resources`` registrations on the offline engine."""
    files = synthetic_files(resources)
    return files, run_program(files, program=lambda: synthetic_program(resources))


def _plan_cli(stack: str, out: Path) -> float:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "offline.plan", stack, "--out", str(out)],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m offline.bench", description=__doc__.split("\n")[0])
    parser.add_argument("--stacks", default=",".join(committed_stacks()), help="stacks to plan (default: every one)")
    parser.add_argument("--sizes", default="50,100,200,400", help="resource counts of the synthetic programs")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (best and median reported)")
    parser.add_argument("--no-tests", action="store_true", help="skip timing the test suite")
    parser.add_argument("--tests", nargs="*", default=["tests"], help="what pytest runs (default: tests)")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    stacks = [s for s in args.stacks.split(",") if s.strip()]
    failures: list[str] = []
    from offline.plan import render_plan  # imported here so that `--help` stays instant

    print(f"# Benchmark ({os.cpu_count()} CPUs, Python {sys.version.split()[0]})\n")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        print("## Plan of each committed stack (fresh process, as `make plan` runs it)\n")
        print("| Stack | Best (s) | Median (s) |\n|---|---:|---:|")
        for stack in stacks:
            try:
                times = [_plan_cli(stack, work / f"plan-{stack}") for _ in range(args.repeat)]
            except subprocess.CalledProcessError as error:
                failures.append(f"the plan of {stack} failed (exit status {error.returncode})")
                print(f"| {stack} | failed | failed |", flush=True)
                continue
            print(f"| {stack} | {min(times):.2f} | {statistics.median(times):.2f} |", flush=True)

        print("\n## Plan time by number of resources (synthetic program, in process, after warm-up)\n")
        print(
            "| Resources | Engine run (s) | Rendering (s) | Total (s) | ms per resource |\n|---:|---:|---:|---:|---:|"
        )
        run_synthetic(10)  # warm-up: imports, provider schema, event loop
        points: list[tuple[int, float]] = []
        for n in sizes:
            best: tuple[float, float] | None = None
            for _ in range(args.repeat):
                started = time.perf_counter()
                files, run = run_synthetic(n)
                ran = time.perf_counter()
                render_plan(run, files)
                done = time.perf_counter()
                if best is None or done - started < sum(best):
                    best = (ran - started, done - ran)
            assert best is not None
            total = sum(best)
            points.append((len(run.resources), total))
            print(
                f"| {len(run.resources)} | {best[0]:.2f} | {best[1]:.2f} | {total:.2f} | {1000 * total / n:.1f} |",
                flush=True,
            )
        if len(points) >= 2:
            xs, ys = [p[0] for p in points], [p[1] for p in points]
            slope, intercept = statistics.linear_regression(xs, ys)
            print(
                f"\nLeast-squares fit: {1000 * slope:.1f} ms per resource {intercept:+.2f} s. "
                f"From {xs[0]} to {xs[-1]} resources ({xs[-1] / xs[0]:.0f}x) the time grows {ys[-1] / ys[0]:.1f}x."
            )

    if not args.no_tests:
        print("\n## Test suite\n")
        started = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args.tests],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        elapsed = time.perf_counter() - started
        summary = next((line for line in reversed(result.stdout.splitlines()) if line.strip()), "")
        print(f"`pytest -q`: {elapsed:.1f} s, exit status {result.returncode}: {summary.strip('= ')}")
        if result.returncode != 0:
            failures.append(f"the test suite failed (exit status {result.returncode}): {summary.strip('= ')}")
    for failure in failures:
        print(f"bench: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
