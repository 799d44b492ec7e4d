#!/usr/bin/env python3
"""Remake the README's pictures of the controls: see styletransfer/cli/gallery.py."""
import os
import sys

# run from a clone without installing the package
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from styletransfer.cli.gallery import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main())
