"""The one development REST server the serving tests of this folder share (the tiny run's export)."""
import pytest

from tests.rest_client import dev_server


def version_dir(run):
    """(model base, newest version directory) of the tiny run's export."""
    base = run["dir"] / "serving" / "esmm"
    return base, max((p for p in base.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))


@pytest.fixture(scope="session")
def server(tiny_run):
    """Base URL of ``ctrcvr serve`` on the tiny run's export, started once per session."""
    base, _ = version_dir(tiny_run)
    with dev_server(base, "esmm") as url:
        yield url
