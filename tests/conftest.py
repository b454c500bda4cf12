import pytest


@pytest.fixture
def cli():
    """`attndeploy.cli.main.main`: run the CLI in-process, returning its exit code."""
    from attndeploy.cli.main import main

    return main
