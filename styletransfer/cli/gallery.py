"""gallery.py: remake the README's pictures of the controls beyond the book.

Each example is one run of scripts/train.py on the bundled Tübingen photo and Starry Night,
and a sheet (docs/gallery/NAME.jpg) of what went in beside the same run without the control
and the run with it. The runs use the weights given (random by default: no pretrained file
exists on this project's machines). Random VGG-19 features still measure colour and local
texture, but their losses are tiny next to the total-variation term, so the gallery raises the
style weight and lowers the TV weight until the style shows; with pretrained weights the book's
weights are the ones to use. Every sheet's caption names the weights.
"""
import argparse
import os
import sys

import numpy as np
from PIL import Image

from .. import report as pictures
from ..config import parse_stage
from ..errors import StyleTransferError
from ..images import load_image
from . import train
from .common import parse_args, refuse

PROG = 'gallery.py'
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
IMAGES = os.path.join(REPO, 'images')
CONTENT, STYLE = 'tubingen.jpg', 'starry_night.jpg'
SECOND_STYLE = 'the_scream.jpg'
TOP_MASK = 'top-mask.png'     # made by this script: the upper 45% of the picture white
# With random weights the style terms are about 1e-9 of the book's scale (see the docstring).
RANDOM_WEIGHTS_ARGS = ['--style-weight', '1e9', '--tv-weight', '1']

# name -> (what the sheet calls the control, extra train.py arguments, extra input panels)
EXAMPLES = {
    'style-blend': ('--style-blend starry 0.5, scream 0.5',
                    ['--style-blend', '{images}/%s:0.5,{images}/%s:0.5' % (STYLE, SECOND_STYLE)],
                    [('second style', SECOND_STYLE)]),
    'style-scale': ('--style-scale 0.5 (coarser strokes)', ['--style-scale', '0.5'], []),
    'luminance': ('--preserve-colors luminance', ['--preserve-colors', 'luminance'], []),
    'histogram': ('--preserve-colors histogram', ['--preserve-colors', 'histogram'], []),
    'region': ('--region mask:scream',
               ['--region', '{out}/%s:{images}/%s' % (TOP_MASK, SECOND_STYLE)],
               [('mask', TOP_MASK), ('style in mask', SECOND_STYLE)]),
    'init-noise': ('--init noise', ['--init', 'noise'], []),
    'shallow-layers': ('--style-layer-weights 1,1,0,0,0', ['--style-layer-weights', '1,1,0,0,0'],
                       []),
    'avg-pooling': ('--pooling avg', ['--pooling', 'avg'], []),
}


def build_parser():
    p = argparse.ArgumentParser(
        prog=PROG, description='Remake the README\'s pictures of the controls beyond the book: '
        'one train.py run per control, and a sheet per control of its inputs, the run without '
        'it and the run with it.')
    p.add_argument('--out', default=os.path.join(REPO, 'docs', 'gallery'), metavar='DIR',
                   help='where the sheets go, replacing those there (default: the '
                        'repository\'s docs/gallery); the runs\' own files go to DIR/runs')
    p.add_argument('--weights', default='random', metavar='zoo|random|PATH',
                   help='VGG-19 weights, as train.py takes them (default: %(default)s)')
    p.add_argument('--stage', default='300x225:100:1000', metavar='WxH:ITERS:DECAY',
                   help='the one stage of every run, with L-BFGS (default: %(default)s)')
    p.add_argument('--only', action='append', choices=sorted(EXAMPLES), metavar='NAME',
                   help='make only this example (repeatable; default: all of %s)'
                        % ', '.join(sorted(EXAMPLES)))
    return p


def main(argv=None):
    args, code = parse_args(build_parser(), argv)
    if args is None:
        return code
    try:
        parse_stage(args.stage)
    except StyleTransferError as e:
        return refuse(PROG, e)
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        return refuse(PROG, '--out %s: exists and is not a folder' % args.out)
    runs = os.path.join(args.out, 'runs')
    os.makedirs(runs, exist_ok=True)
    _top_mask(os.path.join(IMAGES, CONTENT), os.path.join(runs, TOP_MASK))
    inputs = [os.path.join(IMAGES, CONTENT), os.path.join(IMAGES, STYLE)]
    common = ['--weights', args.weights, '--optimizer', 'lbfgs', '--stage', args.stage, '--log-every',
              '1000', '--no-progress', '--overwrite']
    if args.weights == 'random':
        common += RANDOM_WEIGHTS_ARGS
    plain = os.path.join(runs, 'plain.png')
    if train.main(inputs + common + ['-o', plain]) != 0:
        return 1
    caption = _caption(args.weights)
    for name in args.only or sorted(EXAMPLES):
        label, extra, shown = EXAMPLES[name]
        out = os.path.join(runs, name + '.png')
        extra = [a.format(images=IMAGES, out=runs) for a in extra]
        # --style-blend replaces the STYLE argument
        given = inputs[:1] if '--style-blend' in extra else inputs
        if train.main(given + common + extra + ['-o', out]) != 0:
            return 1
        panels = [('content', _read(os.path.join(IMAGES, CONTENT))),
                  ('style', _read(os.path.join(IMAGES, STYLE)))]
        panels += [(what, _framed(_read(os.path.join(runs, f))) if f == TOP_MASK
                    else _read(os.path.join(IMAGES, f))) for what, f in shown]
        panels += [('without', _read(plain)), (label, _read(out))]
        sheet = os.path.join(args.out, name + '.jpg')
        pictures.contact_sheet(panels, sheet, height=160, caption=caption)
        print('# wrote %s' % sheet)
    return 0


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
    mask[:int(0.45 * height)] = 255
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
