"""convert_weights.py IN.pth OUT.params: torchvision's VGG-19 weights as a Gluon .params file.

The input is read without torch and without unpickling anything but tensors (see
styletransfer.vgg.convert). Exit status: 0 when the file was written, 2 for bad input (unreadable or
unsafe file, not VGG-19, existing output, bad option).
"""
import argparse
import math

from styletransfer.vgg import convert
from styletransfer.cli.common import parse_args, refuse
from styletransfer.errors import StyleTransferError
from styletransfer.images import RGB_MEAN, RGB_STD

PROG = 'convert_weights.py'


def _triple(values):
    return '(%s)' % ', '.join('%g' % v for v in values)


def _classifier_share():
    """The classifier's share of VGG-19's values, in percent."""
    def values(params):
        return sum(math.prod(p.shape) for p in params)
    total = values(convert.expected_parameters())
    return round(100 * (total - values(convert.expected_parameters(features_only=True))) / total)


def build_parser(prog=PROG):
    parser = argparse.ArgumentParser(
        prog=prog,
        description='Convert torchvision\'s VGG-19 checkpoint (%s, the file torch.hub caches, or '
                    'any .pth holding a torchvision vgg19 state dict) into a Gluon .params file '
                    'for train.py --weights. torch is not needed, and the .pth is read without '
                    'running any code it may contain. torchvision\'s VGG-19 expects the same '
                    'input as Gluon\'s model zoo (RGB scaled to [0, 1], then ImageNet mean %s and '
                    'std %s), so the converted weights work with our preprocessing unchanged.'
                    % (convert.TORCHVISION_FILE, _triple(RGB_MEAN), _triple(RGB_STD)))
    parser.add_argument('input', metavar='IN.pth', help='PyTorch checkpoint, zip (torch >= 1.6) '
                        'or legacy (older torch, as torchvision\'s 2017 file) format')
    parser.add_argument('output', metavar='OUT.params', help='Gluon parameter file to write')
    parser.add_argument('--features-only', action='store_true',
                        help='leave out the classifier (three dense layers, %d%%%% of the values): '
                             'style transfer uses only the convolutions' % _classifier_share())
    parser.add_argument('--overwrite', action='store_true', help='replace OUT if it exists')
    return parser


def format_report(result, output, features_only):
    groups = ['%d convolutions' % result.convs]
    if result.denses:
        groups.append('%d dense layers' % result.denses)
    line = '%s, %s values, %.1f MB -> %s' % (', '.join(groups), format(result.values, ','),
                                             result.size / 2 ** 20, output)
    if features_only:
        line += ' (classifier left out: --features-only)'
    return line


def main(argv=None, prog=PROG):
    args, code = parse_args(build_parser(prog), argv)
    if args is None:
        return code
    try:
        result = convert.convert(args.input, args.output, features_only=args.features_only,
                                 overwrite=args.overwrite)
    except StyleTransferError as error:
        return refuse(prog, error)
    print(convert.describe_input(args.input, result.sha256))
    print(format_report(result, args.output, args.features_only))
    if result.ignored and not args.features_only:
        print('ignored %d parameter(s) VGG-19 has no place for: %s'
              % (len(result.ignored), ', '.join(map(str, result.ignored[:5]))
                 + (', ...' if len(result.ignored) > 5 else '')))
    return 0
