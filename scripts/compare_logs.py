#!/usr/bin/env python3
"""Compare a training log with the d2l-zh book's losses: see styletransfer/cli/compare.py."""
import os
import sys

# run from a clone without installing the package
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from styletransfer.cli.compare import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main())
