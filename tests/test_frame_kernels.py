"""The numba kernels of ``comms.frame_arrays`` against its NumPy code: the same bytes and the
same decoded arrays, over random and hostile input; and a string's reports read the same
through either."""

from __future__ import annotations

import numpy as np
import pytest

from cellwarden.comms import frame_arrays
from cellwarden.comms.slave_reports import ReportLayout
from cellwarden.compiled import HAVE_NUMBA

pytestmark = pytest.mark.skipif(not HAVE_NUMBA, reason="numba is not installed")
LAYOUT = ReportLayout([18, 17, 12, 5], [6, 5, 4, 1])
HOSTILE = [np.nan, np.inf, -np.inf, -0.0, 1e300, -1e300, 0.5, 2.5, 25.25, 25.75, -40.0, 86.75]


@pytest.mark.parametrize("kind", range(3))
def test_encode_kernel_gives_the_numpy_bytes(kind: int) -> None:
    spec = LAYOUT.kinds[kind]
    rng = np.random.default_rng(kind)
    for _ in range(200):
        count, columns = int(rng.integers(1, 80)), spec.columns
        values = rng.uniform(-100.0, 300_000.0, (count, columns)) / rng.choice([1, 100, 10_000])
        hostile = rng.random((count, columns)) < 0.2
        values[hostile] = rng.choice(HOSTILE, hostile.sum())
        carried = rng.random((count, columns)) < 0.85
        labels = np.where(rng.random((count, columns)) < 0.1, rng.integers(0, 256), -1)
        alive = rng.integers(0, 100, count)
        seeds = rng.integers(0, 256, count).astype(np.uint8)
        base = spec.base_words[rng.integers(0, spec.base_words.size, count)]
        args = (spec.layout, values, carried, alive, seeds, labels, base)
        numpy_bytes = frame_arrays.encode(*args, compiled=False)
        assert (frame_arrays.encode(*args, compiled=True) == numpy_bytes).all()


@pytest.mark.parametrize("kind", range(3))
def test_decode_kernel_gives_the_numpy_arrays(kind: int) -> None:
    spec = LAYOUT.kinds[kind]
    rng = np.random.default_rng(10 + kind)
    for _ in range(200):
        count = int(rng.integers(0, 80))
        payload = rng.integers(0, 256, (count, 8), dtype=np.uint8)
        seeds = rng.integers(0, 256, count).astype(np.uint8)
        good = rng.random(count) < 0.5  # half of them with a CRC that holds
        payload[good, 7] = frame_arrays.crcs(payload[good], seeds[good])
        keys = spec.base_words.size
        numpy_frames = frame_arrays.decode(spec.layout, payload, seeds, keys, compiled=False)
        compiled = frame_arrays.decode(spec.layout, payload, seeds, keys, compiled=True)
        for name in ("usable", "mux", "alive", "values", "raws"):
            want, got = getattr(numpy_frames, name), getattr(compiled, name)
            assert want.dtype == got.dtype and want.tobytes() == got.tobytes(), name
