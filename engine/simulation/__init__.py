"""Bulk synthetic generation: labelled payment streams decided by the live policy, in chunks.

The pieces, each with one job:

* :mod:`.params` — :class:`SimulationParams` (what a run is) and :class:`RunRecord` (what it did);
* :mod:`.population` — cards, merchants and devices with profiles, seasonal Poisson arrivals and
  the legitimate payments of each simulated hour;
* :mod:`.scenarios` — the labelled scenarios, their rates, and the difficulty knobs' blending
  and drift;
* :mod:`.outcomes` — the observed disputes: which rows are disputed, why, and when;
* :mod:`.latency_model` — authorization latency of simulated payments;
* :mod:`.stream` — the hour-by-hour event stream (legitimate + fraud rows, in event order);
* :mod:`.runner` — chunks → features → decisions → Arrow → DuckDB, with the run record lifecycle;
* :mod:`.records` — the ``runs`` table;
* :mod:`.facade` — the simulation methods of :class:`~engine.service.Engine`.
"""

from engine.simulation.params import SCENARIOS, RunRecord, SimulationParams

__all__ = ["SCENARIOS", "RunRecord", "SimulationParams"]
