"""Benchmarks of fastmmd's ops: one ``bench_<op>.py`` per op, run through pytest-benchmark.

``python -m bench.run <op>`` runs one op's cases, appends the results to ``bench/results/<op>_<device>.csv``
and draws ``bench/results/<op>_<device>.png`` from that CSV.
"""
