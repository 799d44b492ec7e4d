"""What the command-line tools share: the one-line error, argument parsing that returns instead
of exiting, and the option names of the library's fields."""
import re
import sys

# Exit status for input refused before any work: one line on stderr says why.
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130

# Library fields whose option is not simply the field with dashes.
OPTION_NAMES = {'stages': '--stage'}


def option_name(field):
    return OPTION_NAMES.get(field, '--' + field.replace('_', '-'))


def refuse(prog, message):
    """Print `PROG: error: MESSAGE` on stderr; return EXIT_BAD_INPUT for main to return. A
    StyleTransferError that names its field has the field's first mention put in the command
    line's words (content_weight -> --content-weight)."""
    text = str(message)
    field = getattr(message, 'field', None)
    if field:
        text = re.sub(r'(?<![\w-])%s(?!\w)' % re.escape(field), option_name(field), text,
                      count=1)
    print('%s: error: %s' % (prog, text), file=sys.stderr)
    return EXIT_BAD_INPUT


def parse_args(parser, argv):
    """(args, None), or (None, exit code) once argparse has printed usage, an error or help:
    `main(argv)` then returns the code instead of raising SystemExit."""
    try:
        return parser.parse_args(argv), None
    except SystemExit as stop:
        return None, stop.code if isinstance(stop.code, int) else 2


def guarded(prog, args, work, interrupted='interrupted'):
    """`work()`, with a StyleTransferError turned into the one-line refusal (exit 2) and Ctrl-C
    into one line (exit 130); --debug (args.debug) lets both through with their traceback."""
    from styletransfer.errors import StyleTransferError
    debug = getattr(args, 'debug', False)
    try:
        return work()
    except StyleTransferError as e:
        if debug:
            raise
        return refuse(prog, e)
    except KeyboardInterrupt:
        if debug:
            raise
        print('\n%s: %s' % (prog, interrupted), file=sys.stderr)
        return EXIT_INTERRUPTED
