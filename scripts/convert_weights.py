#!/usr/bin/env python3
"""torchvision's VGG-19 .pth as a Gluon .params file: `styletransfer convert-weights`."""
import sys

from styletransfer.cli.convert import main

if __name__ == '__main__':
    sys.exit(main())
