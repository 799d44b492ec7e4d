"""styletransfer stylize CONTENT... -o OUT: style in one forward pass.

--method fast --model MODEL: a trained per-style network (Johnson et al.);
--method adain --style STYLE --decoder DECODER: any style (Huang and Belongie's AdaIN).

One picture (-o names the file) or several and folders (-o names a folder; each picture keeps
its name). The network is loaded once, a style measured once; every input and output is checked
before the first pass. `--refine N` hands each result to the book's optimiser as its starting
image for N iterations.
"""
import argparse
import os
import sys

from styletransfer import device
from styletransfer.cli.common import guarded, parse_args
from styletransfer.errors import StyleTransferError
from styletransfer.images import SAVE_FORMATS
from styletransfer.inputs import parse_region

PROG = 'styletransfer stylize'
METHODS = ('fast', 'adain')
PICTURE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.gif', '.tif', '.tiff', '.webp')


def build_parser(prog=PROG):
    p = argparse.ArgumentParser(
        prog=prog, description='Stylise pictures in one forward pass: a network trained for '
        'its styles (--method fast: ours from styletransfer train-net, or the PyTorch '
        'examples\' candy.pth, mosaic.pth, rain_princess.pth, udnie.pth) or any style with '
        'AdaIN (--method adain: the authors\' decoder.pth with vgg_normalised.pth, or ours).')
    p.add_argument('content', nargs='+', metavar='CONTENT', help='pictures or folders of them')
    p.add_argument('-o', '--output', required=True, metavar='OUT',
                   help='the picture to write (.png/.jpg) for one content, else a folder')
    p.add_argument('--method', choices=METHODS, default='fast',
                   help='fast: a per-style network (default); adain: any style')
    p.add_argument('--model', metavar='MODEL',
                   help='fast: network file (.params, .pth, NAME-symbol.json) or a name under '
                        '~/.styletransfer/nets')
    p.add_argument('--decoder', metavar='FILE', help='adain: the decoder (decoder.pth or ours)')
    p.add_argument('--encoder', metavar='FILE',
                   help='adain: the encoder the decoder was trained with: the authors\' '
                        'vgg_normalised.pth; default: this project\'s VGG-19 (--weights)')
    p.add_argument('--style', action='append', metavar='PICTURE',
                   help='adain: a style picture (repeat for a mix); fast: the style --refine '
                        'optimises for')
    p.add_argument('--style-mix', metavar='S:W,S:W',
                   help='fast: styles of a multi-style network and their weights (indices or '
                        'names); adain: weights of the --style pictures by index (0:0.7,1:0.3); '
                        'normalised to sum 1')
    p.add_argument('--alpha', type=float, default=1.0, metavar='A',
                   help='adain: content/style trade-off in [0, 1] (default: 1, all style)')
    p.add_argument('--style-size', type=int, default=512, metavar='N',
                   help='adain: the style\'s short side when it is measured, as the authors\' '
                        'code does; 0 keeps its size (default: %(default)s)')
    p.add_argument('--region', action='append', metavar='MASK:STYLE',
                   help='adain: where MASK is white, use STYLE (or none: the content\'s '
                        'features); repeatable')
    p.add_argument('--size', metavar='WxH|W',
                   help='output size (a width alone keeps the aspect); default: the content\'s')
    p.add_argument('--preserve-colors', choices=('none', 'luminance', 'histogram'),
                   default='none', help='keep the content\'s colours; adain histogram: the '
                   'style picture takes the content\'s colour statistics first (default: none)')
    p.add_argument('--dtype', choices=('float32', 'bfloat16'), default='float32',
                   help='bfloat16 needs a CPU with AVX-512 (default: float32)')
    p.add_argument('--refine', type=int, default=0, metavar='N',
                   help='then N iterations of the book\'s optimisation from the result '
                        '(needs --style and VGG weights, --weights)')
    p.add_argument('--weights', default='zoo', metavar='zoo|random|PATH',
                   help='VGG-19 weights of --refine and of our AdaIN encoder (default: zoo)')
    p.add_argument('--overwrite', action='store_true', help='replace existing outputs')
    from styletransfer.cli.train import add_device_options
    add_device_options(p)
    p.add_argument('--debug', action='store_true', help='show tracebacks of errors')
    return p


def main(argv=None, prog=PROG):
    args, code = parse_args(build_parser(prog), sys.argv[1:] if argv is None else list(argv))
    if args is None:
        return code
    return guarded(prog, args, lambda: _stylize(args, prog))


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
    styles = args.style or []
    if args.method == 'fast':
        if not args.model:
            raise StyleTransferError('--method fast needs a trained network: give --model')
        for option in ('decoder', 'encoder', 'region'):
            if getattr(args, option):
                raise StyleTransferError('--%s is for --method adain' % option)
        settings = st.FastSettings(style_mix=args.style_mix or (), size=args.size,
                                   preserve_colors=args.preserve_colors)
        blend = [(p, 1.0) for p in styles[:1]]
    else:
        if not args.decoder:
            raise StyleTransferError('--method adain needs a decoder: give --decoder')
        if not styles:
            raise StyleTransferError('--method adain needs a style: give --style')
        settings = st.FastSettings(size=args.size, preserve_colors=args.preserve_colors,
                                   alpha=args.alpha, style_size=args.style_size)
        blend = _blend(styles, args.style_mix)
    regions = [parse_region(r) for r in args.region or []]
    if args.refine < 0:
        raise StyleTransferError('--refine must be 0 or more')
    if args.refine and not styles:
        raise StyleTransferError('--refine optimises towards a style picture: give --style')
    contents, several = pictures_in(args.content)
    if not contents:
        raise StyleTransferError('no pictures in %s' % ', '.join(args.content))
    pairs = plan_outputs(contents, several, args.output, args.overwrite)
    pictures = contents + [p for p, _ in blend] + [p for pair in regions for p in pair
                                                   if p != 'none']
    for path in pictures:
        load_image(path)                  # every picture readable before the first pass
    ctx, remark = device.resolve_ctx(args.ctx)
    if args.method == 'fast':
        fast = st.FastStylizer(args.model, ctx, args.dtype)
    else:
        fast = st.FastStylizer(ctx=ctx, dtype=args.dtype, decoder=args.decoder,
                               encoder=args.encoder or args.weights)
    refiner = st.Stylizer(st.Network(weights=args.weights), ctx) if args.refine else None
    print('# %s; context %s (%s), %d threads' % (fast.description, ctx, remark, threads))
    for content, out in pairs:
        inputs = st.Inputs(content, style_blend=blend if args.method == 'adain' else (),
                           region=regions)
        result = fast.stylize(inputs, settings)
        picture, seconds = result.picture, result.history[0].seconds
        if refiner is not None:
            height, width = picture.shape[:2]
            refined = refiner.stylize(
                st.Inputs(content, style_blend=blend, init=picture, region=regions),
                st.Settings(stages=['%dx%d:%d:%d' % (width, height, args.refine, args.refine)],
                            preserve_colors=args.preserve_colors
                            if args.preserve_colors != 'histogram' else 'none'))
            picture = refined.picture
        save_image(picture, out, {'Software': 'styletransfer', 'network': fast.description})
        print('%s -> %s (%dx%d, %.2f s%s)' % (content, out, picture.shape[1], picture.shape[0],
                                             seconds, ', refined %d iterations' % args.refine
                                             if args.refine else ''))
    return 0


def _blend(styles, mix):
    """AdaIN's styles with their weights: --style-mix by index into the --style list."""
    from styletransfer.fast.stylizer import parse_style_mix
    weights = [1.0] * len(styles) if not mix else [0.0] * len(styles)
    for key, weight in parse_style_mix(mix) if mix else ():
        if not isinstance(key, int) or not 0 <= key < len(styles):
            raise StyleTransferError('--style-mix %r: styles are numbered 0..%d in the order '
                                     'of --style' % (mix, len(styles) - 1))
        weights[key] = weight
    return list(zip(styles, weights))
