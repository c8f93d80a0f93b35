"""The canonical benchmark (DESIGN.md): wrk against a running gateway over loopback.

Not a test: pytest never collects it. Entry points: `python -m bench` and `bench/run.sh`
(what `make bench` calls); see bench/README.md.
"""
