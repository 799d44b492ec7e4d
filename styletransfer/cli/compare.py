"""compare_logs.py OURS [REFERENCE]: judge a training log against the d2l-zh book's printed losses.

Exit status: 0 when every number the reference logs is inside its band, 1 when any is outside
or missing, 2 for bad input (unreadable file, no log lines, bad option).
"""
import argparse
import codecs

from styletransfer import booklog
from styletransfer.cli.common import parse_args, refuse
from styletransfer.errors import StyleTransferError

PROG = 'compare_logs.py'




def _read_text(path):
    """Decode a log whatever wrote it: UTF-8 (with or without BOM), UTF-16 with BOM (what
    Windows PowerShell's '>' produces) or GB18030 (a Chinese Windows console)."""
    try:
        with open(path, 'rb') as f:
            data = f.read()
    except OSError as error:
        raise StyleTransferError('cannot read %s: %s' % (path, error.strerror or error)) from None
    encodings = (('utf-16',) if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))
                 else ('utf-8-sig', 'gb18030'))
    for encoding in encodings:
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            pass
    raise StyleTransferError('cannot read %s: not a text file' % path)


def _load(path):
    stages = booklog.parse_log(_read_text(path))
    if not any(stage.entries for stage in stages):
        raise StyleTransferError('no loss log lines in %s (expected lines like "%s")'
                       % (path, booklog.format_epoch(50, 10.11, 29.39, 3.46, 0.03)))
    return stages


def build_parser(prog=PROG):
    parser = argparse.ArgumentParser(
        prog=prog,
        description='Compare the loss log of a style-transfer run with a reference log, by '
                    'default the d2l-zh book\'s (chapter 9.11) together with its six-run spread.')
    parser.add_argument('ours', metavar='OURS', help='our log (English or Chinese lines)')
    parser.add_argument('reference', metavar='REFERENCE', nargs='?',
                        help='reference log (default: the book\'s log shipped with the package; '
                             'the measured spread applies only to it)')
    parser.add_argument('--rel-tol', type=float, default=booklog.DEFAULT_REL_TOL,
                        help='accepted relative difference from the reference, before the '
                             'print rounding of 0.005 is added (default: %(default)s)')
    return parser


def main(argv=None, prog=PROG):
    args, code = parse_args(build_parser(prog), argv)
    if args is None:
        return code
    if not args.rel_tol >= 0:       # also rejects nan
        return refuse(prog, '--rel-tol must be a number >= 0, not %s' % args.rel_tol)
    try:
        ours = _load(args.ours)
        if args.reference is None:
            reference, spread = booklog.load_book_reference(), booklog.load_book_spread()
        else:
            reference, spread = _load(args.reference), None
    except StyleTransferError as error:
        return refuse(prog, error)
    comparison = booklog.compare(ours, reference, rel_tol=args.rel_tol, spread=spread)
    print('ours:      %s' % args.ours)
    print('reference: %s' % (args.reference or 'the d2l-zh book, chapter 9.11 (%s)'
                             % booklog.BOOK_LOG.name))
    print()
    print(booklog.format_comparison(comparison))
    return 0 if comparison.ok else 1
