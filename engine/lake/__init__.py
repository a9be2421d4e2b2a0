"""Simulation runs as a Parquet lake: hive-partitioned files plus a manifest per run."""
