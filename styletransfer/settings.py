"""What one run of the book's method does: `Settings`, one frozen dataclass, the book's values as
defaults, and its `Stage`s.

Field names are the command line's long options with underscores. Every field accepts the
command line's text as well as typed values (`stages=['225x150:100:50']`,
`style_layer_weights='1,1,2,2,1'`), and a bad value raises StyleTransferError naming the field
when the object is made, before anything slow. Settings hold no paths and no pictures (those
are `Inputs`) and nothing of the measuring network (that is `Network`).
"""
import dataclasses
import math
from dataclasses import dataclass
from typing import Optional

from .errors import StyleTransferError


@dataclass(frozen=True)
class Stage:
    width: int
    height: int
    iterations: int
    decay_every: int    # multiply the learning rate by Settings.lr_decay after every this many
    lr: Optional[float] = None   # None: Settings.lr

    def describe(self):
        """The stage in the command line's syntax, WxH:ITERS:DECAY[:LR]."""
        text = '%dx%d:%d:%d' % (self.width, self.height, self.iterations, self.decay_every)
        return text if self.lr is None else text + ':%g' % self.lr


# The book's coarse-to-fine schedule: 225x150 for 500 iterations, then 450x300 for 300.
BOOK_STAGES = (Stage(225, 150, 500, 200), Stage(450, 300, 300, 100))

OPTIMIZERS = ('adam', 'lbfgs')
# losses.STYLE_LOSSES' names (kept here too: settings must not import MXNet).
STYLE_LOSS_NAMES = ('gram', 'mean-std', 'mmd-linear', 'mmd-poly', 'mmd-gauss')
PRESERVE_COLORS = ('none', 'luminance', 'histogram')
FLOAT32_MAX = 3.4028234663852886e38
# The smallest learning rate a stage may reach. MXNet's adam_update refuses a rate below
# float32's smallest normal number (1.2e-38), and Gluon hands it the rate times Adam's bias
# correction, sqrt(1 - 0.999^t) / (1 - 0.9^t), which is never below 0.15: a rate of 1e-36
# keeps a wide margin. Steps that small no longer change a float32 pixel anyway.
MIN_LR = 1e-36
MAX_LR = 1e3
# Sanity bounds on user values; beyond them a run is a typo, not a wish.
MAX_SIDE = 16384
MAX_ITERATIONS = 10_000_000


def parse_stage(text, default_lr=None):
    """'WxH:ITERS:DECAY[:LR]' -> Stage (e.g. '450x300:300:100')."""
    parts = str(text).strip().split(':')
    try:
        if len(parts) not in (3, 4):
            raise ValueError
        width, height = (int(v) for v in parts[0].lower().split('x'))
        lr = float(parts[3]) if len(parts) == 4 else default_lr
        return Stage(width, height, int(parts[1]), int(parts[2]), lr)
    except ValueError:
        raise StyleTransferError('stages %r: expected WIDTHxHEIGHT:ITERATIONS:DECAY_EVERY[:LR], '
                                 'e.g. 450x300:300:100' % text, 'stages') from None


def parse_floats(text, field):
    """'1,1,2' or a sequence of numbers -> tuple of floats."""
    items = text.split(',') if isinstance(text, str) else list(text)
    try:
        return tuple(float(v) for v in items)
    except (TypeError, ValueError):
        raise StyleTransferError('%s %r: expected comma-separated numbers' % (field, text),
                                 field) from None


def number(value, field, kind=float):
    """`value` (a number or its text) as `kind`, or an error naming `field`."""
    if isinstance(value, bool):
        raise StyleTransferError('%s must be a number, not %r' % (field, value), field)
    try:
        if kind is int and isinstance(value, float) and not value.is_integer():
            raise ValueError
        return kind(value)
    except (TypeError, ValueError, OverflowError):
        raise StyleTransferError('%s must be %s, not %r'
                                 % (field, 'an integer' if kind is int else 'a number', value),
                                 field) from None


def non_negative(value, field):
    """`value` as a finite float >= 0, or an error naming `field`."""
    value = number(value, field)
    if not (math.isfinite(value) and value >= 0):
        raise StyleTransferError('%s must be a finite number >= 0, not %r' % (field, value),
                                 field)
    return value


def choice(value, field, choices):
    value = str(value).strip().lower()
    if value not in choices:
        raise StyleTransferError('%s must be one of %s, not %r'
                                 % (field, ', '.join(choices), value), field)
    return value


def differences(a, b):
    """Names of the fields in which two dataclasses of one type differ."""
    return [f.name for f in dataclasses.fields(a) if getattr(a, f.name) != getattr(b, f.name)]


@dataclass(frozen=True)
class Settings:
    stages: tuple = BOOK_STAGES
    lr: float = 0.01            # learning rate of stages that give none
    content_weight: float = 1.0
    style_weight: float = 1e3   # of each style layer
    tv_weight: float = 10.0
    # The style term as statistics (Li et al. 2017): the book's Gram loss, or the mean and
    # standard deviation of each channel, or an MMD. Weights suit one loss: each has its own
    # scale (mmd-poly with c = 0 is the Gram loss times C^4, per layer of C channels).
    style_loss: str = 'gram'
    lr_decay: float = 0.1
    optimizer: str = 'adam'     # the book's; 'lbfgs' takes fewer, costlier iterations
    lbfgs_history: int = 20
    stop_rtol: float = 0.0      # end a stage once the loss fell by less than this (relative)
    stop_window: int = 50       # ... over this many iterations; 0 rtol: run every iteration
    # Controls beyond the book; their defaults leave the book's run unchanged.
    style_scale: float = 1.0    # style image size relative to the stage size (the book: 1)
    style_layer_weights: tuple = ()   # one multiplier of style_weight per style layer
    preserve_colors: str = 'none'     # 'luminance' or 'histogram' (Gatys et al. 2017)
    noise_ratio: float = 0.0    # blend this much seeded uniform noise into the initial image
    seed: int = 0               # of that noise

    def __post_init__(self):
        def put(name, value):
            object.__setattr__(self, name, value)
        lr = number(self.lr, 'lr')
        if not MIN_LR <= lr <= MAX_LR:
            raise StyleTransferError('lr must be in [%g, %g], not %g' % (MIN_LR, MAX_LR, lr),
                                     'lr')
        put('lr', lr)
        stages = self.stages
        if isinstance(stages, (str, Stage)):
            stages = (stages,)
        put('stages', tuple(self._stage(s, lr) for s in stages))
        for name in ('content_weight', 'style_weight', 'tv_weight', 'lr_decay', 'stop_rtol',
                     'style_scale', 'noise_ratio'):
            put(name, number(getattr(self, name), name))
        for name in ('lbfgs_history', 'stop_window', 'seed'):
            put(name, number(getattr(self, name), name, int))
        put('optimizer', choice(self.optimizer, 'optimizer', OPTIMIZERS))
        put('style_loss', choice(self.style_loss, 'style_loss', STYLE_LOSS_NAMES))
        put('preserve_colors', choice(self.preserve_colors, 'preserve_colors', PRESERVE_COLORS))
        if self.style_layer_weights not in ((), '', None):
            put('style_layer_weights',
                parse_floats(self.style_layer_weights, 'style_layer_weights'))
        else:
            put('style_layer_weights', ())
        self._validate()

    @staticmethod
    def _stage(value, lr):
        if isinstance(value, str):
            value = parse_stage(value)
        elif isinstance(value, (tuple, list)):
            value = Stage(*value)
        elif isinstance(value, dict):
            value = Stage(**value)
        if not isinstance(value, Stage):
            raise StyleTransferError('stages: %r is not a stage' % (value,), 'stages')
        fields = [number(getattr(value, f), 'stages', int)
                  for f in ('width', 'height', 'iterations', 'decay_every')]
        return Stage(*fields, lr if value.lr is None else number(value.lr, 'stages'))

    def _validate(self):
        if not self.stages:
            raise StyleTransferError('stages: at least one stage is needed', 'stages')
        for k, s in enumerate(self.stages, 1):
            if max(s.width, s.height) > MAX_SIDE or min(s.width, s.height) < 1:
                raise StyleTransferError('stage %d: %dx%d is outside 1..%d pixels a side'
                                         % (k, s.width, s.height, MAX_SIDE), 'stages')
            if not 1 <= s.iterations <= MAX_ITERATIONS:
                raise StyleTransferError('stage %d: iterations must be 1..%d, not %d'
                                         % (k, MAX_ITERATIONS, s.iterations), 'stages')
            if s.decay_every < 1:
                raise StyleTransferError('stage %d: decay interval must be at least 1' % k,
                                         'stages')
            if not MIN_LR <= s.lr <= MAX_LR:
                raise StyleTransferError('stage %d: learning rate must be in [%g, %g], not %g'
                                         % (k, MIN_LR, MAX_LR, s.lr), 'stages')
        for name in ('content_weight', 'style_weight', 'tv_weight'):
            value = getattr(self, name)
            # The losses are float32: a larger weight turns them into inf at the first step.
            if not 0 <= value <= FLOAT32_MAX:
                raise StyleTransferError('%s must be a number from 0 to %.2g, not %g'
                                         % (name, FLOAT32_MAX, value), name)
        if not 0 < self.lr_decay <= 1:
            raise StyleTransferError('lr_decay must be in (0, 1], not %g' % self.lr_decay,
                                     'lr_decay')
        for k, s in enumerate(self.stages, 1):
            # The rate decays after iterations d, 2d, ...: the last step runs after this many.
            decays = max(s.iterations - 2, 0) // s.decay_every
            if self.optimizer == 'adam' and s.lr * self.lr_decay ** decays < MIN_LR:
                raise StyleTransferError(
                    'stage %d: the learning rate would decay %d times, from %g to below %g, '
                    'where MXNet\'s Adam stops; use a longer decay interval or fewer iterations'
                    % (k, decays, s.lr, MIN_LR), 'stages')
        if not 0 <= self.stop_rtol < 1:
            raise StyleTransferError('stop_rtol must be in [0, 1), not %g' % self.stop_rtol,
                                     'stop_rtol')
        if self.stop_window < 1:
            raise StyleTransferError('stop_window must be at least 1', 'stop_window')
        if self.lbfgs_history < 1:
            raise StyleTransferError('lbfgs_history must be at least 1', 'lbfgs_history')
        if not 0.05 <= self.style_scale <= 20:
            raise StyleTransferError('style_scale must be in [0.05, 20], not %g'
                                     % self.style_scale, 'style_scale')
        if any(not 0 <= w <= FLOAT32_MAX for w in self.style_layer_weights):
            raise StyleTransferError('style_layer_weights must be numbers >= 0',
                                     'style_layer_weights')
        if not 0 <= self.noise_ratio <= 1:
            raise StyleTransferError('noise_ratio must be in [0, 1], not %g' % self.noise_ratio,
                                     'noise_ratio')

    def check_network(self, network):
        """Refuse what these settings cannot do with `network` (a vgg.Network): stages or a
        style scale too small for its deepest layer, per-layer weights that do not fit."""
        from .vgg import layers
        smallest = network.min_side
        for k, s in enumerate(self.stages, 1):
            if min(s.width, s.height) < smallest:
                raise StyleTransferError(
                    'stage %d: %dx%d is too small for layer %s: each side needs at least %d '
                    'pixels' % (k, s.width, s.height, layers.INDEX_NAMES[network.deepest],
                                smallest), 'stages')
        shortest = min(min(s.width, s.height) for s in self.stages)
        if round(shortest * self.style_scale) < smallest:
            raise StyleTransferError('style_scale %g makes the style image %d pixels on its '
                                     'short side in the smallest stage; the layers need %d'
                                     % (self.style_scale, round(shortest * self.style_scale),
                                        smallest), 'style_scale')
        if self.style_layer_weights and len(self.style_layer_weights) != len(
                network.style_layers):
            raise StyleTransferError('style_layer_weights gives %d weights for %d style layers'
                                     % (len(self.style_layer_weights),
                                        len(network.style_layers)), 'style_layer_weights')
        return self

    def layer_style_weights(self, count):
        """The style weight of each of `count` style layers."""
        factors = self.style_layer_weights or (1.0,) * count
        return tuple(self.style_weight * f for f in factors)

    def to_dict(self):
        """Plain data (JSON): stages as their command-line text."""
        d = dataclasses.asdict(self)
        d['stages'] = [s.describe() for s in self.stages]
        d['style_layer_weights'] = list(self.style_layer_weights)
        return d

    @classmethod
    def from_dict(cls, d):
        return cls(**d)
