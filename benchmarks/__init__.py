"""Benchmarks of the event pipeline and the HTTP write path: ``python -m benchmarks [--quick]``.

Every figure is measured in one run beside a bare baseline on the same machine, broker and
database, and printed with its ratio to that baseline (see ``benchmarks/__main__.py``). They
report; they never fail the build (the exit status is non-zero only when a benchmark errors).
"""
