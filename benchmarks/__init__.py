"""Tools that measure the styletransfer package from outside, through its public API only.

Run from the repository root (the folder holding this one), with the package installed:

    python -m benchmarks.bench --help

bench.py     the command line and the orchestration: sizes, rounds, processes, the peer
workers.py   what runs inside each measurement process (ours, the book's plain step, a schedule)
summary.py   the arithmetic (medians, per-round ratios, bounds, linearity) and the report

It is a package, run with -m, so that its modules import each other by name without anyone
touching sys.path: the parent finds the workers the same way (`python -m benchmarks.workers`,
run from the repository root).
"""
