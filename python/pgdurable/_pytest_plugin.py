"""The pytest plugin of ``pgdurable.testing`` (entry point ``pytest11``: installed with pgdurable).

Fixture ``durable_env``: a started :class:`~pgdurable.testing.WorkflowEnvironment` with time
skipping on and no workers yet; a test adds its own with
``await durable_env.add_worker(workflows=[...], activities=[...])``. Mark a test
``@pytest.mark.durable_env(time_skipping=False, ...)`` to pass other arguments. Needs
``pytest-asyncio`` (the fixture is async).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from .errors import TestEnvironmentError
from .testing import WorkflowEnvironment

try:
    import pytest_asyncio
except ImportError:  # the fixture says what to install when a test asks for it
    pytest_asyncio = None


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "durable_env(**kwargs): WorkflowEnvironment arguments of the durable_env fixture")


async def _durable_env(request: pytest.FixtureRequest) -> AsyncIterator[WorkflowEnvironment]:
    kwargs: dict[str, Any] = {"time_skipping": True}
    marker = request.node.get_closest_marker("durable_env")
    if marker is not None:
        kwargs.update(marker.kwargs)
    async with WorkflowEnvironment(**kwargs) as env:
        yield env


if pytest_asyncio is not None:
    durable_env = pytest_asyncio.fixture(_durable_env)
else:
    @pytest.fixture
    def durable_env() -> None:
        raise TestEnvironmentError("the durable_env fixture is async: pip install pytest-asyncio")
