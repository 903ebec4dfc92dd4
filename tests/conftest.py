"""Shared pytest fixtures and the Hypothesis profiles.

Real EMDB maps and PDB models live in ``../shared/data`` beside the repository (see its
MANIFEST.md); they are never copied into the repository. Tests that need them use the
``shared_data`` or ``shared_file`` fixtures. Locally these skip the test, with a reason, when
the folder or the file is absent; in CI (the environment variable ``CI`` set) an absent file
is an error, so the real-data tests cannot silently shrink away.

Hypothesis runs the ``ci`` profile in CI (derandomised: the same examples every run) and the
``dev`` profile locally (random examples, so new cases keep being tried); choose one with
``HYPOTHESIS_PROFILE``.
"""
import os
from pathlib import Path

import pytest
from hypothesis import settings

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
IN_CI = bool(os.environ.get("CI"))

settings.register_profile("ci", derandomize=True, print_blob=True)
settings.register_profile("dev", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if IN_CI else "dev"))


def _skip_unless_exists(path: Path) -> Path:
    if not path.exists():
        message = (f"real data not available: {path} not present (expected ../shared/data "
                   "beside the repository, see its MANIFEST.md)")
        if IN_CI:
            pytest.fail(message + "; in CI this is an error", pytrace=False)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path of the ``../shared/data`` folder; skips the test when it is absent."""
    return _skip_unless_exists(SHARED_DATA)


@pytest.fixture(scope="session")
def shared_file(shared_data):
    """Function ``shared_file("maps/emd_3488_....mrc") -> Path``; skips if the file is absent."""
    return lambda relative: _skip_unless_exists(shared_data / relative)
