"""Shared test plumbing: where the reference data lives, and the skip policy.

On a laptop a test whose data, tool or package is missing skips with the reason. Under
``CI=true`` every such skip becomes a failure carrying the same reason (collection-time skips
included: ``importorskip`` at module level, ``skipif`` marks), so CI cannot go green on work it
did not do. A test that legitimately does not apply on this machine (it exists only for a case
CI never has, e.g. "a Coral is attached") is marked ``@pytest.mark.ci_skip_ok(reason)``.

``make test`` runs whole files per worker process (pytest-xdist ``--dist loadfile``), which hands
files out in collection order: the slowest files (:data:`SLOWEST_FIRST`) are collected first,
so no worker starts a long file while the others run out of work.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Generator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
SHARED_DATA = SHARED / "data"

IN_CI = os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}

# The longest test files of a warm run, longest first (pytest --durations, summed per file;
# their cold runs also build what the caches keep: TFLM libraries, the arm64 venvs, trainings).
SLOWEST_FIRST = (
    "test_aarch64.py", "test_train_e2e.py", "test_train_small.py", "test_train_weights.py",
    "test_verify_tflm.py", "test_tiny_models.py", "test_slot_boot_qemu.py", "test_patch_rewrite.py",
    "test_tflm_library.py", "test_tflm_build.py", "test_patch_stages.py", "test_preview.py",
    "test_export_cli.py", "test_arena_tflm.py", "test_mqtt_faults.py", "test_detect_models.py",
)


def shared_file(relative: str) -> Path:
    """A file of the reference data in ../shared/data, or skip the test saying what is missing."""
    path = SHARED_DATA / relative
    if not path.is_file():
        pytest.skip(f"reference data {path} is absent (CI always has ../shared/data; see its "
                    "README)")
    return path


def need_tool(name: str, install: str) -> str:
    """The path of command ``name``, or skip saying how to install it (``make sysdeps``)."""
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed ({install}; `make sysdeps` installs it as root)")
    return path


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"reference data folder {SHARED_DATA} is absent")
    return SHARED_DATA


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "ci_skip_ok(reason): this test may skip under CI=true (it needs a case CI "
        "never has); every other skip fails under CI=true")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The files of :data:`SLOWEST_FIRST` first, in its order; the rest as collected."""
    rank = {name: i for i, name in enumerate(SLOWEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


def _skip_reason(longrepr: object) -> str:
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2])
    return str(longrepr)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
        item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, None, None]:
    outcome = yield
    report = outcome.get_result()
    if (IN_CI and report.skipped and not hasattr(report, "wasxfail")
            and item.get_closest_marker("ci_skip_ok") is None):
        report.outcome = "failed"
        report.longrepr = (f"skipped under CI=true, which must run it: "
                           f"{_skip_reason(report.longrepr)}")


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Generator[None, None, None]:
    outcome = yield
    report = outcome.get_result()
    if IN_CI and report.skipped:
        report.outcome = "failed"
        report.longrepr = (f"{collector.nodeid} skipped under CI=true, which must run it: "
                           f"{_skip_reason(report.longrepr)}")
