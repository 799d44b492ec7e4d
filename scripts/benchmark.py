#!/usr/bin/env python3
"""Time the optimisation step per image size (ours, the book's, a PyTorch peer): see
styletransfer/cli/benchmark.py."""
import os
import sys

# run from a clone without installing the package
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from styletransfer.cli.benchmark import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main())
