#!/usr/bin/env python3
"""Remake the README's pictures of the controls beyond the book, through the package's public
API (the package installed; run from anywhere):

    python docs/gallery.py [--weights zoo] [--only NAME ...]

Each example is one run on the bundled Tübingen photo and Starry Night, and a sheet
(docs/gallery/NAME.jpg) of what went in beside the same run without the control and the run
with it. The runs use the weights given (random by default: no pretrained file exists on this
project's machines). Random VGG-19 features still measure colour and local texture, but their
losses are tiny next to the total-variation term, so the gallery raises the style weight and
lowers the TV weight until the style shows; with pretrained weights the book's weights are the
ones to use. Every sheet's caption names the weights.

The network is loaded and built once (one st.Stylizer) for every run; --pooling avg measures
with another network, built once for that example.

Exit status: 0 when every sheet was made, 1 when a run failed, 2 for bad options (refused with
one line before any file is made).
"""
import argparse
import os
import sys

import numpy as np
from PIL import Image

import styletransfer as st
from styletransfer import device
from styletransfer.data import bundled
from styletransfer.images import load_image, save_image
from styletransfer.report import contact_sheet

PROG = 'gallery.py'
HERE = os.path.dirname(os.path.abspath(__file__))
CONTENT, STYLE = 'tubingen.jpg', 'starry_night.jpg'
SECOND_STYLE = 'the_scream.jpg'
TOP_MASK = 'top-mask.png'     # made by this script: the upper 45% of the picture white
TOP_SHARE = 0.45
SHEET_HEIGHT = 160
# With random weights the style terms are about 1e-9 of the book's scale (see the docstring).
RANDOM_WEIGHTS = dict(style_weight=1e9, tv_weight=1)
# Every run: one L-BFGS stage.
COMMON = dict(optimizer='lbfgs')


def _example(label, settings=None, network=None, inputs=None, shown=()):
    """`label`: what the sheet calls the control (the command line's words, as the README
    shows them); settings, network: the fields it sets; inputs(mask): the st.Inputs fields it
    sets, given the path of the mask this script makes; shown: extra input panels, (label,
    bundled picture or TOP_MASK)."""
    return dict(label=label, settings=settings or {}, network=network or {},
                inputs=inputs or (lambda mask: {}), shown=list(shown))


EXAMPLES = {
    'style-blend': _example('--style-blend starry 0.5, scream 0.5',
                            inputs=lambda mask: dict(style=None, style_blend=(
                                (bundled(STYLE), 0.5), (bundled(SECOND_STYLE), 0.5))),
                            shown=[('second style', SECOND_STYLE)]),
    'style-scale': _example('--style-scale 0.5 (coarser strokes)',
                            settings=dict(style_scale=0.5)),
    'luminance': _example('--preserve-colors luminance',
                          settings=dict(preserve_colors='luminance')),
    'histogram': _example('--preserve-colors histogram',
                          settings=dict(preserve_colors='histogram')),
    'region': _example('--region mask:scream',
                       inputs=lambda mask: dict(region=((mask, bundled(SECOND_STYLE)),)),
                       shown=[('mask', TOP_MASK), ('style in mask', SECOND_STYLE)]),
    'init-noise': _example('--init noise', inputs=lambda mask: dict(init='noise')),
    'shallow-layers': _example('--style-layer-weights 1,1,0,0,0',
                               settings=dict(style_layer_weights='1,1,0,0,0')),
    'avg-pooling': _example('--pooling avg', network=dict(pooling='avg')),
}


def build_parser():
    p = argparse.ArgumentParser(
        prog=PROG, description='Remake the README\'s pictures of the controls beyond the book: '
        'one run per control, and a sheet per control of its inputs, the run without it and '
        'the run with it.')
    p.add_argument('--out', default=os.path.join(HERE, 'gallery'), metavar='DIR',
                   help='where the sheets go, replacing those there (default: the '
                        'repository\'s docs/gallery); the runs\' own pictures go to DIR/runs')
    p.add_argument('--weights', default='random', metavar='zoo|random|PATH',
                   help='VGG-19 weights, as train takes them (default: %(default)s)')
    p.add_argument('--stage', default='300x225:100:1000', metavar='WxH:ITERS:DECAY',
                   help='the one stage of every run, with L-BFGS (default: %(default)s)')
    p.add_argument('--only', action='append', choices=sorted(EXAMPLES), metavar='NAME',
                   help='make only this example (repeatable; default: all of %s)'
                        % ', '.join(sorted(EXAMPLES)))
    return p


# The option behind each library field this script sets from its own options.
OPTIONS = {'stages': '--stage', 'weights': '--weights'}


def refuse(message):
    """One line on stderr, in the command line's words; the exit status of bad options."""
    text, field = str(message), getattr(message, 'field', None)
    if field in OPTIONS:
        text = text.replace(field, OPTIONS[field], 1)
    print('%s: error: %s' % (PROG, text), file=sys.stderr)
    return 2


def main(argv=None):
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as stop:       # usage, --help or argparse's own error, already printed
        return stop.code if isinstance(stop.code, int) else 2
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        return refuse('--out %s: exists and is not a folder' % args.out)
    names = args.only or sorted(EXAMPLES)
    try:
        # Every option is checked, and the network loaded, before any file is made.
        base = _settings(args, {})
        network = st.Network(weights=args.weights)
        for name in names:
            example = EXAMPLES[name]
            _settings(args, example['settings']).check_network(
                st.Network(**dict(network.to_dict(), **example['network'])))
        device.set_threads()         # before MXNet loads: the environment's, else every core
        stylizers = {network: st.Stylizer(network, ctx='auto')}
    except st.StyleTransferError as error:
        return refuse(error)
    runs = os.path.join(args.out, 'runs')
    os.makedirs(runs, exist_ok=True)
    mask = os.path.join(runs, TOP_MASK)
    _top_mask(bundled(CONTENT), mask)
    try:
        plain = stylizers[network].stylize(st.Inputs(bundled(CONTENT), bundled(STYLE)), base)
        save_image(plain.picture, os.path.join(runs, 'plain.png'))
        caption = _caption(args.weights)
        for name in names:
            example = EXAMPLES[name]
            spec = st.Network(**dict(network.to_dict(), **example['network']))
            if spec not in stylizers:
                stylizers[spec] = st.Stylizer(spec, ctx='auto')
            result = stylizers[spec].stylize(_inputs(example, mask),
                                             _settings(args, example['settings']))
            save_image(result.picture, os.path.join(runs, name + '.png'))
            panels = [('content', _read(bundled(CONTENT))), ('style', _read(bundled(STYLE)))]
            panels += [(what, _framed(_read(mask)) if shown == TOP_MASK
                        else _read(bundled(shown))) for what, shown in example['shown']]
            panels += [('without', plain.picture), (example['label'], result.picture)]
            sheet = os.path.join(args.out, name + '.jpg')
            contact_sheet(panels, sheet, height=SHEET_HEIGHT, caption=caption)
            print('# wrote %s' % sheet)
    except (st.StyleTransferError, st.Diverged) as error:
        print('%s: %s' % (PROG, error), file=sys.stderr)
        return 1
    return 0


def _settings(args, fields):
    values = dict(COMMON, stages=(args.stage,), **fields)
    if args.weights == 'random':
        values.update(RANDOM_WEIGHTS)
    return st.Settings(**values)


def _inputs(example, mask):
    fields = {'style': bundled(STYLE), **example['inputs'](mask)}   # a blend replaces the style
    return st.Inputs(bundled(CONTENT), **fields)


def _caption(weights):
    if weights == 'random':
        return ('weights: random (seed 0), NOT pretrained; style weight 1e9, TV weight 1: '
                'shows what the control changes, not a pretrained result')
    return 'weights: %s' % weights


def _top_mask(content_path, path):
    """A mask the content's size: white over the upper 45% (Tübingen's sky and roofs)."""
    with Image.open(content_path) as img:
        width, height = img.size
    mask = np.zeros((height, width), np.uint8)
    mask[:int(TOP_SHARE * height)] = 255
    Image.fromarray(mask, 'L').save(path)


def _framed(picture, width=2, grey=128):
    """`picture` with a grey frame: a mask's white would vanish into the sheet's background."""
    picture = picture.copy()
    picture[:width], picture[-width:], picture[:, :width], picture[:, -width:] = (grey,) * 4
    return picture


def _read(path):
    return load_image(path)[0]


if __name__ == '__main__':
    sys.exit(main())
