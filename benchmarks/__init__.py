"""Throughput, utilization and scaling measurements (make bench); never part of make test."""
