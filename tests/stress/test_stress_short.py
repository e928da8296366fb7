"""The stress suite (stress/) at small counts, one test per section: each starts its own
gateway process on loopback, stops by itself and must report no failure. The same code
runs at full size with ``python -m stress --full`` (stress/README.md)."""

from __future__ import annotations

import pytest

from stress.__main__ import SECTIONS, run_sections
from stress.profiles import CI


@pytest.mark.parametrize("section", list(SECTIONS))
def test_stress_section_passes(section, tmp_path):
    (result,) = run_sections([section], CI, tmp_path)
    assert result.figures, result.failures
    assert result.passed, "\n".join(result.failures)
