"""What `edgecut check` reports: one result per check, and the report as a table, JSON or JUnit XML.

A failed integrity or parity check means the artifact is broken (exit 2); a failed gate means it works
but is not good enough (exit 1).
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

INTEGRITY, PARITY, GATE = "integrity", "parity", "gate"
EXIT_PASS, EXIT_GATE, EXIT_BROKEN = 0, 1, 2


@dataclass(frozen=True)
class CheckResult:
    """One check. `passed` is None when it was skipped because an earlier check failed."""

    name: str
    kind: str  # integrity, parity or gate
    passed: bool | None
    detail: str
    measured: float | None = None
    threshold: float | None = None
    unit: str = ""  # "", "fraction", "ms", "logit"
    seconds: float = 0.0

    @property
    def status(self) -> str:
        return {True: "pass", False: "fail", None: "skip"}[self.passed]

    def value_text(self, value: float | None) -> str:
        if value is None:
            return ""
        if self.unit == "fraction":
            return f"{value:.1%}"
        if self.unit == "ms":
            return f"{value:.3g} ms"
        if self.unit == "points":
            return f"{value:+.1f} pts"
        return f"{value:.2g}"


@dataclass
class CheckReport:
    artifact: str
    target: str = ""
    providers: list[str] = field(default_factory=list)
    results: list[CheckResult] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        failed = [r for r in self.results if r.passed is False]
        if any(r.kind in (INTEGRITY, PARITY) for r in failed):
            return EXIT_BROKEN
        return EXIT_GATE if failed else EXIT_PASS

    @property
    def verdict(self) -> str:
        return {EXIT_PASS: "pass", EXIT_GATE: "gate failed", EXIT_BROKEN: "broken"}[self.exit_code]

    def as_dict(self) -> dict[str, Any]:
        return {
            "artifact": self.artifact,
            "target": self.target,
            "providers": self.providers,
            "verdict": self.verdict,
            "exit_code": self.exit_code,
            "settings": self.settings,
            "checks": [asdict(r) | {"status": r.status} for r in self.results],
        }

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2)

    def to_junit(self) -> str:
        """JUnit XML, one testcase per check, so CI systems list them (failures and skips included)."""
        failures = sum(r.passed is False for r in self.results)
        skipped = sum(r.passed is None for r in self.results)
        total = f"{sum(r.seconds for r in self.results):.3f}"
        counts = {"tests": str(len(self.results)), "failures": str(failures), "errors": "0", "skipped": str(skipped)}
        root = ET.Element("testsuites", {"name": "edgecut check", **counts, "time": total})
        suite = ET.SubElement(
            root,
            "testsuite",
            {
                "name": f"edgecut check {Path(self.artifact).name}",
                **counts,
                "time": total,
                "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
            },
        )
        props = ET.SubElement(suite, "properties")
        for key, value in {"artifact": self.artifact, "target": self.target, **self.settings}.items():
            if value not in (None, ""):
                ET.SubElement(props, "property", {"name": key, "value": str(value)})
        for r in self.results:
            case = ET.SubElement(
                suite, "testcase", {"classname": f"edgecut.check.{r.kind}", "name": r.name, "time": f"{r.seconds:.3f}"}
            )
            if r.passed is False:
                ET.SubElement(case, "failure", {"message": r.detail, "type": r.kind}).text = r.detail
            elif r.passed is None:
                ET.SubElement(case, "skipped", {"message": r.detail})
            else:
                ET.SubElement(case, "system-out").text = r.detail
        ET.indent(root)
        return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def input_error_report(artifact: str | Path, message: str) -> CheckReport:
    """For --junit/--json when checking could not start (bad input): one failed `input` check, exit 2."""
    return CheckReport(artifact=str(artifact), results=[CheckResult("input", INTEGRITY, False, message)])
