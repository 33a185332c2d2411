"""What ``--verify`` found: one :class:`Check` per question, grouped by build."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

PASS, FAIL, WARN, NOT_COMPARED, INFO = "pass", "fail", "warn", "not compared", "info"


@dataclass(frozen=True)
class Check:
    """One answer: its name, the build it ran on, the outcome, a sentence, and its numbers."""

    name: str
    build: str
    status: str
    detail: str
    values: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"check": self.name, "build": self.build, "status": self.status,
                "detail": self.detail, **self.values}


@dataclass
class VerifyReport:
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, check: Check) -> Check:
        self.checks.append(check)
        return check

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if c.status == FAIL]

    @property
    def ok(self) -> bool:
        return not self.failed

    def find(self, name: str, build: str | None = None) -> Check | None:
        return next((c for c in self.checks
                     if c.name == name and (build is None or c.build == build)), None)

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "checks": [c.to_dict() for c in self.checks],
                "notes": list(self.notes)}
