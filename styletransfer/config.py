"""A run's configuration: one frozen dataclass, the book's values as defaults."""
from dataclasses import asdict, dataclass, field, replace

from . import layers
from .errors import StyleTransferError


@dataclass(frozen=True)
class Stage:
    width: int
    height: int
    iterations: int
    decay_every: int    # multiply the learning rate by Config.lr_decay after every this many
    lr: float = 0.01

    def describe(self):
        return '%dx%d:%d:%d:%g' % (self.width, self.height, self.iterations, self.decay_every,
                                   self.lr)


# The book's coarse-to-fine schedule: 225x150 for 500 iterations, then 450x300 for 300.
BOOK_STAGES = (Stage(225, 150, 500, 200), Stage(450, 300, 300, 100))

OPTIMIZERS = ('adam', 'lbfgs')
FLOAT32_MAX = 3.4028234663852886e38

# Sanity bounds on user values; beyond them a run is a typo, not a wish.
MAX_SIDE = 16384
MAX_ITERATIONS = 10_000_000


@dataclass(frozen=True)
class Config:
    content: str = ''
    style: str = ''
    stages: tuple = BOOK_STAGES
    content_layers: tuple = layers.BOOK_CONTENT_LAYERS
    style_layers: tuple = layers.BOOK_STYLE_LAYERS
    content_weight: float = 1.0
    style_weight: float = 1e3
    tv_weight: float = 10.0
    lr_decay: float = 0.1
    weights: str = 'zoo'
    seed: int = 0
    log_every: int = 50
    optimizer: str = 'adam'     # the book's; 'lbfgs' takes fewer, costlier iterations
    lbfgs_history: int = 20
    stop_rtol: float = 0.0      # end a stage once the loss fell by less than this (relative)
    stop_window: int = 50       # ... over this many iterations; 0 rtol: run every iteration

    def replace(self, **changes):
        return replace(self, **changes)

    def to_dict(self):
        return asdict(self)

    @property
    def deepest(self):
        return max(self.content_layers + self.style_layers)

    def validate(self):
        """Raise StyleTransferError for values no run can use; return self."""
        if not self.stages:
            raise StyleTransferError('at least one stage is needed')
        smallest = layers.min_side(self.content_layers + self.style_layers)
        for k, s in enumerate(self.stages, 1):
            if min(s.width, s.height) < smallest:
                raise StyleTransferError(
                    'stage %d: %dx%d is too small for layer %s: each side needs at least %d '
                    'pixels' % (k, s.width, s.height, layers.INDEX_NAMES[self.deepest], smallest))
            if max(s.width, s.height) > MAX_SIDE:
                raise StyleTransferError('stage %d: %dx%d exceeds the largest side, %d'
                                         % (k, s.width, s.height, MAX_SIDE))
            if not 1 <= s.iterations <= MAX_ITERATIONS:
                raise StyleTransferError('stage %d: iterations must be 1..%d, not %d'
                                         % (k, MAX_ITERATIONS, s.iterations))
            if s.decay_every < 1:
                raise StyleTransferError('stage %d: decay interval must be at least 1' % k)
            if not 0 < s.lr <= 1e3:
                raise StyleTransferError('stage %d: learning rate must be in (0, 1000], not %g'
                                         % (k, s.lr))
        for name in ('content_weight', 'style_weight', 'tv_weight'):
            value = getattr(self, name)
            # The losses are float32: a larger weight turns them into inf at the first step.
            if not 0 <= value <= FLOAT32_MAX:
                raise StyleTransferError('--%s must be a number from 0 to %.2g, not %g'
                                         % (name.replace('_', '-'), FLOAT32_MAX, value))
        if not 0 < self.lr_decay <= 1:
            raise StyleTransferError('lr decay must be in (0, 1], not %g' % self.lr_decay)
        if self.optimizer not in OPTIMIZERS:
            raise StyleTransferError('--optimizer must be one of %s, not %r'
                                     % (', '.join(OPTIMIZERS), self.optimizer))
        if not 0 <= self.stop_rtol < 1:
            raise StyleTransferError('--stop-rtol must be in [0, 1), not %g' % self.stop_rtol)
        if self.stop_window < 1:
            raise StyleTransferError('--stop-window must be at least 1')
        if self.lbfgs_history < 1:
            raise StyleTransferError('L-BFGS history must be at least 1')
        if self.log_every < 1:
            raise StyleTransferError('--log-every must be at least 1')
        return self


def parse_stage(text, default_lr=0.01):
    """'WxH:ITERS:DECAY[:LR]' -> Stage (e.g. '450x300:300:100')."""
    parts = text.strip().split(':')
    try:
        if len(parts) not in (3, 4):
            raise ValueError
        width, height = (int(v) for v in parts[0].lower().split('x'))
        lr = float(parts[3]) if len(parts) == 4 else default_lr
        return Stage(width, height, int(parts[1]), int(parts[2]), lr)
    except ValueError:
        raise StyleTransferError('--stage %r: expected WIDTHxHEIGHT:ITERATIONS:DECAY_EVERY[:LR], '
                                 'e.g. 450x300:300:100' % text) from None
