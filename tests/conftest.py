"""Shared pytest fixtures.

Real EMDB maps and PDB models live in ``../shared/data`` beside the repository (see its
MANIFEST.md); they are never copied into the repository. Tests that need them use the
``shared_data`` or ``shared_file`` fixtures, which skip the test, with a reason, when the
folder or the file is absent.
"""
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _skip_unless_exists(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"real data not available: {path} not present "
                    f"(expected ../shared/data beside the repository, see its MANIFEST.md)")
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path of the ``../shared/data`` folder; skips the test when it is absent."""
    return _skip_unless_exists(SHARED_DATA)


@pytest.fixture(scope="session")
def shared_file(shared_data):
    """Function ``shared_file("maps/emd_3488_....mrc") -> Path``; skips if the file is absent."""
    return lambda relative: _skip_unless_exists(shared_data / relative)
