"""Bulk synthetic generation: labelled payment streams decided by the live policy, in chunks.

The pieces, each with one job:

* :mod:`.params` — :class:`SimulationParams` (what a run is) and :class:`RunRecord` (what it did);
* :mod:`.population` — cards, merchants and devices with profiles, seasonal Poisson arrivals and
  the legitimate payments of each simulated hour;
* :mod:`.scenarios` — the labelled fraud scenarios and their chargeback (label-arrival) delays;
* :mod:`.latency_model` — authorization latency of simulated payments;
* :mod:`.stream` — the hour-by-hour event stream (legitimate + fraud rows, in event order);
* :mod:`.runner` — chunks → features → decisions → Arrow → DuckDB, with the run record lifecycle;
* :mod:`.records` — the ``runs`` table;
* :mod:`.facade` — the simulation methods of :class:`~engine.service.Engine`.
"""

from engine.simulation.params import SCENARIOS, RunRecord, SimulationParams

__all__ = ["SCENARIOS", "RunRecord", "SimulationParams"]
