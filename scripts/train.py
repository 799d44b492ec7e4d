#!/usr/bin/env python3
"""Run a style transfer (the book's run with no arguments): see styletransfer/cli/train.py."""
import os
import sys

# run from a clone without installing the package
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from styletransfer.cli.train import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main())
