"""Base of a resource provider's request handlers."""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aksim.context import SimContext
    from aksim.world import World


class ProviderApi:
    """Base of a resource provider's request handlers: they look up ``sim.world`` at request time, since a
    scenario reload replaces the world."""

    def __init__(self, sim: "SimContext") -> None:
        self.sim = sim

    @property
    def world(self) -> "World":
        return self.sim.world
