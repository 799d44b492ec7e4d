"""Feed-forward stylisation as a library, with the optimisation's protocol: a `FastStylizer`
holds a loaded network (once); `start(inputs, settings)` gives a run that yields one Progress and
one StageDone (the picture), `stylize` runs it to a Result. Web pages, batches and videos take
either kind of stylizer.

    fast = FastStylizer('candy.pth', ctx='auto')
    picture = fast.stylize(Inputs('photo.jpg'), FastSettings(size=(1024, None))).picture

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
                                    # luminance; 'histogram': the result's colour mean and
                                    # covariance matched to the content's

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
    """A feed-forward network on one device, loaded once: `model` is a path or a name for
    fast.zoo.get_net (our .params, PyTorch-examples .pth, an exported symbol) or a LoadedNet."""

    method = 'fast'

    def __init__(self, model, ctx='auto', dtype='float32'):
        from . import zoo
        self.ctx, self.ctx_remark = device.resolve_ctx(ctx)
        self.dtype = choice(dtype, 'dtype', ('float32', 'bfloat16'))
        device.check_dtype(self.dtype, self.ctx)
        self.net = model if isinstance(model, zoo.LoadedNet) else zoo.get_net(model, self.ctx)
        self.net.block.hybridize(static_alloc=True, static_shape=True)
        self._bf16 = None

    @property
    def description(self):
        net = self.net
        return '%s network %s (%d style%s: %s), %s' % (
            net.kind, net.source, net.n_styles, '' if net.n_styles == 1 else 's',
            ', '.join(net.style_names), net.loss_network or 'loss network not recorded')

    def start(self, inputs, settings=None, resume=None):
        """A run of one pass on `inputs` (an Inputs, or a content path or picture)."""
        settings = settings if settings is not None else FastSettings()
        if not isinstance(settings, FastSettings):
            raise StyleTransferError('settings must be FastSettings for a feed-forward network',
                                     'settings')
        if not isinstance(inputs, Inputs):
            inputs = Inputs(inputs)
        if inputs.style is not None or inputs.style_blend or inputs.region or \
                inputs.init_kind != 'content':
            raise StyleTransferError('a fast_neural_style network carries its styles: give the '
                                     'content only (choose styles with style_mix)', 'style')
        self._mix(settings)          # a style the network lacks is refused now
        content = inputs.load().content
        width, height = settings.output_size(content.shape[1], content.shape[0])
        if self.ctx.device_type == 'cpu':
            from ..resources import check_feed_forward
            check_feed_forward(width, height)
        return FastRun(self, content, settings)

    def stylize(self, inputs, settings=None, callback=None, resume=None):
        run = self.start(inputs, settings)
        for event in run:
            if callback is not None:
                callback(run, event)
        return run.result

    def picture(self, content, settings):
        """The stylised HxWx3 uint8 picture of an HxWx3 uint8 `content` (what a run yields)."""
        from mxnet import autograd, nd
        from ..images import resize
        width, height = settings.output_size(content.shape[1], content.shape[0])
        pixels = nd.array(content, dtype='uint8')
        if (width, height) != (content.shape[1], content.shape[0]):
            pixels = resize(pixels, width, height)
        x = pixels.astype('float32').as_in_context(self.ctx).transpose((2, 0, 1)).expand_dims(0)
        with autograd.predict_mode():
            out = self._stylise(x, self._mix(settings))
        picture = np.round(out[0].transpose((1, 2, 0)).asnumpy()).astype(np.uint8)
        if settings.preserve_colors == 'luminance':
            picture = colors.restore_colors(picture, content)
        elif settings.preserve_colors == 'histogram':
            picture = np.round(colors.match_histogram(picture, content)).astype(np.uint8)
        return picture

    def _mix(self, settings):
        mix = dict(settings.style_mix) if settings.style_mix else 0
        return self.net.weights(mix) if mix else self.net.weights(0)

    def _stylise(self, x, weights):
        from . import conventions
        if self.dtype == 'bfloat16':
            block = self._bfloat16_block(x, weights)
            y = block(conventions.to_input(x, self.net.convention), weights)
            return conventions.from_output(y, self.net.convention)
        y = self.net.block(conventions.to_input(x, self.net.convention), weights)
        return conventions.from_output(y, self.net.convention)

    def _bfloat16_block(self, x, weights):
        if self._bf16 is None:
            import warnings
            from mxnet.contrib import amp
            from . import conventions
            # AMP converts the graph Gluon traced, so the block runs once first.
            self.net.block(conventions.to_input(x, self.net.convention), weights)
            with warnings.catch_warnings():
                warnings.simplefilter('ignore')
                self._bf16 = amp.convert_hybrid_block(self.net.block, target_dtype='bfloat16',
                                                      ctx=self.ctx)
        return self._bf16


class FastRun:
    """One pass, with a run's protocol: iterate it (once) for a Progress and a StageDone."""

    def __init__(self, stylizer, content, settings):
        self.stylizer, self.content, self.settings = stylizer, content, settings
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
        picture = self.stylizer.picture(self.content, self.settings)
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

