"""Fixtures the integration tests share."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.channels_support import Local, local_providers


@pytest.fixture
def local(tmp_path: Path) -> Iterator[Local]:
    """The local SMTP inbox and the SMS / push / webhook provider server of one test."""
    with local_providers(tmp_path) as found:
        yield found
