"""Where a simulated payment comes from: its IP address (card-not-present only) and the
world columns stored with it (merchant category and country, card country, IP and its country).

A row's IP is drawn from a keyed hash of the row itself (seed, event time, card, merchant,
scenario): a counter-based random number. It depends on nothing but the row, so it cannot change
with chunking, and the scenario generators need not know about IP addresses; every other random
number of a run comes from the named numpy streams.

* **Genuine** card-not-present payments use one of the card's two home addresses (90%: its
  issuing country), a traveller's address abroad (6%, countries.csv ``travel``) or a VPN exit
  (4%, ``vpn``).
* **Fraud** rows use a residential proxy (35%: another cardholder's home address, so mostly the
  card base's countries) or an address of the fraud pool (65%, ``fraud``). Friendly fraud is
  the cardholder's own payment: its address is a genuine one; so is that of fraud sent from one
  of the card's own devices (malware or remote access on the victim's device: blended episodes).
* Card-present payments (pos, contactless) carry no IP address.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
import pyarrow as pa

from engine import geo
from engine.issuers import countries
from engine.merchant_categories import categories
from engine.simulation.population import CARD_PRESENT, Population
from engine.simulation.rows import Rows

NO_IP = -1
HOME_IP_SHARE, TRAVEL_IP_SHARE = 0.90, 0.06  # genuine: home, travelling, else a VPN exit
PROXY_SHARE = 0.35  # fraud: a residential proxy in the card base, else the fraud pool
_U32 = 2.0**-32


@dataclass(frozen=True, slots=True)
class WorldColumns:
    """A chunk's IP codes (into ``pop.ip_names``, :data:`NO_IP` for none) and their countries
    (into ``geo_table().codes``, ``geo.UNKNOWN`` for none)."""

    ip: np.ndarray  # int64
    ip_country: np.ndarray  # int16


def _mix(x: np.ndarray) -> np.ndarray:
    """The splitmix64 finalizer (uint64 arrays; wrapping multiplication)."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def row_hash(rows: Rows, seed: int) -> np.ndarray:
    """64 random-looking bits per row, a function of the seed and the row's identity."""
    n = len(rows)
    key = _mix(np.full(n, seed & (2**64 - 1), dtype=np.uint64))
    h = _mix(key ^ rows.t_ms.astype(np.uint64))
    h = _mix(h ^ rows.card.astype(np.uint64))
    identity = (rows.merchant.astype(np.uint64) << np.uint64(8)) | (
        rows.scenario.astype(np.int64) + 1
    ).astype(np.uint64)
    return _mix(h ^ identity)


def world_columns(rows: Rows, pop: Population, seed: int) -> WorldColumns:
    """Each row's IP address (card-not-present only) and its country."""
    h = row_hash(rows, seed)
    ua = (h >> np.uint64(32)).astype(np.float64) * _U32
    ub = (h & np.uint64(0xFFFFFFFF)).astype(np.float64) * _U32

    def pool(name: str) -> np.ndarray:
        first, size = pop.ip_pools[name]
        return first + (ub * size).astype(np.int64)

    # home addresses are codes 2 c and 2 c + 1 (population._ip_addresses)
    home = 2 * rows.card + (ub >= 0.8)
    elsewhere = np.where(ua < HOME_IP_SHARE + TRAVEL_IP_SHARE, pool("travel"), pool("vpn"))
    genuine = np.where(ua < HOME_IP_SHARE, home, elsewhere)
    # friendly fraud is the cardholder's own payment: a genuine IP; so is fraud from one of the
    # card's own devices (malware or a remote-access tool on the victim's device pays from the
    # victim's home network: the blended episodes of class overlap)
    fraud = rows.is_fraud
    if fraud.any():
        own = (rows.device == pop.card_device[rows.card]) | (
            rows.device == pop.card_device2[rows.card]
        )
        fraud = fraud & ~own
    if fraud.any():
        proxy = 2 * (ub * pop.n_cards).astype(np.int64)  # some cardholder's first address
        genuine = np.where(fraud, np.where(ua < PROXY_SHARE, proxy, pool("fraud")), genuine)
    ip = np.where(CARD_PRESENT[rows.channel], NO_IP, genuine)
    ip_country = np.where(ip >= 0, pop.ip_country[np.maximum(ip, 0)], geo.UNKNOWN)
    return WorldColumns(ip=ip, ip_country=ip_country.astype(np.int16))


@cache
def labels() -> dict[str, np.ndarray]:
    """The label arrays of the coded world attributes (built once; rules cache by identity)."""
    return {
        "merchant_category": np.array(categories().mcc, dtype=object),
        "country": np.array(countries().codes, dtype=object),
        "ip_country": np.array(geo.geo_table().codes, dtype=object),
    }


@cache
def arrow_labels() -> dict[str, pa.Array]:
    """:func:`labels` as Arrow dictionaries, plus each category's MCC as a number."""
    return {
        "country": pa.array(countries().codes, pa.string()),
        "ip_country": pa.array(geo.geo_table().codes, pa.string()),
        "mcc_number": np.array([int(code) for code in categories().mcc], dtype=np.int16),
    }
