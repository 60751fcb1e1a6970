"""Synthetic customer feedback with labelled incidents, deterministic by seed.

:class:`Simulator` generates the raw messages (and their ground truth) of a whole network;
:class:`SimulatorSource` feeds them to a bytewax dataflow, resumably, optionally in real time.
"""

from boucle.sources.simulator.generate import JOURNEY_STAGES
from boucle.sources.simulator.incidents import INCIDENT_KINDS, Incident
from boucle.sources.simulator.malformed import MALFORMED_REASONS
from boucle.sources.simulator.simulator import Simulator
from boucle.sources.simulator.source import SimulatorSource

__all__ = ["INCIDENT_KINDS", "JOURNEY_STAGES", "MALFORMED_REASONS", "Incident", "Simulator", "SimulatorSource"]
