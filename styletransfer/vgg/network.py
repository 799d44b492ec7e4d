"""`Network`: which measuring network a run uses (weights, layers, pooling, precision), as a
frozen, hashable spec; building it is expensive and is done once per stylizer (or per worker).

Field names are the command line's long options with underscores; layers accept indices or names
('conv4_4', '0,5,10'), and bad values raise StyleTransferError naming the field at once.
"""
import dataclasses
import os
from dataclasses import dataclass

from ..errors import StyleTransferError
from ..settings import choice, number
from . import layers

# Values of `weights` that are not file paths.
WEIGHT_KINDS = ('zoo', 'random')
POOLINGS = ('max', 'avg')
DTYPES = ('float32', 'bfloat16')


@dataclass(frozen=True)
class Network:
    weights: str = 'zoo'        # 'zoo', 'random' (seeded; NOT pretrained) or a .params path
    content_layers: tuple = layers.BOOK_CONTENT_LAYERS
    style_layers: tuple = layers.BOOK_STYLE_LAYERS
    pooling: str = 'max'        # 'avg' replaces VGG's max pooling
    dtype: str = 'float32'      # 'bfloat16' runs VGG in bfloat16 (CPU); losses stay float32
    seed: int = 0               # of the random weights

    def __post_init__(self):
        def put(name, value):
            object.__setattr__(self, name, value)
        weights = self.weights
        if not isinstance(weights, (str, os.PathLike)) or not str(weights).strip():
            raise StyleTransferError('weights must be zoo, random or a path to a .params file, '
                                     'not %r' % (weights,), 'weights')
        weights = os.fspath(weights)
        put('weights', weights.strip().lower() if weights.strip().lower() in WEIGHT_KINDS
            else weights)
        for name in ('content_layers', 'style_layers'):
            try:
                put(name, layers.resolve(getattr(self, name)))
            except StyleTransferError as e:
                raise StyleTransferError('%s: %s' % (name, e), name) from None
        put('pooling', choice(self.pooling, 'pooling', POOLINGS))
        put('dtype', choice(self.dtype, 'dtype', DTYPES))
        put('seed', number(self.seed, 'seed', int))

    @property
    def deepest(self):
        return max(self.content_layers + self.style_layers)

    @property
    def min_side(self):
        """Smallest image side for which every layer used is at least 1x1."""
        return layers.min_side(self.content_layers + self.style_layers)

    @property
    def random_weights(self):
        return self.weights == 'random'

    def load_weights(self):
        """The VGG-19 convolution weights this spec names (a vgg.weights.Weights, on the CPU)."""
        from . import weights
        return weights.load(self.weights, self.deepest, self.seed)

    def build(self, ctx, vgg_weights=None):
        """The frozen, hybridised feature extractor on `ctx` (weights loaded unless given)."""
        from . import features
        vgg_weights = vgg_weights or self.load_weights()
        return features.build_extractor(vgg_weights, self.content_layers, self.style_layers,
                                        ctx, self.pooling, self.dtype)

    def to_dict(self):
        d = dataclasses.asdict(self)
        d['content_layers'], d['style_layers'] = list(self.content_layers), list(self.style_layers)
        return d

    @classmethod
    def from_dict(cls, d):
        return cls(**d)
