"""The unit layer: pure functions of flows/ and gateway/codes.py, no Redis, no HTTP, no clock.

Every test here is marked ``unit`` (``python -m pytest -m unit`` runs this layer alone), and
asking for Redis fails at once: a test that needs it belongs one layer up, beside the journeys.
"""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).parent


def pytest_collection_modifyitems(config, items):
    """Mark every test under tests/unit/ ``unit``, so ``-m unit`` selects this layer."""
    for item in items:
        if item.path.is_relative_to(HERE):
            item.add_marker(pytest.mark.unit)


@pytest.fixture(scope="session")
def redis_url():
    """Refuse Redis in the unit layer: it would hide a journey among the pure tests."""
    pytest.fail("a unit test asked for Redis; move it out of tests/unit/")
