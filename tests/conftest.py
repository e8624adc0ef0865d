"""Hypothesis settings for the whole suite.

The shared 2-core CI host stalls for a second or more at times; hypothesis's two wall-clock
checks (the per-example deadline and the "input generation is slow" health check) then fail
tests whose behaviour is fine. Both are off here; every other health check stays on.
"""

from hypothesis import HealthCheck, settings

settings.register_profile("smsgw", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("smsgw")
pytest_plugins = ["conftest_pg"]      # PostgreSQL servers for the tests: fixtures pg_binaries, pg_cluster, pg_database, pg_replicated


import pytest
import structlog


@pytest.fixture(autouse=True)
def _structlog_as_it_was():
    """A test that runs `smsgw.cli.main` in-process configures structlog to write to the standard
    streams of that moment: pytest's capture files, closed when the test ends. Every later log
    line of the run would then raise ValueError (a gateway in a later test answering 500 where it
    logs a 503). Each test leaves structlog's configuration as it found it."""
    config = structlog.get_config()
    yield
    structlog.configure(**config)
