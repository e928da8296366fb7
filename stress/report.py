"""What each section returns: its figures, its failures, how long it ran."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

MAX_FAILURES_KEPT = 50


@dataclass
class SectionResult:
    name: str
    figures: dict[str, Any] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    failure_count: int = 0
    seconds: float = 0.0
    rows: list[dict[str, Any]] = field(default_factory=list)  # per-item figures (corpus files)

    def fail(self, message: str) -> None:
        """Record a failure (the first MAX_FAILURES_KEPT verbatim, all counted)."""
        self.failure_count += 1
        if len(self.failures) < MAX_FAILURES_KEPT:
            self.failures.append(message)

    @property
    def passed(self) -> bool:
        return self.failure_count == 0

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "passed": self.passed,
            "seconds": round(self.seconds, 1),
            "figures": self.figures,
            "failure_count": self.failure_count,
            "failures": self.failures,
            "rows": self.rows,
        }


def status_counts(statuses: list[int] | Counter[int]) -> dict[str, int]:
    """``{"200": n, ...}`` with ``0`` shown as ``no-answer``."""
    counts = statuses if isinstance(statuses, Counter) else Counter(statuses)
    return {("no-answer" if k == 0 else str(k)): v for k, v in sorted(counts.items())}


def render(results: list[SectionResult]) -> str:
    """A plain-text table per section (figures, then failures), then per-file rows."""
    out = []
    for result in results:
        verdict = "PASS" if result.passed else f"FAIL ({result.failure_count})"
        out.append(f"== {result.name}: {verdict} in {result.seconds:.1f} s")
        for key, value in result.figures.items():
            shown = json.dumps(value, separators=(", ", ": ")) if isinstance(value, (dict, list)) else value
            out.append(f"   {key:<28} {shown}")
        if result.rows:
            out.append(render_rows(result.rows))
        out.extend(f"   ! {failure}" for failure in result.failures)
        if result.failure_count > len(result.failures):
            out.append(f"   ! ... and {result.failure_count - len(result.failures)} more")
    return "\n".join(out)


def render_rows(rows: list[dict[str, Any]]) -> str:
    columns = list(rows[0])
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in columns}
    lines = ["   " + "  ".join(c.ljust(widths[c]) for c in columns)]
    lines += ["   " + "  ".join(str(r.get(c, "")).ljust(widths[c]) for c in columns) for r in rows]
    return "\n".join(lines)
