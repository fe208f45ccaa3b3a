"""aksim.scenario.Timings: the same derivations at load and when the admin API changes timings at run time."""
from __future__ import annotations

import pytest

from aksim.scenario import Timings


def test_connector_restart_sets_the_backoff_scale_at_load_and_at_run_time() -> None:
    assert Timings.from_dict({"connector_restart": 120}).backoff_scale == 12
    timings = Timings.from_dict({"connector_restart": 0.6})
    timings.update({"connector_restart": 120})          # the admin API: the back-off follows, as at load
    assert (timings.connector_restart, timings.backoff_scale) == (120, 12)
    timings.update({"connector_restart": 5, "backoff_scale": 1})
    assert timings.backoff_scale == 1                    # an explicit backoff_scale wins


def test_an_unknown_or_malformed_timing_changes_nothing() -> None:
    timings = Timings.from_dict({})
    before = (timings.lro, timings.poll)
    with pytest.raises(ValueError, match="unknown timings"):
        timings.update({"lro": 9, "nope": 1})
    with pytest.raises(ValueError):
        timings.update({"lro": 9, "poll": "soon"})
    assert (timings.lro, timings.poll) == before
