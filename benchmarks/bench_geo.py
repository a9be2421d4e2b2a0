"""GeoIP cost: loading the bundled data once per process, and lookups, against the package.

    .venv/bin/python benchmarks/bench_geo.py            # 1M vectorised lookups, 20k reference

* **load** — a fresh interpreter's first table, twice: with an empty cache directory (geoip2fast
  reading its gzipped pickle, the numpy arrays built from it and written to the cache), then
  from the cache that run left (what every later process pays); and geoip2fast's own load alone
  (``GeoIP2Fast()``) in another fresh interpreter: the reference (module imports excluded from
  all three).
* **lookup** — ``countries_of`` on 1M random addresses (one ``np.searchsorted``) against
  ``GeoIP2Fast().lookup`` one address at a time (the package's API), per address.
* **sampling** — ``random_ips`` for 1M addresses in the card base's countries.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

_TIMED_LOAD = """
import time
t = time.perf_counter()
{body}
print(time.perf_counter() - t)
"""


def _fresh(body: str) -> float:
    code = _TIMED_LOAD.format(body=body)
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, capture_output=True)
    return float(out.stdout.decode().split()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lookups", type=int, default=1_000_000)
    parser.add_argument("--reference", type=int, default=20_000)
    args = parser.parse_args()

    imports = "import engine.geo\nimport geoip2fast\nimport platformdirs\nt = time.perf_counter()"
    with tempfile.TemporaryDirectory(prefix="ptsim-geo-") as cache:
        table = f"{imports}\nengine.geo.cached_geo_table(__import__('pathlib').Path({cache!r}))"
        cold, warm = _fresh(table), _fresh(table)
    package = _fresh(f"{imports}\ngeoip2fast.GeoIP2Fast()")
    print(f"load (fresh process, imports excluded): built from the package {cold:.3f} s, "
          f"from the cache {warm:.3f} s; GeoIP2Fast() alone {package:.3f} s")  # fmt: skip

    from geoip2fast import GeoIP2Fast

    from engine import geo

    table = geo.geo_table()
    rng = np.random.default_rng(0)
    ips = rng.integers(0, 2**32, args.lookups, dtype=np.uint64).astype(np.uint32)
    started = time.perf_counter()
    geo.countries_of(ips)
    vectorised = time.perf_counter() - started
    reader = GeoIP2Fast()
    texts = geo.ip_texts(ips[: args.reference]).to_pylist()
    started = time.perf_counter()
    for text in texts:
        reader.lookup(text)
    one_by_one = time.perf_counter() - started
    print(f"lookup: countries_of {args.lookups / vectorised:,.0f} addresses/s; "
          f"GeoIP2Fast().lookup {args.reference / one_by_one:,.0f} addresses/s "
          f"({len(table.first):,} networks)")  # fmt: skip

    countries = np.repeat([table.code_index(c) for c in ("GB", "DE", "US", "FR")], 250_000)
    started = time.perf_counter()
    geo.random_ips(rng, countries)
    print(
        f"sampling: random_ips {len(countries) / (time.perf_counter() - started):,.0f} addresses/s"
    )


if __name__ == "__main__":
    main()
