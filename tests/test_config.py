from __future__ import annotations

import numpy as np
import pytest

from distdataeval import config
from distdataeval.errors import InvalidParameterError


def test_set_get_and_use_seed():
    config.set_seed(3)
    assert config.get_seed() == 3
    with config.use_seed(7):
        assert config.get_seed() == 7
    assert config.get_seed() == 3
    config.set_seed(None)
    assert config.get_seed() is None


def test_streams_reproducible_and_independent():
    with config.use_seed(42):
        a = config.rng_for("knn", 0).random(4)
        b = config.rng_for("knn", 0).random(4)
        c = config.rng_for("knn", 1).random(4)
        d = config.rng_for("kmeans").random(4)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c) and not np.allclose(a, d)
    with config.use_seed(43):
        assert not np.allclose(config.rng_for("knn", 0).random(4), a)


@pytest.mark.parametrize("bad", [-1, 1.5, "3", True])
def test_bad_seed(bad):
    with pytest.raises(InvalidParameterError, match="seed must be"):
        config.set_seed(bad)


def test_unknown_stage():
    with pytest.raises(InvalidParameterError, match="unknown seed stage"):
        config.seed_sequence("nope")
