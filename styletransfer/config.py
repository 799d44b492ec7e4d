"""A run's configuration: one frozen dataclass, the book's values as defaults."""
import os
from dataclasses import asdict, dataclass, replace

from .vgg import layers
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
# Values of `init` and `weights` that are not file paths.
INIT_KINDS = ('content', 'noise')
WEIGHT_KINDS = ('zoo', 'random')
PRESERVE_COLORS = ('none', 'luminance', 'histogram')
POOLINGS = ('max', 'avg')
DTYPES = ('float32', 'bfloat16')
FLOAT32_MAX = 3.4028234663852886e38
# The smallest learning rate a stage may reach. MXNet's adam_update refuses a rate below
# float32's smallest normal number (1.2e-38), and Gluon hands it the rate times Adam's bias
# correction, sqrt(1 - 0.999^t) / (1 - 0.9^t), which is never below 0.15: a rate of 1e-36
# keeps a wide margin. Steps that small no longer change a float32 pixel anyway.
MIN_LR = 1e-36

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
    # Controls beyond the book; their defaults leave the book's run unchanged.
    style_blend: tuple = ()     # ((path, weight), ...) replacing `style`; weights normalised
    style_scale: float = 1.0    # style image size relative to the stage size (the book: 1)
    style_layer_weights: tuple = ()   # one multiplier of style_weight per style layer
    preserve_colors: str = 'none'     # 'luminance' or 'histogram' (Gatys et al. 2017)
    init: str = 'content'       # 'content', 'noise' or an image path
    noise_ratio: float = 0.0    # blend this much uniform noise into the initial image
    pooling: str = 'max'        # 'avg' replaces VGG's max pooling
    dtype: str = 'float32'      # 'bfloat16' runs VGG in bfloat16 (CPU); losses stay float32
    regions: tuple = ()         # ((mask path, style path or 'none'), ...); the rest of the
                                # picture keeps `style` / `style_blend`

    @property
    def styles(self):
        """((path, normalised weight), ...): the style images whose Gram matrices are mixed."""
        if not self.style_blend:
            return ((self.style, 1.0),)
        total = sum(w for _, w in self.style_blend)
        return tuple((path, w / total) for path, w in self.style_blend)

    @property
    def layer_style_weights(self):
        """The style weight of each style layer."""
        factors = self.style_layer_weights or (1.0,) * len(self.style_layers)
        return tuple(self.style_weight * f for f in factors)

    def replace(self, **changes):
        return replace(self, **changes)

    def input_files(self):
        """Every picture the run reads: content, styles, initial image, region masks and their
        styles (not the network's weights)."""
        files = [self.content] + [path for path, _ in self.styles]
        if self.init not in INIT_KINDS:
            files.append(self.init)
        return files + [path for region in self.regions for path in region if path != 'none']

    def map_paths(self, change):
        """The same run with `change(path)` for every file path in it."""
        def mapped(path, keywords=()):
            return path if not path or path in keywords else change(path)
        return self.replace(
            content=mapped(self.content), style=mapped(self.style),
            style_blend=tuple((mapped(p), w) for p, w in self.style_blend),
            init=mapped(self.init, INIT_KINDS), weights=mapped(self.weights, WEIGHT_KINDS),
            regions=tuple((mapped(m), mapped(s, ('none',))) for m, s in self.regions))

    def with_absolute_paths(self):
        """The same run with every file path absolute, to be resumed from any folder."""
        return self.map_paths(os.path.abspath)

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
            if not MIN_LR <= s.lr <= 1e3:
                raise StyleTransferError('stage %d: learning rate must be in [%g, 1000], not %g'
                                         % (k, MIN_LR, s.lr))
        for name in ('content_weight', 'style_weight', 'tv_weight'):
            value = getattr(self, name)
            # The losses are float32: a larger weight turns them into inf at the first step.
            if not 0 <= value <= FLOAT32_MAX:
                raise StyleTransferError('--%s must be a number from 0 to %.2g, not %g'
                                         % (name.replace('_', '-'), FLOAT32_MAX, value))
        if not 0 < self.lr_decay <= 1:
            raise StyleTransferError('lr decay must be in (0, 1], not %g' % self.lr_decay)
        for k, s in enumerate(self.stages, 1):
            # The rate decays after iterations d, 2d, ...: the last step runs after this many.
            decays = max(s.iterations - 2, 0) // s.decay_every
            if self.optimizer == 'adam' and s.lr * self.lr_decay ** decays < MIN_LR:
                raise StyleTransferError(
                    'stage %d: the learning rate would decay %d times, from %g to below %g, '
                    'where MXNet\'s Adam stops; use a longer decay interval or fewer iterations'
                    % (k, decays, s.lr, MIN_LR))
        if self.optimizer not in OPTIMIZERS:
            raise StyleTransferError('--optimizer must be one of %s, not %r'
                                     % (', '.join(OPTIMIZERS), self.optimizer))
        if not 0 <= self.stop_rtol < 1:
            raise StyleTransferError('--stop-rtol must be in [0, 1), not %g' % self.stop_rtol)
        if self.stop_window < 1:
            raise StyleTransferError('--stop-window must be at least 1')
        if self.lbfgs_history < 1:
            raise StyleTransferError('L-BFGS history must be at least 1')
        if self.style_blend:
            weights = [w for _, w in self.style_blend]
            if (any(not 0 <= w <= FLOAT32_MAX for w in weights)
                    or not 0 < sum(weights) <= FLOAT32_MAX):
                raise StyleTransferError('--style-blend weights must be finite numbers >= 0, '
                                         'not all 0, with a finite sum')
        if not 0.05 <= self.style_scale <= 20:
            raise StyleTransferError('--style-scale must be in [0.05, 20], not %g'
                                     % self.style_scale)
        shortest = min(min(s.width, s.height) for s in self.stages)
        if round(shortest * self.style_scale) < smallest:
            raise StyleTransferError('--style-scale %g makes the style image %d pixels on its '
                                     'short side in the smallest stage; the layers need %d'
                                     % (self.style_scale, round(shortest * self.style_scale),
                                        smallest))
        if self.style_layer_weights and len(self.style_layer_weights) != len(self.style_layers):
            raise StyleTransferError('--style-layer-weights gives %d weights for %d style layers'
                                     % (len(self.style_layer_weights), len(self.style_layers)))
        if any(not 0 <= w <= FLOAT32_MAX for w in self.layer_style_weights):
            raise StyleTransferError('--style-layer-weights must be numbers >= 0')
        if self.preserve_colors not in PRESERVE_COLORS:
            raise StyleTransferError('--preserve-colors must be one of %s, not %r'
                                     % (', '.join(PRESERVE_COLORS), self.preserve_colors))
        if not 0 <= self.noise_ratio <= 1:
            raise StyleTransferError('--noise-ratio must be in [0, 1], not %g' % self.noise_ratio)
        if self.pooling not in POOLINGS:
            raise StyleTransferError('--pooling must be max or avg, not %r' % self.pooling)
        if self.dtype not in DTYPES:
            raise StyleTransferError('--dtype must be float32 or bfloat16, not %r' % self.dtype)
        if self.log_every < 1:
            raise StyleTransferError('--log-every must be at least 1')
        return self


def parse_style_blend(text):
    """'a.jpg:0.7,b.jpg:0.3' -> (('a.jpg', 0.7), ('b.jpg', 0.3)); a missing weight is 1."""
    pairs = []
    for item in text.split(','):
        path, sep, weight = item.strip().rpartition(':')
        if not sep:
            path, weight = weight, '1'
        try:
            pairs.append((path, float(weight)))
        except ValueError:
            raise StyleTransferError('--style-blend %r: expected PATH:WEIGHT,PATH:WEIGHT,...'
                                     % text) from None
        if not path:
            raise StyleTransferError('--style-blend %r: an entry has no path' % text)
    return tuple(pairs)


def parse_region(text):
    """'MASK:STYLE' or 'MASK:none' -> (mask, style)."""
    mask, sep, style = text.rpartition(':')
    if not sep or not mask or not style:
        raise StyleTransferError('--region %r: expected MASK.png:STYLE.jpg or MASK.png:none'
                                 % text)
    return mask, style


def parse_floats(text, option):
    try:
        return tuple(float(v) for v in text.split(','))
    except ValueError:
        raise StyleTransferError('%s %r: expected comma-separated numbers' % (option, text)) \
            from None


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
