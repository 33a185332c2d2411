"""Under CI=true a skipped test fails with its reason; on a laptop it skips."""

from __future__ import annotations

import pytest

from tests.conftest import ROOT

pytest_plugins = ["pytester"]

SAMPLE = '''
import pytest

missing = pytest.importorskip("no_such_package_for_edge_tests", reason="needs the foo extra")
'''

SAMPLE_RUNTIME = '''
import pytest

def test_needs_data():
    pytest.skip("reference data /nowhere is absent")

@pytest.mark.ci_skip_ok
def test_only_with_a_tpu():
    pytest.skip("a Coral is attached")

def test_runs():
    assert True
'''


def _run(pytester: pytest.Pytester, ci: str | None, source: str) -> pytest.RunResult:
    pytester.makeconftest((ROOT / "tests" / "conftest.py").read_text())
    pytester.makepyfile(test_sample=source)
    if ci is None:
        pytester._monkeypatch.delenv("CI", raising=False)
    else:
        pytester._monkeypatch.setenv("CI", ci)
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rA")


@pytest.mark.parametrize("ci", [None, "false"])
def test_a_laptop_skips_with_the_reason(pytester: pytest.Pytester, ci: str | None) -> None:
    result = _run(pytester, ci, SAMPLE_RUNTIME)
    result.assert_outcomes(passed=1, skipped=2)
    result.stdout.fnmatch_lines(["*reference data /nowhere is absent*"])


def test_ci_turns_a_skip_into_a_failure_with_the_reason(pytester: pytest.Pytester) -> None:
    result = _run(pytester, "true", SAMPLE_RUNTIME)
    result.assert_outcomes(passed=1, failed=1, skipped=1)
    result.stdout.fnmatch_lines(["*skipped under CI=true*reference data /nowhere is absent*"])
    assert result.ret != 0


def test_ci_fails_a_module_skipped_at_collection(pytester: pytest.Pytester) -> None:
    result = _run(pytester, "true", SAMPLE)
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*skipped under CI=true*needs the foo extra*"])
