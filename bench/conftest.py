"""pytest options and pytest-benchmark hooks shared by the bench files of this directory.

Options: ``--bench-suite`` (which cases), ``--bench-device``, ``--bench-max-gb`` (memory limit of a case),
``--bench-budget-s`` (time to spend on the timed rounds of one fast case). The hooks put the run's
:class:`bench.records.Environment` into the JSON's machine_info, the cases that did not run to a time
(out of memory, over the memory limit) and the single timings a bench file took itself (first calls) into
the JSON, so that one ``--benchmark-json`` file holds every row.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from bench.records import ENV_KEY, MEASURED_KEY, NOT_TIMED_KEY, RUN_KEY, collect_environment

SUITES = ("full", "quick", "headline")
CPU_MAX_GB = 8.0
CUDA_MEMORY_FRACTION = 0.85  # default memory limit of a CUDA case: this fraction of the GPU's memory

_NOT_TIMED = pytest.StashKey[list]()
_MEASURED = pytest.StashKey[list]()
_ENVIRONMENT = pytest.StashKey[dict]()
_JSON_WRITTEN = pytest.StashKey[bool]()


@dataclass(frozen=True)
class BenchOptions:
    """suite: "full" | "quick" | "headline"; device: "cpu" | "cuda"; max_bytes: memory limit of one case;
    budget_s: seconds of timed rounds for a fast case (a slow one gets 3 rounds after its warm-up)."""

    suite: str
    device: str
    max_bytes: float
    budget_s: float


def pytest_addoption(parser):
    group = parser.getgroup("fastmmd bench")
    group.addoption("--bench-suite", choices=SUITES, default="full", help="which cases to run (default: full)")
    group.addoption("--bench-device", choices=("cpu", "cuda"), default="cpu", help="device (default: cpu)")
    group.addoption(
        "--bench-max-gb",
        type=float,
        default=None,
        help="skip a case whose estimated memory is over this many GB, and stop its memory probe there "
        f"(default: {CPU_MAX_GB:g} on the CPU, {CUDA_MEMORY_FRACTION:g} of the GPU's memory on CUDA)",
    )
    group.addoption(
        "--bench-budget-s",
        type=float,
        default=None,
        help="seconds of timed rounds for a fast case (default: 3 on the CPU, 2 on CUDA, 0.3 with "
        "--bench-suite quick)",
    )


def pytest_configure(config):
    config.stash[_NOT_TIMED] = []
    config.stash[_MEASURED] = []


def pytest_sessionstart(session):
    # Taken when the run starts, so the commit and date are those of the code that runs.
    session.config.stash[_ENVIRONMENT] = collect_environment(session.config.getoption("bench_device")).as_dict()


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


@pytest.fixture
def bench_options(request) -> BenchOptions:
    config = request.config
    suite = config.getoption("bench_suite")
    device = config.getoption("bench_device")
    max_gb = config.getoption("bench_max_gb")
    if max_gb is not None:
        max_bytes = max_gb * 1e9
    elif device == "cuda" and _cuda_available():
        import torch

        max_bytes = CUDA_MEMORY_FRACTION * torch.cuda.get_device_properties(0).total_memory
    else:  # the CPU, or CUDA asked for where there is none (each case then skips itself)
        max_bytes = CPU_MAX_GB * 1e9
    budget = config.getoption("bench_budget_s")
    if budget is None:
        budget = 0.3 if suite == "quick" else 2.0 if device == "cuda" else 3.0
    return BenchOptions(suite=suite, device=device, max_bytes=max_bytes, budget_s=budget)


@pytest.fixture
def bench_not_timed(request) -> list:
    """Append here the record (bench.records.case_record) of a case that ends without a time."""
    return request.config.stash[_NOT_TIMED]


@pytest.fixture
def bench_measured(request) -> list:
    """Append here the record (bench.records.measured_record) of a single timing taken outside
    pytest-benchmark's rounds, such as the first call of a case (compilation included)."""
    return request.config.stash[_MEASURED]


def _add_run_records(config, output_json: dict) -> None:
    output_json.setdefault("machine_info", {})[ENV_KEY] = config.stash[_ENVIRONMENT]
    output_json[NOT_TIMED_KEY] = list(config.stash[_NOT_TIMED])
    output_json[MEASURED_KEY] = list(config.stash[_MEASURED])
    output_json[RUN_KEY] = {"suite": config.getoption("bench_suite"), "device": config.getoption("bench_device")}


@pytest.hookimpl(optionalhook=True)
def pytest_benchmark_update_json(config, benchmarks, output_json):
    _add_run_records(config, output_json)
    config.stash[_JSON_WRITTEN] = True


def pytest_sessionfinish(session):
    # pytest-benchmark writes no JSON when nothing was timed (every case out of memory or skipped, say);
    # those outcomes are results too, so write the JSON here then, with an empty list of benchmarks.
    config = session.config
    path = config.getoption("benchmark_json", None)
    if path is None or config.stash.get(_JSON_WRITTEN, False):
        return
    if not config.stash[_NOT_TIMED] and not config.stash[_MEASURED]:
        return
    output_json = {"benchmarks": []}
    _add_run_records(config, output_json)
    Path(path).write_text(json.dumps(output_json, indent=4))
