#!/usr/bin/env python3
"""Convert torchvision's VGG-19 .pth into a Gluon .params file: see styletransfer/cli/convert.py."""
import os
import sys

# run from a clone without installing the package
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from styletransfer.cli.convert import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main())
