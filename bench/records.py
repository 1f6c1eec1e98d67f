"""Result rows: where and on what a benchmark ran, and the CSV files the rows are appended to.

A row is a flat dict: the bench name, the case's parameters, the implementation, the environment
(:class:`Environment`) and the outcome (time_s, time_best_s, rounds, peak_mem_mb, status). Rows of one run
share the environment, so a CSV that accumulates runs over time still says which commit, machine and date
each figure comes from. The rows come from pytest-benchmark's JSON (:func:`rows_from_benchmark_json`).
"""
from __future__ import annotations

import csv
import dataclasses
import platform
import subprocess
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Optional

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = Path(__file__).resolve().parent / "results"

OUTCOME_FIELDS = ("time_s", "time_best_s", "rounds", "peak_mem_mb", "status")


@dataclass(frozen=True)
class Environment:
    """device: the CPU model or GPU name; threads: torch's intra-op threads; commit: short hash, with
    "+dirty" when the work tree differs from it; date: ISO 8601 in UTC."""

    device: str
    threads: int
    torch: str
    commit: str
    date: str

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def cpu_model() -> str:
    """The "model name" of /proc/cpuinfo (Linux), else what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_commit(repo: Path = REPO_ROOT) -> str:
    """Short hash of HEAD, plus "+dirty" when tracked or untracked files differ from it. Files under
    bench/results/ do not count: appending to the CSVs must not make the next run dirty. "unknown" outside
    a git checkout."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=repo, capture_output=True, text=True, check=True
        ).stdout.strip()
        changes = subprocess.run(
            ["git", "status", "--porcelain", "--", ".", ":(exclude)bench/results"],
            cwd=repo,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if changes else "")


def collect_environment(device: str) -> Environment:
    """The environment of a run on ``device`` ("cpu" or "cuda[:i]"). Reads the GPU name only when asked
    for CUDA, so a CPU run never touches the GPU; "no CUDA device" where CUDA is not available."""
    import torch

    if device.startswith("cuda"):
        # Without CUDA every case of the run skips itself; the run still starts and says so.
        name = torch.cuda.get_device_name(torch.device(device)) if torch.cuda.is_available() else "no CUDA device"
    else:
        name = cpu_model()
    return Environment(
        device=name,
        threads=torch.get_num_threads(),
        torch=torch.__version__,
        commit=git_commit(),
        date=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )


# ------------------------------------------------------------------------------------------------- CSV


def append_rows(path: Path, rows: Iterable[dict]) -> int:
    """Appends ``rows`` to the CSV at ``path`` (created with a header from the first row's keys). Every row
    must have the file's columns, in any order; a file with other columns is an error, never rewritten.
    Returns the number of rows written."""
    rows = list(rows)
    if not rows:
        return 0
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and path.stat().st_size > 0:
        with open(path, newline="") as f:
            header = next(csv.reader(f))
        new = False
    else:
        header = list(rows[0].keys())
        new = True
    for row in rows:
        if set(row) != set(header):
            raise ValueError(
                f"{path} has columns {header}; a row has {list(row)}. Append to another file (--csv) instead."
            )
    with open(path, "a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=header)
        if new:
            writer.writeheader()
        writer.writerows(rows)
    return len(rows)


def read_rows(path: Path) -> list:
    """All rows of a CSV written by :func:`append_rows`, as dicts of strings."""
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# ------------------------------------------------------------------------------- pytest-benchmark JSON

# Keys the bench files put in pytest-benchmark's JSON (see bench/conftest.py).
ENV_KEY = "fastmmd_environment"  # in machine_info: Environment.as_dict()
NOT_TIMED_KEY = "fastmmd_not_timed"  # at the top level: records of cases that did not run to a time
MEASURED_KEY = "fastmmd_measured"  # at the top level: records timed by the bench file itself, with "stats"
RUN_KEY = "fastmmd_run"  # at the top level: {"suite": ..., "device": "cpu" | "cuda"}


def case_record(bench: str, case: dict, impl: str, status: str, peak_mem_mb: Optional[float] = None) -> dict:
    """What a bench test stores about one case: in the benchmark's ``extra_info`` when it was timed, in
    the JSON's list of cases that were not otherwise."""
    return {"bench": bench, "case": dict(case), "impl": impl, "status": status, "peak_mem_mb": peak_mem_mb}


FIRST_CALL_SUFFIX = "-first-call"


def first_call_bench(bench: str) -> str:
    """The bench name of the first-call timings of ``bench``'s cases (their compilation included)."""
    return bench + FIRST_CALL_SUFFIX


def measured_record(bench: str, case: dict, impl: str, seconds: float) -> dict:
    """The record of a single timing the bench file took itself (the first call of a case, which includes
    compilation): a :func:`case_record` with its one-round stats, as pytest-benchmark would give them."""
    record = case_record(bench, case, impl, "ok")
    record["stats"] = {"median": seconds, "min": seconds, "rounds": 1}
    return record


def _row(record: dict, env: dict, stats: Optional[dict]) -> dict:
    row = {"bench": record["bench"], **record["case"], "impl": record["impl"]}
    row.update({k: env[k] for k in ("device", "threads", "torch", "commit", "date")})
    peak = record.get("peak_mem_mb")
    row.update(
        time_s=f"{stats['median']:.6g}" if stats else "",
        time_best_s=f"{stats['min']:.6g}" if stats else "",
        rounds=stats["rounds"] if stats else "",
        peak_mem_mb="" if peak is None else f"{peak:.1f}",
        status=record["status"],
    )
    return row


def rows_from_benchmark_json(data: dict) -> list:
    """CSV rows from a pytest-benchmark JSON written by a bench file of this directory: one per timed
    benchmark (time_s is the median of its rounds, time_best_s the minimum), one per single timing the bench
    file took itself (:func:`measured_record`), and one per case that did not run to a time (out of
    memory, skipped by the memory limit), with empty times."""
    env = data["machine_info"].get(ENV_KEY)
    if env is None:
        raise ValueError(f"the JSON has no machine_info[{ENV_KEY!r}]: was it written by a bench/ file?")
    rows = [_row(b["extra_info"], env, b["stats"]) for b in data["benchmarks"] if "bench" in b["extra_info"]]
    rows += [_row(r, env, r["stats"]) for r in data.get(MEASURED_KEY, [])]
    rows += [_row(r, env, None) for r in data.get(NOT_TIMED_KEY, [])]
    return rows
