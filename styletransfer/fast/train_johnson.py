"""The 'johnson' training recipe: Johnson et al. 2016's TransformerNet (fast/johnson.py) trained
with a perceptual loss, for one style or, through conditional instance norm (Dumoulin et al.
2017), for several at once; or new styles added to a trained network, training only their
rows. The loop around it is fast/training.py's.

The loss, per batch of content crops x (ImageNet-normalised) and one style per sample:
    y = network(x, one-hot row of the sample's style), read in VGG's input space
    content = content_weight * sum over content layers of mean((VGG(y) - VGG(x))^2)
    style   = style_weight * sum over style layers of STYLE_LOSSES[style_loss](VGG(y), target)
    tv      = tv_weight * losses.tv_loss(y)
Each sample of a batch draws its style uniformly from the styles being trained (not one style
per batch), so a batch of 4 with 2 styles usually trains both. The style targets are computed
once, from each style picture resized so that its longer side is style_size (256, the
default style_image_size of Johnson's Lua code; 0 keeps the picture's size).

Defaults and how pytorch/examples' fast_neural_style numbers carry over. Their loss network is
VGG-16; content relu2_2; style relu1_2, relu2_2, relu3_3, relu4_3, each the last ReLU of its
block. Our VGG-19's last ReLUs of the same blocks are relu1_2, relu2_2, relu3_4, relu4_4: those
are the defaults (relu3_3 and relu4_3 also exist in VGG-19 and can be asked for; they save two
convolutions per pass). Their weights are content 1e5 and style 1e10, and they stay 1e5 and 1e10
here, because the normalisations already agree:
- VGG's input: their transformer works on 0..255 pixels, but `normalize_batch` divides by 255
  and applies the ImageNet mean and std before VGG sees anything: the same input as ours
  (images.Normalizer), so features have the same scale (no factor 255 or 255^2);
- Gram matrices: theirs are F F^T / (C*H*W) per sample, as losses.gram_target;
- their MSELoss averages over the batch and every entry (C*C for a Gram matrix, C*H*W for a
  content map), as losses.gram_loss and the content term here do.
So the translation factor is 1 for both. What does not carry over is the network: VGG-19's
features at those layers are not VGG-16's, and torchvision's VGG-16 weights are not the Gluon
zoo's VGG-19, so the balance of 1e5 to 1e10 is a starting point to tune per style, as it was
for them. pytorch/examples has no TV term: tv_weight defaults to 0 (Johnson's paper chose one
per style, between 1e-6 and 1e-4 on 0..255 pixels with a sum of squares, which does not map
onto losses.tv_loss's mean absolute differences in VGG's input space).

Networks trained here record convention 'imagenet' (conventions.py): they take and give images
in VGG's input space, so the loss sees the output directly. Styles added to a network keep its
convention (a PyTorch-examples 'rgb255' network gets its input and output mapped in the graph).
"""
import os
from dataclasses import asdict, dataclass

import numpy as np

from ..errors import StyleTransferError
from ..losses import STYLE_LOSSES, tv_loss
from ..settings import choice, non_negative, number
from ..vgg import layers
from ..vgg.network import Network

CONTENT_LAYERS = ('relu2_2',)
STYLE_LAYERS = ('relu1_2', 'relu2_2', 'relu3_4', 'relu4_4')
CONTENT_WEIGHT = 1e5
STYLE_WEIGHT = 1e10
STYLE_SIZE = 256


def johnson_network(weights='zoo', seed=0, content_layers=CONTENT_LAYERS,
                    style_layers=STYLE_LAYERS, pooling='max'):
    """The loss network with this recipe's default layers (st.Network's are the book's)."""
    return Network(weights=weights, content_layers=content_layers, style_layers=style_layers,
                   pooling=pooling, seed=seed)


@dataclass(frozen=True)
class JohnsonLoss:
    content_weight: float = CONTENT_WEIGHT
    style_weight: float = STYLE_WEIGHT
    tv_weight: float = 0.0
    style_loss: str = 'gram'            # a name in losses.STYLE_LOSSES
    style_size: int = STYLE_SIZE        # longer side of the style pictures; 0: as they are

    def __post_init__(self):
        for name in ('content_weight', 'style_weight', 'tv_weight'):
            object.__setattr__(self, name, non_negative(getattr(self, name), name))
        object.__setattr__(self, 'style_loss',
                           choice(self.style_loss, 'style_loss', tuple(STYLE_LOSSES)))
        size = number(self.style_size, 'style_size', int)
        if size < 0:
            raise StyleTransferError('style_size must be 0 (as is) or a positive size',
                                     'style_size')
        object.__setattr__(self, 'style_size', size)


def _channels(index):
    """Channels of VGG-19's output at layer `index` (that of the last convolution up to it)."""
    return layers.CONV_SHAPES[max(i for i in layers.CONV_SHAPES if i <= index)][0]


def _affine(convention):
    """(in_scale, in_shift, out_scale, out_shift), 1x3x1x1 each: from VGG's input space to the
    network's convention and back. Identity (exactly) for 'imagenet'."""
    from ..images import RGB_MEAN, RGB_STD
    from . import conventions
    c = conventions.get(convention)
    mean, std = np.array(RGB_MEAN), np.array(RGB_STD)
    c_mean, c_std = np.array(c.mean), np.array(c.std)
    values = (std / c_std, (mean - c_mean) / c_std, c_std / std, (c_mean - mean) / std)
    return [v.astype(np.float32).reshape((1, 3, 1, 1)) for v in values]


def _loss_graph_class():
    from mxnet import gluon
    from . import johnson

    class LossGraph(gluon.HybridBlock):
        """x, rows, slots, [affine constants,] style target parts -> (content, style, tv,
        total); the affine constants (`_affine`) only for a network not in 'imagenet'.

        rows: each sample's norm row in the network; slots: its style among the targets.
        The VGG layers are the frozen extractor's own; x only goes as deep as the content
        layers need (relu2_2 of relu4_4's depth: a third of the passes' cost saved).

        With `batch` (the training graph) the network's instance norms run as oneDNN's
        BatchNorm over a 1 x (batch*C) x H x W view (johnson._instance_norm_batch): the
        same numbers to float rounding, and a training step at 256x256, batch 4, took a median
        10.2 s instead of 11.3 s (4 alternating pairs, 2 threads, busy machine). BatchNorm
        then needs running-statistics variables of batch*C entries, held here and never read
        (it is only called in training mode). Without `batch`, the network's own norms: any
        batch size, any mode (evaluation)."""

        def __init__(self, net, body, content_layers, style_layers, loss, shapes, kinds,
                     n_rows, batch=None, fuse_relu=False, **kwargs):
            super().__init__(**kwargs)
            self.net, self.body = net, body
            self.norms = list(net.norms().values())
            self.batch, self.fuse_relu = batch, fuse_relu
            for k, norm in enumerate(self.norms if batch else ()):
                for leaf, init in (('mean', 'zeros'), ('var', 'ones')):
                    name = 'stats%d_%s' % (k, leaf)
                    setattr(self, name, self.params.get(name, shape=(batch * norm.channels,),
                                                        init=init, grad_req='null'))
            self.content_layers, self.style_layers = content_layers, style_layers
            self.loss, self.shapes, self.kinds, self.n_rows = loss, shapes, kinds, n_rows
            self.style_fn = STYLE_LOSSES[loss.style_loss].loss

        def _features(self, x, wanted):
            out, deepest = {}, max(wanted)
            for i in range(deepest + 1):
                x = self.body[i](x)
                if i in wanted:
                    out[i] = x
            return out

        def hybrid_forward(self, F, x, rows, slots, *constants, **stats):
            weights = F.one_hot(rows, depth=self.n_rows)
            # the norms read these while this graph traces them, and only then
            for k, norm in enumerate(self.norms if self.batch else ()):
                norm.batch_norm_stats = johnson.BatchNormPlan(
                    stats['stats%d_mean' % k], stats['stats%d_var' % k], False, self.fuse_relu)
            try:
                if self.net.convention == 'imagenet':
                    # VGG's own input space: no mapping (whose backward would cost a reduction)
                    y, targets = self.net(x, weights), constants
                else:
                    (in_scale, in_shift, out_scale, out_shift), targets = \
                        constants[:4], constants[4:]
                    y = self.net(F.broadcast_add(F.broadcast_mul(x, in_scale), in_shift),
                                 weights)
                    y = F.broadcast_add(F.broadcast_mul(y, out_scale), out_shift)
            finally:
                for norm in self.norms:
                    norm.batch_norm_stats = None
            fy = self._features(y, set(self.content_layers + self.style_layers))
            fx = self._features(x, set(self.content_layers))
            content = F.add_n(*[F.mean(F.square(fy[i] - F.BlockGrad(fx[i])))
                                for i in self.content_layers])
            parts, style = list(targets), []
            for i, shape, kinds in zip(self.style_layers, self.shapes, self.kinds):
                target = [F.take(parts.pop(0), slots, axis=0) if kind == 'sample'
                          else parts.pop(0) for kind in kinds]
                style.append(self.style_fn(fy[i], target, shape, F))
            loss = self.loss
            content = content * loss.content_weight
            style = F.add_n(*style) * loss.style_weight
            tv = tv_loss(y, F) * loss.tv_weight
            return content, style, tv, content + style + tv

    return LossGraph


class JohnsonRecipe:
    """Train a TransformerNet for `styles` (paths or HxWx3 uint8 pictures; one for a
    single-style network, several for a conditional one). `base` (a path or a zoo.LoadedNet
    of kind 'johnson') keeps a trained network's styles frozen and trains new rows for
    `styles` only. `network`: the loss network (default johnson_network('zoo'))."""

    name = 'johnson'
    terms = ('content', 'style', 'tv', 'total')
    folders = ('content',)

    def __init__(self, styles, network=None, loss=None, style_names=None, base=None):
        from ..images import load_image
        if not styles:
            raise StyleTransferError('at least one style picture is needed', 'style')
        self.style_paths = [os.fspath(s) if isinstance(s, (str, os.PathLike)) else None
                            for s in styles]
        self.styles = [load_image(s)[0] if path else np.asarray(s, np.uint8)
                       for s, path in zip(styles, self.style_paths)]
        for k, picture in enumerate(self.styles):
            if picture.ndim != 3 or picture.shape[2] != 3:
                raise StyleTransferError('style %d: expected an HxWx3 picture' % k, 'style')
        self.style_names = list(style_names or [
            os.path.splitext(os.path.basename(p))[0] if p else 'style%d' % k
            for k, p in enumerate(self.style_paths)])
        if len(self.style_names) != len(self.styles):
            raise StyleTransferError('%d style names for %d styles'
                                     % (len(self.style_names), len(self.styles)), 'style')
        self.network = network if network is not None else johnson_network()
        if not isinstance(self.network, Network):
            raise StyleTransferError('network must be a styletransfer.Network', 'network')
        if self.network.dtype != 'float32':
            raise StyleTransferError('training runs VGG in float32 only (dtype %s asked)'
                                     % self.network.dtype, 'dtype')
        self.loss = loss if loss is not None else JohnsonLoss()
        self.base = base            # a path, a LoadedNet, or (after restore) a dict
        self.net = None

    # ------------------------------------------------------------------------ description

    @property
    def n_new(self):
        return len(self.styles)

    def describe(self):
        base = self._base_meta()
        meta = {'network': self.network.to_dict(), 'loss': asdict(self.loss),
                'style_names': self.style_names, 'base': base}
        return meta, {'style%d' % k: p for k, p in enumerate(self.styles)}

    def _base_meta(self):
        if self.base is None:
            return None
        if isinstance(self.base, dict):
            return self.base
        net = self.net
        n_base = net.n_styles - self.n_new
        return {'n_styles': n_base, 'style_names': self._base_names[:n_base],
                'convention': net.convention, 'source': self._base_source}

    @classmethod
    def restore(cls, meta, arrays):
        styles = [arrays['style%d' % k] for k in range(len(meta['style_names']))]
        return cls(styles, Network.from_dict(meta['network']), JohnsonLoss(**meta['loss']),
                   meta['style_names'], meta['base'])

    def loss_description(self):
        n, loss = self.network, self.loss
        return ('VGG-19 %s; content %s x %.3g; style %s x %.3g (%s, styles at %s); TV x %.3g; '
                'ImageNet-normalised crops' % (
                    self.weights_description, layers.describe(n.content_layers),
                    loss.content_weight, layers.describe(n.style_layers), loss.style_weight,
                    loss.style_loss, 'their own size' if not loss.style_size
                    else 'longer side %d' % loss.style_size, loss.tv_weight))

    # ----------------------------------------------------------------------------- build

    def build(self, ctx, settings, values=None):
        from mxnet import nd
        from . import johnson
        if settings.image_size < self.network.min_side:
            raise StyleTransferError('image_size %d is smaller than the %d pixels the deepest '
                                     'layer needs' % (settings.image_size,
                                                      self.network.min_side), 'image_size')
        self.ctx = ctx
        weights = self.network.load_weights()
        self.weights_description = weights.description
        self.extractor = extractor = self.network.build(ctx, weights)
        self.kinds, self.targets = self._style_targets(extractor, ctx)
        self.net = self._build_net(ctx, settings, values)
        n_base = self.net.n_styles - self.n_new
        self.first_row = n_base
        size = settings.image_size
        shapes = []
        for i in self.network.style_layers:
            w, h = layers.feature_size(i, size, size)
            shapes.append((_channels(i), w * h))
        def graph(batch):
            made = _loss_graph_class()(self.net, extractor.body, self.network.content_layers,
                                       self.network.style_layers, self.loss, shapes,
                                       self.kinds, self.net.n_styles, batch,
                                       johnson.fused_relu_available(ctx))
            for name, param in made._reg_params.items():    # the statistics' variables
                param.initialize(ctx=ctx)
            made.hybridize(static_alloc=True, static_shape=True)
            return made
        self.graph, self._graph, self._evaluation = graph(settings.batch_size), graph, None
        self.affine = [] if self.net.convention == 'imagenet' else [
            nd.array(a, ctx=ctx) for a in _affine(self.net.convention)]
        return [(name, p) for name, p in self.parameters().items() if p.grad_req != 'null']

    def _build_net(self, ctx, settings, values):
        from . import johnson, zoo
        base = self.base
        if base is None:
            net = johnson.TransformerNet(self.n_new, 'imagenet')
            net.initialize_weights(ctx, seed=settings.seed)
        elif isinstance(base, dict):           # restored: the values come from the state
            net = johnson.TransformerNet(base['n_styles'], base['convention'])
            net.initialize(ctx=ctx)
            net.add_styles(self.n_new)
        else:
            loaded = base if isinstance(base, zoo.LoadedNet) else zoo.get_net(base, ctx)
            if loaded.kind != 'johnson' or not isinstance(loaded.block, johnson.TransformerNet):
                raise StyleTransferError('%s: styles can be added to a TransformerNet (.params '
                                         'or .pth), not a %s network' % (loaded.source,
                                                                         loaded.kind), 'base')
            net = loaded.block
            self._base_names, self._base_source = list(loaded.style_names), loaded.source
            net.add_styles(self.n_new)
        if values is not None:
            params = net._collect_params_with_prefix()
            missing = set(params) ^ set(values)
            if missing:
                raise StyleTransferError('resume: the state\'s network differs (%s)'
                                         % sorted(missing)[0], 'resume')
            from mxnet import nd
            for name, param in params.items():
                param.set_data(nd.array(values[name], ctx=ctx, dtype='float32'))
        return net

    def _style_targets(self, extractor, ctx):
        """Per style layer, the kinds of its target parts ('sample': one row per style,
        gathered per sample; 'shared': the same for every style, such as the Gaussian MMD's
        random projection) and the parts as NDArrays (rows stacked over the styles)."""
        from mxnet import nd
        from ..images import Normalizer
        normalizer = Normalizer(ctx)
        target_fn = STYLE_LOSSES[self.loss.style_loss].target
        per_style = []
        for picture in self.styles:
            height, width = picture.shape[:2]
            if self.loss.style_size:
                scale = self.loss.style_size / max(width, height)
                width, height = max(1, round(width * scale)), max(1, round(height * scale))
            if min(width, height) < self.network.min_side:
                raise StyleTransferError('a style picture of %dx%d is smaller than the %d '
                                         'pixels the deepest layer needs'
                                         % (width, height, self.network.min_side), 'style')
            _, styles = extractor.split(extractor(normalizer.preprocess(picture, width, height)))
            per_style.append([[nd.array(p.asnumpy(), ctx=ctx) for p in target_fn(f)]
                              for f in styles])
        kinds, parts = [], []
        for layer in range(len(self.network.style_layers)):
            layer_kinds = []
            for j, first in enumerate(per_style[0][layer]):
                if first.shape[0] == 1:
                    layer_kinds.append('sample')
                    parts.append(nd.concat(*[s[layer][j] for s in per_style], dim=0))
                else:
                    for s in per_style[1:]:
                        if not np.array_equal(s[layer][j].asnumpy(), first.asnumpy()):
                            raise StyleTransferError('style loss %s: a shared target part '
                                                     'differs between styles'
                                                     % self.loss.style_loss, 'style_loss')
                    layer_kinds.append('shared')
                    parts.append(first)
            kinds.append(tuple(layer_kinds))
        return kinds, parts

    def parameters(self):
        return self.net._collect_params_with_prefix()

    def network_state(self):
        """The norm tables joined (what zoo.save_net writes), convolutions as they are."""
        return self.net.canonical_state()

    # -------------------------------------------------------------------------- training

    def conditions(self, rng, batch):
        """Each sample's style, uniformly among the styles being trained."""
        return rng.integers(0, self.n_new, size=batch)

    def _inputs(self, batch, slots):
        from mxnet import nd
        slots = nd.array(np.asarray(slots, np.float32), ctx=self.ctx)
        return (batch['content'], slots + self.first_row, slots, *self.affine, *self.targets)

    def losses(self, batch, conditions):
        """In training mode (under autograd.record or train_mode): see LossGraph."""
        return self.graph(*self._inputs(batch, conditions))

    def evaluate(self, batch, condition):
        """`condition`: the style's index among the styles trained (0 .. len(styles) - 1)."""
        if not (0 <= int(condition) < self.n_new):
            raise StyleTransferError('style %r: this training has styles 0..%d'
                                     % (condition, self.n_new - 1), 'style')
        n = batch['content'].shape[0]
        if self._evaluation is None:        # the network's own norms: any batch, any mode
            self._evaluation = self._graph(None)
        return self._evaluation(*self._inputs(batch, [int(condition)] * n))

    def sample(self, pictures):
        """Every picture under every style of the network (old rows included)."""
        from mxnet import nd
        from . import conventions
        from .johnson import style_weights
        names = self.all_style_names()
        out = []
        for k, picture in enumerate(pictures):
            pixels = nd.array(np.asarray(picture, np.float32).transpose(2, 0, 1)[None],
                              ctx=self.ctx)
            x = conventions.to_input(pixels, self.net.convention)
            for row, name in enumerate(names):
                y = self.net(x, style_weights(self.net.n_styles, row, 1, self.ctx))
                made = conventions.from_output(y, self.net.convention)[0]
                out.append(('%d: %s' % (k + 1, name),
                            np.round(made.asnumpy().transpose(1, 2, 0)).astype(np.uint8)))
        return out

    def all_style_names(self):
        base = self._base_meta()
        return (list(base['style_names']) if base else []) + list(self.style_names)

    def title(self):
        return ', '.join(self.all_style_names())

    def summary(self):
        return ['styles: %s' % self.title(), 'loss: %s' % self.loss_description()]

    def save(self, path, extra=None):
        from . import zoo
        return zoo.save_net(self.net, path, self.all_style_names(), self.loss_description(),
                            'johnson', extra)
