"""Every test of a module that runs a module-wide ``gateway`` ends by checking that the
server still serves a healthy chunk correctly: no bad request may break it."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def still_serving(request):
    if not hasattr(request.module, "gateway"):  # the module runs no shared gateway
        yield
        return
    gateway = request.getfixturevalue("gateway")
    yield
    gateway.assert_healthy()
