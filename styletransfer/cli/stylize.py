"""styletransfer stylize --model MODEL CONTENT... -o OUT: style in one forward pass.

One picture (-o names the file) or several and folders (-o names a folder; each picture keeps
its name). The network is loaded once; every input and output is checked before the first pass.
`--refine N` hands each result to the book's optimiser as its starting image for N iterations.
"""
import argparse
import os
import sys

from styletransfer import device
from styletransfer.cli.common import EXIT_INTERRUPTED, parse_args, refuse
from styletransfer.errors import StyleTransferError
from styletransfer.images import SAVE_FORMATS

PROG = 'styletransfer stylize'
METHODS = ('fast',)
PICTURE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.gif', '.tif', '.tiff', '.webp')


def build_parser(prog=PROG):
    p = argparse.ArgumentParser(
        prog=prog, description='Stylise pictures in one forward pass of a trained network: '
        'our own (styletransfer train-net) or the PyTorch examples\' fast_neural_style models '
        '(candy.pth, mosaic.pth, rain_princess.pth, udnie.pth).')
    p.add_argument('content', nargs='+', metavar='CONTENT', help='pictures or folders of them')
    p.add_argument('-o', '--output', required=True, metavar='OUT',
                   help='the picture to write (.png/.jpg) for one content, else a folder')
    p.add_argument('--method', choices=METHODS, default='fast',
                   help='fast: a per-style network (Johnson et al.), default')
    p.add_argument('--model', required=True, metavar='MODEL',
                   help='network file (.params, .pth, NAME-symbol.json) or a name under '
                        '~/.styletransfer/nets')
    p.add_argument('--style-mix', metavar='S:W,S:W',
                   help='styles of a multi-style network and their weights (indices or names; '
                        'normalised to sum 1); default: its first style')
    p.add_argument('--size', metavar='WxH|W',
                   help='output size (a width alone keeps the aspect); default: the content\'s')
    p.add_argument('--preserve-colors', choices=('none', 'luminance', 'histogram'),
                   default='none', help='keep the content\'s colours (default: none)')
    p.add_argument('--dtype', choices=('float32', 'bfloat16'), default='float32',
                   help='bfloat16 needs a CPU with AVX-512 (default: float32)')
    p.add_argument('--refine', type=int, default=0, metavar='N',
                   help='then N iterations of the book\'s optimisation from the result '
                        '(needs --style and VGG weights, --weights)')
    p.add_argument('--style', metavar='PICTURE', help='the style picture --refine optimises for')
    p.add_argument('--weights', default='zoo', metavar='zoo|random|PATH',
                   help='VGG-19 weights of --refine (default: zoo)')
    p.add_argument('--overwrite', action='store_true', help='replace existing outputs')
    from styletransfer.cli.train import add_device_options
    add_device_options(p)
    p.add_argument('--debug', action='store_true', help='show tracebacks of errors')
    return p


def main(argv=None, prog=PROG):
    args, code = parse_args(build_parser(prog), sys.argv[1:] if argv is None else list(argv))
    if args is None:
        return code
    try:
        return _stylize(args, prog)
    except StyleTransferError as e:
        if args.debug:
            raise
        return refuse(prog, e)
    except KeyboardInterrupt:
        if args.debug:
            raise
        print('\n%s: interrupted' % prog, file=sys.stderr)
        return EXIT_INTERRUPTED


def pictures_in(paths):
    """The picture files named or inside the folders named (sorted per folder), and whether
    several were asked for."""
    found, several = [], len(paths) > 1
    for path in paths:
        if os.path.isdir(path):
            several = True
            found += sorted(os.path.join(path, n) for n in os.listdir(path)
                            if n.lower().endswith(PICTURE_EXTENSIONS)
                            and os.path.isfile(os.path.join(path, n)))
        else:
            found.append(path)
    return found, several


def plan_outputs(contents, several, output, overwrite):
    """(content, output path) pairs, every output checked before anything runs."""
    from styletransfer.images import check_output_format
    from styletransfer.outputs import OutputPlan
    if several:
        if os.path.exists(output) and not os.path.isdir(output):
            raise StyleTransferError('%s: several pictures need a folder as output' % output)
        os.makedirs(output, exist_ok=True)
        pairs = []
        for path in contents:
            name = os.path.basename(path)
            if os.path.splitext(name)[1].lower() not in SAVE_FORMATS:
                name = os.path.splitext(name)[0] + '.png'
            pairs.append((path, os.path.join(output, name)))
    else:
        check_output_format(output)
        pairs = [(contents[0], output)]
    targets = [out for _, out in pairs]
    if len(set(map(os.path.realpath, targets))) != len(targets):
        raise StyleTransferError('two pictures would be written to one file: give them '
                                 'different names')
    for _, out in pairs:
        OutputPlan(out, 0).check(overwrite, inputs=contents)
    return pairs


def _stylize(args, prog):
    import styletransfer as st
    from styletransfer.images import load_image, save_image
    threads = device.set_threads(args.threads)
    settings = st.FastSettings(style_mix=args.style_mix or (), size=args.size,
                               preserve_colors=args.preserve_colors)
    if args.refine < 0:
        raise StyleTransferError('--refine must be 0 or more')
    if args.refine and not args.style:
        raise StyleTransferError('--refine optimises towards a style picture: give --style')
    contents, several = pictures_in(args.content)
    if not contents:
        raise StyleTransferError('no pictures in %s' % ', '.join(args.content))
    pairs = plan_outputs(contents, several, args.output, args.overwrite)
    for path in contents + ([args.style] if args.style else []):
        load_image(path)                  # every picture readable before the first pass
    ctx, remark = device.resolve_ctx(args.ctx)
    fast = st.FastStylizer(args.model, ctx, args.dtype)
    refiner = None
    if args.refine:
        refiner = st.Stylizer(st.Network(weights=args.weights), ctx)
    print('# %s; context %s (%s), %d threads' % (fast.description, ctx, remark, threads))
    for content, out in pairs:
        result = fast.stylize(st.Inputs(content), settings)
        picture, seconds = result.picture, result.history[0].seconds
        if refiner is not None:
            height, width = picture.shape[:2]
            refined = refiner.stylize(
                st.Inputs(content, args.style, init=picture),
                st.Settings(stages=['%dx%d:%d:%d' % (width, height, args.refine, args.refine)],
                            preserve_colors=args.preserve_colors
                            if args.preserve_colors != 'histogram' else 'none'))
            picture = refined.picture
        save_image(picture, out, {'Software': 'styletransfer', 'network': fast.description})
        print('%s -> %s (%dx%d, %.2f s%s)' % (content, out, picture.shape[1], picture.shape[0],
                                             seconds, ', refined %d iterations' % args.refine
                                             if args.refine else ''))
    return 0
