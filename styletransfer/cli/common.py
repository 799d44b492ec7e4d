"""What the command-line tools share."""
import sys

# Exit status for input refused before any work: one line on stderr says why.
EXIT_BAD_INPUT = 2


def refuse(prog, message):
    """Print `PROG: error: MESSAGE` on stderr; return EXIT_BAD_INPUT for main to return."""
    print('%s: error: %s' % (prog, message), file=sys.stderr)
    return EXIT_BAD_INPUT


def parse_args(parser, argv):
    """(args, None), or (None, exit code) once argparse has printed usage, an error or help:
    `main(argv)` then returns the code instead of raising SystemExit."""
    try:
        return parser.parse_args(argv), None
    except SystemExit as stop:
        return None, stop.code if isinstance(stop.code, int) else 2
