"""Fixtures shared by the unit tests."""

import numpy as np
import pytest

from attention_from_scratch import core, steps


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture(params=[steps, core], ids=["steps", "core"])
def impl(request):
    """Either implementation package: ``impl.linear``, ``impl.attention`` ..."""
    return request.param
