"""pytest options and pytest-benchmark hooks shared by the bench files of this directory.

Options: ``--bench-suite`` (which cases), ``--bench-device``, ``--bench-max-gb`` (memory limit of a case),
``--bench-budget-s`` (time to spend on the timed rounds of one fast case). The hooks put the run's
:class:`bench.records.Environment` into the JSON's machine_info, and the cases that did not run to a time
(out of memory, over the memory limit) into the JSON, so that one ``--benchmark-json`` file holds every row.
"""
from __future__ import annotations

from dataclasses import dataclass

import pytest

from bench.records import ENV_KEY, NOT_TIMED_KEY, RUN_KEY, collect_environment

SUITES = ("full", "quick", "headline")

_NOT_TIMED = pytest.StashKey[list]()
_ENVIRONMENT = pytest.StashKey[dict]()


@dataclass(frozen=True)
class BenchOptions:
    """suite: "full" | "quick" | "headline"; device: "cpu" | "cuda"; max_bytes: memory limit of one case;
    budget_s: seconds of timed rounds for a fast case (a slow one gets 3 rounds after 1 warm-up)."""

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
        default=8.0,
        help="skip a case whose estimated memory is over this many GB, and stop its memory probe there (default: 8)",
    )
    group.addoption(
        "--bench-budget-s",
        type=float,
        default=None,
        help="seconds of timed rounds for a fast case (default: 3, or 0.3 with --bench-suite quick)",
    )


def pytest_configure(config):
    config.stash[_NOT_TIMED] = []


def pytest_sessionstart(session):
    # Taken when the run starts, so the commit and date are those of the code that runs.
    session.config.stash[_ENVIRONMENT] = collect_environment(session.config.getoption("bench_device")).as_dict()


@pytest.fixture
def bench_options(request) -> BenchOptions:
    config = request.config
    suite = config.getoption("bench_suite")
    budget = config.getoption("bench_budget_s")
    return BenchOptions(
        suite=suite,
        device=config.getoption("bench_device"),
        max_bytes=config.getoption("bench_max_gb") * 1e9,
        budget_s=budget if budget is not None else (0.3 if suite == "quick" else 3.0),
    )


@pytest.fixture
def bench_not_timed(request) -> list:
    """Append here the record (bench.records.case_record) of a case that ends without a time."""
    return request.config.stash[_NOT_TIMED]


@pytest.hookimpl(optionalhook=True)
def pytest_benchmark_update_machine_info(config, machine_info):
    machine_info[ENV_KEY] = config.stash[_ENVIRONMENT]


@pytest.hookimpl(optionalhook=True)
def pytest_benchmark_update_json(config, benchmarks, output_json):
    output_json[NOT_TIMED_KEY] = list(config.stash[_NOT_TIMED])
    output_json[RUN_KEY] = {"suite": config.getoption("bench_suite"), "device": config.getoption("bench_device")}
