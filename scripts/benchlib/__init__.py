"""The parts of ``scripts/bench.py``: end-to-end benchmarks of bridge against its alternatives.

Each benchmark module has ``run(quick, out) -> dict``: it measures, prints a table, writes
``<out>/<name>.json`` and ``<out>/<name>.png``; ``report`` turns the JSON files into
BENCHMARKS.md. Nothing here is product code: it drives ``bridge run`` processes, a counting
``bridge local`` and a real Kafka broker from the outside.
"""
