#!/usr/bin/env python3
"""Style in one forward pass: `styletransfer stylize` (styletransfer/cli/stylize.py)."""
import sys

from styletransfer.cli.stylize import main

if __name__ == '__main__':
    sys.exit(main(prog='stylize.py'))
