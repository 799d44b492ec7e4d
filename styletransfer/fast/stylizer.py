"""Feed-forward stylisation as a library, with the optimisation's protocol: a `FastStylizer`
holds a loaded network (once); `start(inputs, settings)` gives a run that yields one Progress and
one StageDone (the picture), `stylize` runs it to a Result. Web pages, batches and videos take
either kind of stylizer. Two methods:

    fast = FastStylizer('candy.pth', ctx='auto')            # a network per style (Johnson)
    picture = fast.stylize(Inputs('photo.jpg'), FastSettings(size=(1024, None))).picture

    any = FastStylizer(decoder='decoder.pth', encoder='vgg_normalised.pth')   # AdaIN
    picture = any.stylize(Inputs('photo.jpg', 'painting.jpg'), FastSettings(alpha=0.8)).picture

AdaIN (Huang and Belongie 2017) takes any style: its statistics (each relu4_1 channel's mean and
standard deviation) are measured once per style picture and kept, so a style used for many
pictures (a folder, a batch, a video's frames) is encoded once.

A network's pass runs without autograd, hybridised with static memory; a picture too large for
the machine's memory is refused before the pass, naming the largest size that fits (no tiling:
instance normalisation takes statistics over the whole picture, so tiles would not match).
"""
import dataclasses
import math
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import colors, device
from ..errors import StyleTransferError
from ..events import Progress, Result, StageDone
from ..inputs import Inputs
from ..settings import choice, number

PRESERVE_COLORS = ('none', 'luminance', 'histogram')
MAX_SIDE = 16384
STYLE_CACHE = 64     # AdaIN: style statistics kept (two 512-value vectors each)


def _mixed(statistics, weights):
    """One StyleStatistics: the weighted mean of several (AdaIN is linear in them)."""
    from .adain import StyleStatistics, mix_weights
    w = mix_weights(weights, len(statistics))
    mean = sum(float(wi) * s.mean for wi, s in zip(w, statistics))
    std = sum(float(wi) * s.std for wi, s in zip(w, statistics))
    return StyleStatistics(mean, std, statistics[0].encoder)


def parse_style_mix(text):
    """'0:0.7,3:0.3' (or style names for a network's styles) -> ((0, 0.7), (3, 0.3))."""
    pairs = []
    for item in str(text).split(','):
        key, sep, weight = item.strip().rpartition(':')
        if not sep:
            key, weight = weight, '1'
        try:
            value = float(weight)
        except ValueError:
            raise StyleTransferError('style_mix %r: expected STYLE:WEIGHT,STYLE:WEIGHT,...'
                                     % text, 'style_mix') from None
        if not key:
            raise StyleTransferError('style_mix %r: an entry has no style' % text, 'style_mix')
        pairs.append((int(key) if key.isdigit() else key, value))
    return tuple(pairs)


@dataclass(frozen=True)
class FastSettings:
    style_mix: Any = ()         # ((style index or name, weight), ...) or '0:0.7,3:0.3'; () is
                                # the network's first style. Weights are normalised to sum 1.
    size: Any = None            # (width, height), (width, None) or 'WxH' / 'W': None keeps the
                                # content's size; one side keeps its aspect ratio
    preserve_colors: str = 'none'   # 'luminance': the content's colours under the result's
                                    # luminance; 'histogram': the result's (AdaIN: the style
                                    # picture's, before encoding) colour mean and covariance
                                    # matched to the content's
    alpha: float = 1.0          # AdaIN: content/style trade-off, alpha*adain + (1-alpha)*content
    style_size: int = 512       # AdaIN: the style picture's short side when it is measured, as
                                # the authors' code resizes it (0: as it is)

    def __post_init__(self):
        mix = self.style_mix
        if isinstance(mix, str):
            mix = parse_style_mix(mix) if mix.strip() else ()
        mix = tuple((key, number(weight, 'style_mix')) for key, weight in (mix or ()))
        if any(not (math.isfinite(w) and w >= 0) for _, w in mix) or (
                mix and sum(w for _, w in mix) <= 0):
            raise StyleTransferError('style_mix weights must be finite numbers >= 0, not all 0',
                                     'style_mix')
        object.__setattr__(self, 'style_mix', mix)
        object.__setattr__(self, 'size', _parse_size(self.size))
        object.__setattr__(self, 'preserve_colors',
                           choice(self.preserve_colors, 'preserve_colors', PRESERVE_COLORS))
        alpha = number(self.alpha, 'alpha')
        if not 0 <= alpha <= 1:
            raise StyleTransferError('alpha must be in [0, 1], not %g' % alpha, 'alpha')
        object.__setattr__(self, 'alpha', alpha)
        style_size = number(self.style_size, 'style_size', int)
        if not 0 <= style_size <= MAX_SIDE:
            raise StyleTransferError('style_size must be 0..%d, not %d' % (MAX_SIDE, style_size),
                                     'style_size')
        object.__setattr__(self, 'style_size', style_size)

    def output_size(self, width, height):
        """The picture's size for a content of width x height."""
        if self.size is None:
            return width, height
        w, h = self.size
        if h is None:
            h = max(1, round(height * w / width))
        return w, h

    def to_dict(self):
        d = dataclasses.asdict(self)
        d['style_mix'] = [list(p) for p in self.style_mix]
        d['size'] = list(self.size) if self.size else None
        return d


def _short_side(picture, side):
    """`picture` resized (bilinear, as the content) so that its short side is `side` (0: as
    it is)."""
    height, width = picture.shape[:2]
    if not side or min(height, width) == side:
        return picture
    from mxnet import nd
    from ..images import resize
    scale = side / min(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return resize(nd.array(picture, dtype='uint8'), *size).asnumpy()


def _parse_size(size):
    if size is None or size == '':
        return None
    if isinstance(size, str):
        w, sep, h = size.lower().partition('x')
        try:
            size = (int(w), int(h) if sep else None)
        except ValueError:
            raise StyleTransferError('size %r: expected WIDTHxHEIGHT or WIDTH' % size,
                                     'size') from None
    try:
        w, h = size
        w, h = int(w), None if h is None else int(h)
    except (TypeError, ValueError):
        raise StyleTransferError('size %r: expected (width, height)' % (size,), 'size') \
            from None
    if not 1 <= w <= MAX_SIDE or (h is not None and not 1 <= h <= MAX_SIDE):
        raise StyleTransferError('size %r: sides must be 1..%d' % (size, MAX_SIDE), 'size')
    return w, h


class FastStylizer:
    """A feed-forward method on one device, loaded once.

    Per-style networks ('fast'): `model` is a path or a name for fast.zoo.get_net (our .params,
    a PyTorch-examples .pth, an exported symbol) or a LoadedNet. AdaIN ('adain'): `decoder` is
    a decoder file (the authors' decoder.pth or ours) and `encoder` what fast.adain.load_encoder
    takes: the authors' vgg_normalised.pth, or 'zoo', 'random' or a .params file of this
    project's VGG-19; the pair must belong together."""

    def __init__(self, model=None, ctx='auto', dtype='float32', *, decoder=None, encoder=None):
        self.ctx, self.ctx_remark = device.resolve_ctx(ctx)
        self.dtype = choice(dtype, 'dtype', ('float32', 'bfloat16'))
        device.check_dtype(self.dtype, self.ctx)
        self._bf16 = None
        self._styles = {}        # AdaIN: style statistics by the picture's digest
        if decoder is not None:
            if model is not None:
                raise StyleTransferError('give a per-style model or an AdaIN decoder, not both',
                                         'model')
            if encoder is None:
                raise StyleTransferError('an AdaIN decoder needs its encoder (the authors\' '
                                         'vgg_normalised.pth, or zoo or a VGG-19 .params)',
                                         'encoder')
            from . import adain
            self.method = 'adain'
            self.adain = adain.AdaIN(adain.load_encoder(encoder, self.ctx),
                                     adain.load_decoder(decoder, self.ctx), self.ctx,
                                     dtype=self.dtype)
            self.net = None
            self._source = (decoder, encoder)
            return
        from . import johnson, zoo
        if model is None:
            raise StyleTransferError('give a model (a per-style network) or an AdaIN decoder',
                                     'model')
        self.method = 'fast'
        self.net = model if isinstance(model, zoo.LoadedNet) else zoo.get_net(model, self.ctx)
        self.net.block.hybridize(static_alloc=True, static_shape=True)
        # our own TransformerNet (not an exported symbol) runs one picture in float32 with its
        # norms as oneDNN's BatchNorm (johnson.OnePicture); bfloat16 converts the plain block
        self._one = None
        if isinstance(self.net.block, johnson.TransformerNet) and self.dtype == 'float32':
            self._one = johnson.OnePicture(self.net.block, self.ctx)
            self._one.hybridize(static_alloc=True, static_shape=True)

    @property
    def description(self):
        if self.method == 'adain':
            return 'AdaIN decoder %s with encoder %s (%s)' % (
                self._source[0], self._source[1], self.adain.kind)
        net = self.net
        return '%s network %s (%d style%s: %s), %s' % (
            net.kind, net.source, net.n_styles, '' if net.n_styles == 1 else 's',
            ', '.join(net.style_names), net.loss_network or 'loss network not recorded')

    def start(self, inputs, settings=None, resume=None):
        """A run of one pass on `inputs` (an Inputs, or a content path or picture; AdaIN takes
        the style, a blend of styles or regions from the Inputs)."""
        settings = settings if settings is not None else FastSettings()
        if not isinstance(settings, FastSettings):
            raise StyleTransferError('settings must be FastSettings for a feed-forward method',
                                     'settings')
        if not isinstance(inputs, Inputs):
            inputs = Inputs(inputs)
        if inputs.init_kind != 'content':
            raise StyleTransferError('a feed-forward pass has no starting picture (init)',
                                     'init')
        if self.method == 'fast':
            if inputs.styles or inputs.region:
                raise StyleTransferError('a fast_neural_style network carries its styles: give '
                                         'the content only (choose styles with style_mix)',
                                         'style')
            self._mix(settings)          # a style the network lacks is refused now
        elif not inputs.styles:
            raise StyleTransferError('AdaIN needs a style picture (style, style_blend)', 'style')
        elif settings.style_mix:
            raise StyleTransferError('AdaIN mixes the Inputs\' style_blend: style_mix is for '
                                     'networks with several styles', 'style_mix')
        loaded = inputs.load(8 if self.method == 'adain' else 1)
        width, height = settings.output_size(loaded.content.shape[1], loaded.content.shape[0])
        if self.ctx.device_type == 'cpu':
            from ..resources import check_feed_forward
            check_feed_forward(width, height)
        return FastRun(self, loaded, settings)

    def stylize(self, inputs, settings=None, callback=None, resume=None):
        run = self.start(inputs, settings)
        for event in run:
            if callback is not None:
                callback(run, event)
        return run.result

    def picture(self, content, settings, styles=(), regions=()):
        """The stylised HxWx3 uint8 picture of an HxWx3 uint8 `content` (what a run yields);
        AdaIN takes `styles` ((picture, weight), ...) and `regions` ((mask, style picture or
        None), ...) as Inputs.load gives them."""
        from mxnet import autograd, nd
        from ..images import resize
        width, height = settings.output_size(content.shape[1], content.shape[0])
        small = content
        if (width, height) != (content.shape[1], content.shape[0]):
            small = resize(nd.array(content, dtype='uint8'), width, height).asnumpy()
        with autograd.predict_mode():
            if self.method == 'adain':
                picture = self._adain(small, content, settings, styles, regions)
            else:
                x = nd.array(small, ctx=self.ctx).transpose((2, 0, 1)).expand_dims(0)
                out = self._stylise(x, self._mix(settings))
                picture = np.round(out[0].transpose((1, 2, 0)).asnumpy()).astype(np.uint8)
        if settings.preserve_colors == 'luminance':
            picture = colors.restore_colors(picture, content)
        elif settings.preserve_colors == 'histogram' and self.method == 'fast':
            picture = np.round(colors.match_histogram(picture, content)).astype(np.uint8)
        return picture

    def _adain(self, small, content, settings, styles, regions):
        from . import adain
        x = adain.to_input(small, self.ctx)
        main = [self._statistics(p, content, settings) for p, _ in styles]
        if not regions:
            out = self.adain.stylise(x, main, [w for _, w in styles], settings.alpha)
            return adain.to_picture(out)
        # Each region's features take its own style's statistics; the rest of the picture
        # takes the main style (a blend of styles mixes their statistics: AdaIN is linear in
        # them). A region with no style keeps the content's features.
        height, width = small.shape[:2]
        masks, stats = [], []
        covered = np.zeros((height, width))
        for mask, style in regions:
            grey = colors.grey_mask(mask, width, height)
            covered = covered + grey
            if style is not None:
                masks.append(grey)
                stats.append(self._statistics(style, content, settings))
        masks.append(np.clip(1 - covered, 0, 1))
        stats.append(_mixed(main, [w for _, w in styles]))
        features = adain.masks_to_features(np.stack(masks), self.adain.kind, height, width)
        keep = [k for k in range(len(masks)) if features[k].sum() >= 2]
        out = self.adain.stylise_masked(x, [stats[k] for k in keep], features[keep],
                                        settings.alpha)
        return adain.to_picture(out)

    def _statistics(self, style, content, settings):
        """A style picture's statistics, measured once (per content too when its colours are
        first matched to the content's)."""
        from ..inputs import digest
        from . import adain
        key = '%s:%d%s' % (digest(style), settings.style_size,
                           digest(content) if settings.preserve_colors == 'histogram' else '')
        if key not in self._styles:
            if settings.preserve_colors == 'histogram':
                style = np.round(colors.match_histogram(style, content)).astype(np.uint8)
            style = _short_side(style, settings.style_size)
            if len(self._styles) >= STYLE_CACHE:
                self._styles.pop(next(iter(self._styles)))
            self._styles[key] = self.adain.encode_style(adain.to_input(style, self.ctx))
        return self._styles[key]

    def _mix(self, settings):
        mix = dict(settings.style_mix) if settings.style_mix else 0
        return self.net.weights(mix) if mix else self.net.weights(0)

    def _stylise(self, x, weights):
        from . import conventions
        if self.dtype == 'bfloat16':
            block = self._bfloat16_block(x, weights)
            y = block(conventions.to_input(x, self.net.convention), weights)
            return conventions.from_output(y, self.net.convention)
        block = self._one or self.net.block
        y = block(conventions.to_input(x, self.net.convention), weights)
        return conventions.from_output(y, self.net.convention)

    def _bfloat16_block(self, x, weights):
        if self._bf16 is None:
            from . import conventions
            self._bf16 = device.to_bfloat16(self.net.block, self.ctx,
                                            conventions.to_input(x, self.net.convention),
                                            weights)
        return self._bf16


class FastRun:
    """One pass, with a run's protocol: iterate it (once) for a Progress and a StageDone."""

    def __init__(self, stylizer, inputs, settings):
        self.stylizer, self.inputs, self.settings = stylizer, inputs, settings
        self.result, self.stopped, self.history = None, False, []
        self.stage_pictures = []
        self._stop = threading.Event()
        self._events = None

    def __iter__(self):
        if self._events is not None:
            raise RuntimeError('a run is iterated once')
        self._events = self._run()
        return self._events

    def _run(self):
        if self._stop.is_set():
            self.stopped = True
            self.result = Result(None, [], [], True, self.stylizer.description)
            return
        started = time.perf_counter()
        inputs = self.inputs
        picture = self.stylizer.picture(inputs.content, self.settings, inputs.styles,
                                        inputs.regions)
        height, width = picture.shape[:2]
        progress = Progress(1, 1, 0, 1, width, height, None, None, {}, 0.0,
                            time.perf_counter() - started, True)
        self.history.append(progress)
        self.stage_pictures.append(picture)
        yield progress
        yield StageDone(1, 1, width, height, picture)
        self.result = Result(picture, [picture], list(self.history), False,
                             self.stylizer.description)

    @property
    def position(self):
        return (2, 0) if self.stage_pictures else (1, 0)

    def stop(self):
        self._stop.set()

    def picture(self, best=False):
        return self.stage_pictures[-1] if self.stage_pictures else None

    def state(self):
        """A pass cannot be resumed part-way: there is nothing to keep."""
        return None

