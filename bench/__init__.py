"""stream-app benchmarks: ``python -m bench.run [--quick]`` (``make bench`` / ``make bench-quick``).

Each phase starts its own broker and Redis (the real ``stream_app.services`` machinery), feeds a
seeded workload from the simulator, and returns a dict of figures; :mod:`bench.run` puts them in
``bench/results/<date>.json``, ``bench/RESULTS.md`` and PNG plots. Benchmarks are not tests:
nothing here asserts a timing, the report says whether each target is met.
"""
