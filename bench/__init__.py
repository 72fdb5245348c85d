"""Benchmarks of Kalam for notebooks against the founding design's targets and the tools people
would use instead (raw DataFusion, SQLite, DuckDB). Run them all with ``python -m bench`` (or
``make bench``); see ``bench/__main__.py`` for the options and ``bench/common.py`` for the
conventions every ``qNN_*.py`` script follows."""
