#!/usr/bin/env python3
"""Compare a run's loss log with the book's: `styletransfer compare-logs`."""
import sys

from styletransfer.cli.compare import main

if __name__ == '__main__':
    sys.exit(main())
