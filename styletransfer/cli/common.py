"""What the command-line tools share."""


def parse_args(parser, argv):
    """(args, None), or (None, exit code) once argparse has printed usage, an error or help:
    `main(argv)` then returns the code instead of raising SystemExit."""
    try:
        return parser.parse_args(argv), None
    except SystemExit as stop:
        return None, stop.code if isinstance(stop.code, int) else 2
