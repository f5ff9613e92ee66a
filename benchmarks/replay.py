"""Replay a finished (or stopped) Snakemake run's jobs on more GPU slots: what the same jobs, at
the durations they took, would give on a node of n GPUs (issue 16's question, projected from a
one-GPU run where no multi-GPU machine is lent).

usage: python benchmarks/replay.py SNAKEMAKE_LOG [--slots 3 6 12 24] [--cores 16]
       [--tail attacks=90 ...]

Reads the log Snakemake printed (its "rule ...:" blocks: job id, input, output, threads, the
``gpu`` resource; "Finished jobid" lines) and each job's benchmark file where it has one (its
wall seconds; else finish minus start, to the second). A job depends on every job whose output
it reads, and a job that only a checkpoint's output brought into the DAG (a rule the first job
stats did not list) on the checkpoints finished before it started. The replay is a list
schedule: whenever a job finishes, the ready jobs start in the order the run started them, while
GPU slots (jobs with gpu > 0) and cores (threads) last. Each job keeps its measured duration,
which is conservative for more GPUs: in the run three model jobs shared one card, and on n cards
a job with fewer neighbours runs faster. ``--grow`` replays the study at a multiple of its N.

Jobs the run never finished (a stopped attack step, the figures after it) are left out unless
``--tail`` gives their seconds; they are then appended, after everything, as a chain in that order.
"""

from __future__ import annotations

import argparse
import dataclasses
import heapq
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]$")
RULE = re.compile(r"^(?:local)?(rule|checkpoint) (\S+):$")
STATS_ROW = re.compile(r"^(\S+) +(\d+)$")
FIELD = re.compile(r"^    (input|output|jobid|threads|resources|benchmark): (.*)$")
FINISHED = re.compile(r"^Finished jobid: (\d+) ")


@dataclass
class Job:
    jobid: int
    rule: str
    start: float
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    threads: int = 1
    gpu: int = 0
    benchmark: str | None = None
    end: float | None = None
    seconds: float = 0.0
    deps: set[int] = field(default_factory=set)
    checkpoint: bool = False


def _time(text: str) -> float:
    return datetime.strptime(" ".join(text.split()), "%a %b %d %H:%M:%S %Y").timestamp()


def parse(log: Path, root: Path) -> tuple[list[Job], float]:
    """The run's jobs (in the order they started) and Snakemake's start time."""
    jobs: dict[int, Job] = {}
    order: list[int] = []
    now = first = None
    current: dict | None = None
    planned: set[str] = set()  # the rules of the DAG before any checkpoint (the first job stats)
    finished_checkpoints: list[int] = []
    after: dict[int, list[int]] = {}  # a job of a rule the first DAG lacked -> checkpoints done before it
    for line in log.read_text().splitlines():
        if m := STAMP.match(line):
            now = _time(m.group(1))
            first = now if first is None else first
        elif first is None and (m := STATS_ROW.match(line)) and m.group(1) not in ("job", "total"):
            planned.add(m.group(1))
        elif m := RULE.match(line):
            current = {"rule": m.group(2), "start": now, "checkpoint": m.group(1) == "checkpoint"}
        elif current is not None and (m := FIELD.match(line)):
            key, value = m.groups()
            current[key] = value
            if key == "resources":  # the last field of a job's block
                job = Job(
                    jobid=int(current["jobid"]),
                    rule=current["rule"],
                    start=current["start"],
                    inputs=[s.strip() for s in current.get("input", "").split(",") if s.strip()],
                    outputs=[s.strip() for s in current.get("output", "").split(",") if s.strip()],
                    threads=int(current.get("threads", 1)),
                    gpu=int(g.group(1)) if (g := re.search(r"\bgpu=(\d+)", value)) else 0,
                    benchmark=current.get("benchmark"),
                    checkpoint=current["checkpoint"],
                )
                if job.jobid not in jobs:
                    order.append(job.jobid)
                if job.rule not in planned:  # made when a checkpoint's output changed the DAG
                    after[job.jobid] = list(finished_checkpoints)
                jobs[job.jobid] = job
                current = None
        elif m := FINISHED.match(line):
            jobs[int(m.group(1))].end = now
            if jobs[int(m.group(1))].checkpoint:
                finished_checkpoints.append(int(m.group(1)))
    for job in jobs.values():
        bench = root / job.benchmark if job.benchmark else None
        if bench is not None and bench.exists() and job.end is not None:
            job.seconds = float(bench.read_text().splitlines()[1].split("\t")[0])
        elif job.end is not None:
            job.seconds = job.end - job.start
    made = {out: j.jobid for j in jobs.values() for out in j.outputs}
    for job in jobs.values():
        job.deps = ({made[i] for i in job.inputs if i in made} | set(after.get(job.jobid, []))) - {job.jobid}
    return [jobs[i] for i in order], first


def schedule(jobs: list[Job], slots: int, cores: int) -> dict[int, tuple[float, float]]:
    """(start, end) of each job, seconds from 0, under the list schedule the module describes."""
    rank = {j.jobid: k for k, j in enumerate(jobs)}
    by_id = {j.jobid: j for j in jobs}
    waiting = {j.jobid: set(j.deps) & by_id.keys() for j in jobs}
    ready = sorted((i for i, d in waiting.items() if not d), key=rank.get)
    running: list[tuple[float, int]] = []
    free_slots, free_cores, t = slots, cores, 0.0
    spans: dict[int, tuple[float, float]] = {}
    while ready or running:
        for i in list(ready):
            j = by_id[i]
            need = min(j.threads, cores)
            if (j.gpu and free_slots < j.gpu) or free_cores < need:
                continue
            free_slots -= j.gpu
            free_cores -= need
            ready.remove(i)
            spans[i] = (t, t + j.seconds)
            heapq.heappush(running, (t + j.seconds, i))
        if not running:
            raise ValueError("jobs wait on each other or ask for more slots or cores than exist")
        t, i = heapq.heappop(running)
        free_slots += by_id[i].gpu
        free_cores += min(by_id[i].threads, cores)
        for k, d in waiting.items():
            if i in d:
                d.discard(i)
                if not d and k not in spans and k not in ready:
                    ready.append(k)
        ready.sort(key=rank.get)
    return spans


MODEL_RULES = ("train_original", "train_retrain", "unlearn", "unlearn_tuned")  # the study's, not tuning's
ROW_RULES = ("gather", "gather_trajectory", "rates")  # the CPU stages, linear in the score rows


def grow(jobs: list[Job], factor: int) -> list[Job]:
    """The run at ``factor`` x N: each of the study's model jobs ``factor`` times (a copy depends
    on the copies of what the original depends on), the CPU stages that read every model's rows
    ``factor`` x as long and waiting on every copy; the tuning stage as it was."""
    if factor == 1:
        return jobs
    top = max(j.jobid for j in jobs) + 1
    copies: dict[int, list[int]] = {}
    out = [dataclasses.replace(j, deps=set(j.deps)) for j in jobs]
    for k in range(1, factor):
        for j in jobs:
            if j.rule in MODEL_RULES:
                c = Job(j.jobid + k * top, j.rule, j.start, threads=j.threads, gpu=j.gpu, end=j.end, seconds=j.seconds)
                c.deps = {d + k * top if by_rule(jobs, d) in MODEL_RULES else d for d in j.deps}
                copies.setdefault(j.jobid, []).append(c.jobid)
                out.append(c)
    for j in out:
        if j.rule not in MODEL_RULES:
            j.deps |= {c for d in list(j.deps) for c in copies.get(d, [])}
            if j.rule in ROW_RULES:
                j.seconds *= factor
    return out


def by_rule(jobs: list[Job], jobid: int) -> str:
    return next(j.rule for j in jobs if j.jobid == jobid)


def critical_path(jobs: list[Job]) -> list[Job]:
    """The chain of dependent jobs whose durations sum the most: what no number of slots shortens."""
    by_id = {j.jobid: j for j in jobs}
    best: dict[int, tuple[float, int | None]] = {}
    todo = list(jobs)
    while todo:  # each job once all it depends on is done (a grown run lists copies last)
        rest = []
        for j in todo:
            if all(d in best or d not in by_id for d in j.deps):
                before = max(((best[d][0], d) for d in j.deps if d in best), default=(0.0, None))
                best[j.jobid] = (before[0] + j.seconds, before[1])
            else:
                rest.append(j)
        if len(rest) == len(todo):
            raise ValueError("the jobs' dependencies form a cycle")
        todo = rest
    i: int | None = max(best, key=lambda k: best[k][0])
    path = []
    while i is not None:
        path.append(by_id[i])
        i = best[i][1]
    return path[::-1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("log", type=Path, help="the run's Snakemake log")
    ap.add_argument(
        "--root", type=Path, default=None, help="where the run's relative paths start (default: the log's folder)"
    )
    ap.add_argument("--slots", type=int, nargs="+", default=[3, 6, 12, 24], help="GPU slots (GPUs x jobs_per_gpu)")
    ap.add_argument("--cores", type=int, nargs="+", default=[16], help="cores, one for all slot counts or one for each")
    ap.add_argument("--grow", type=int, default=1, help="replay the study at this many times its N (tuning unchanged)")
    ap.add_argument("--tail", nargs="*", default=[], metavar="RULE=SECONDS", help="unfinished jobs' assumed seconds")
    a = ap.parse_args()
    jobs, first = parse(a.log, a.root or a.log.parent)
    tail = dict((k, float(v)) for k, v in (t.split("=", 1) for t in a.tail))
    done = grow([j for j in jobs if j.end is not None], a.grow)
    left = [j for j in jobs if j.end is None]
    model = [j for j in done if j.gpu]
    measured_models = max(j.end for j in model) - first if model else float("nan")
    measured_all = max(j.end for j in done) - first
    unfinished = ", ".join(j.rule for j in left) or "none"
    print(f"{len(done)} finished jobs ({len(model)} model jobs); not finished: {unfinished}")
    if a.grow == 1:
        print(
            f"measured: every model job done {measured_models / 60:.1f} min after the first job started, "
            f"every finished job {measured_all / 60:.1f} min"
        )
    else:
        print(f"the study's model jobs x {a.grow}, gather and rates {a.grow} x as long: a projection, nothing measured")
    chain = sum(tail.get(j.rule, 0.0) for j in left) + sum(
        v for k, v in tail.items() if k not in {j.rule for j in left}
    )
    if tail:
        print(f"assumed after them: {', '.join(f'{k} {v:g} s' for k, v in tail.items())} ({chain:g} s in all)")
    path = critical_path(done)
    print(
        f"critical path, {sum(j.seconds for j in path) / 60:.1f} min: "
        + " -> ".join(f"{j.rule} {j.seconds:.0f} s" for j in path)
    )
    base = None
    cores = a.cores * len(a.slots) if len(a.cores) == 1 else a.cores
    if len(cores) != len(a.slots):
        raise SystemExit("--cores: give one number, or one for each of --slots")
    print(
        "\nslots  cores  model jobs done (min)  all finished jobs (min)"
        + ("  with the tail (min)" if tail else "")
        + "  speed-up"
    )
    for s, c in zip(a.slots, cores, strict=True):
        spans = schedule(done, s, c)
        models = max(spans[j.jobid][1] for j in model) if model else float("nan")
        end = max(e for _, e in spans.values())
        whole = end + chain
        base = base or whole
        row = f"{s:5d}  {c:5d}  {models / 60:22.1f}  {end / 60:23.1f}"
        row += f"  {whole / 60:19.1f}" if tail else ""
        print(row + f"  {base / whole:8.2f}")


if __name__ == "__main__":
    main()
