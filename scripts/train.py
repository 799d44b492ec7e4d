#!/usr/bin/env python3
"""The book's style transfer: `styletransfer train` (styletransfer/cli/train.py) under the
script's own name."""
import sys

from styletransfer.cli.train import main

if __name__ == '__main__':
    sys.exit(main(command=[sys.executable, sys.argv[0]]))
