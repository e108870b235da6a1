"""kbatch-dask's benchmarks: ``python -m benchmarks`` (see ``__main__.py``).

Every comparison is measured side by side in one run (interleaved
repetitions, medians); ``docs/benchmarks.md`` holds the latest figures.
``reliability.py`` (run as a script) measures how fast clusters stop after
each kind of fault.
"""
