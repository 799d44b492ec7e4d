"""Johnson et al. 2016's image transformation network, with conditional instance norm
(Dumoulin et al. 2017) so that one network holds several styles.

Layers, in order (every convolution preceded by reflection padding of kernel // 2):

    conv1 9x9 3->32 stride 1, in1, relu
    conv2 3x3 32->64 stride 2, in2, relu
    conv3 3x3 64->128 stride 2, in3, relu
    res1..res5: conv1 3x3, in1, relu, conv2 3x3, in2, plus the block's input
    deconv1: nearest x2 upsampling, 3x3 128->64, in4, relu
    deconv2: nearest x2 upsampling, 3x3 64->32, in5, relu
    deconv3 9x9 32->3 (no norm, no relu)

The upsampling is nearest-neighbour followed by a convolution, never a transposed
convolution (which leaves checkerboard artefacts; Odena et al. 2016). This is the layout of
pytorch/examples' fast_neural_style TransformerNet, and the Gluon parameter names are chosen so
that its state dicts load by a fixed map (`torch_name_map`): convolutions keep their names
('conv1.conv2d.weight', 'res3.conv2.conv2d.bias', 'deconv3.conv2d.weight'), and an instance
norm's affine 'in4.weight' / 'in4.bias' (C,) become the single row of 'in4.gamma' / 'in4.beta'
(1, C).

Pixel conventions (see conventions.py): a network records its own in `convention`. The
PyTorch-examples models take RGB 0..255 and give 0..255 ('rgb255'); networks we train default to
the project's ImageNet normalisation ('imagenet').

Conditional instance norm: every normalised layer holds a table of (scale, shift) rows, one per
style. The style is an input of the graph, a N x n_styles matrix of weights: a one-hot row picks
a style, and a row of weights summing to 1 gives the weighted average of the styles' rows (the
graph does not renormalise; `style_weights` builds normalised rows). A single-style network is
n_styles = 1 with the input [[1]].
"""
from collections import namedtuple

import mxnet as mx
import numpy as np
from mxnet import autograd, gluon, nd
from mxnet.gluon import nn

from ..errors import StyleTransferError

IN_EPS = 1e-5         # PyTorch's InstanceNorm2d eps; Gluon's default of 1e-3 would shift the
                      # pretrained networks' outputs
RESIDUAL_BLOCKS = 5
CHANNELS = 128        # inside the residual blocks
# Convolutions with fewer outputs than this run as one with this many, the extra filters zero
# (see NarrowConv2D).
FAST_MIN_CHANNELS = 16


class NarrowConv2D(gluon.HybridBlock):
    """A k x k convolution (stride 1) with few output channels (the last layer's 3), computed
    as two convolutions that oneDNN (MXNet 1.9.1) runs on its fast kernels: it has none for 3
    outputs. The first, k x 1, gives (k * channels) outputs, one group per column j of the
    kernel, padded with zero filters to a multiple of FAST_MIN_CHANNELS; the second, 1 x k
    with fixed 0/1 weights, adds group j shifted by j columns: y[o, :, x] = sum over j of
    z[(j, o), :, x + j]. Its FAST_MIN_CHANNELS outputs, all but the first `channels` zero, are
    sliced back at channel 0 (oneDNN's slice of its blocked layout at another channel offset
    crashed with SIGFPE in training mode). deconv3 (9x9, 32 -> 3) at 512x512 took 0.156 s as
    one convolution, 0.070 s as one with 16 outputs whose extra filters were zeros (what this
    class did before: 5.3 times the arithmetic), 0.024 s in this form (2 threads, AMD EPYC,
    quiet machine). The parameters are nn.Conv2D's ('weight' C_out x C_in x k x k, 'bias'), so
    files and names do not change."""

    def __init__(self, channels, kernel, stride, in_channels, **kwargs):
        super().__init__(**kwargs)
        if stride != 1:
            raise ValueError('NarrowConv2D computes stride 1 only')
        self.channels, self.kernel, self.in_channels = channels, kernel, in_channels
        self.groups = -(-kernel * channels // FAST_MIN_CHANNELS) * FAST_MIN_CHANNELS
        self.weight = self.params.get('weight', shape=(channels, in_channels, kernel, kernel))
        self.bias = self.params.get('bias', shape=(channels,), init='zeros')

    def hybrid_forward(self, F, x, weight, bias):
        k, c, g = self.kernel, self.channels, self.groups
        # filter (j, o) of the first convolution: column j of output o's kernel; the bias goes
        # with column 0 only
        columns = [F.slice_axis(weight, axis=3, begin=j, end=j + 1) for j in range(k)]
        if g > k * c:
            columns.append(F.zeros((g - k * c, self.in_channels, k, 1)))
        z = F.Convolution(x, F.concat(*columns, dim=0),
                          F.concat(bias, F.zeros((g - c,)), dim=0),
                          kernel=(k, 1), num_filter=g)
        y = F.Convolution(z, self._shift_sum(F), kernel=(1, k), num_filter=FAST_MIN_CHANNELS,
                          no_bias=True)
        return F.slice_axis(y, axis=1, begin=0, end=c)

    def _shift_sum(self, F):
        """FAST_MIN_CHANNELS x groups x 1 x k: 1 at [o, j * channels + o, 0, j] for o <
        channels, else 0 (one_hot gives a row of zeros for an index out of its range)."""
        k, c, g = self.kernel, self.channels, self.groups
        i = F.arange(0, FAST_MIN_CHANNELS * k)                 # row o * k + j
        o = F.floor(i / k)
        j = i - o * k
        flat = (j * c + o) * k + j + (o >= c) * (g * k)        # index into groups x k
        picks = F.one_hot(flat, depth=g * k)
        return F.reshape(F.sum(F.reshape(picks, shape=(FAST_MIN_CHANNELS, k, g * k)), axis=1),
                         shape=(FAST_MIN_CHANNELS, g, 1, k))


class ConvLayer(gluon.HybridBlock):
    """[nearest x2 upsampling,] reflection padding of kernel // 2, convolution."""

    def __init__(self, in_channels, channels, kernel, stride=1, upsample=False, **kwargs):
        super().__init__(**kwargs)
        self.padding, self.upsample = kernel // 2, upsample
        with self.name_scope():
            if channels < FAST_MIN_CHANNELS:
                self.conv2d = NarrowConv2D(channels, kernel, stride, in_channels)
            else:
                self.conv2d = nn.Conv2D(channels, kernel, strides=stride,
                                        in_channels=in_channels)

    def hybrid_forward(self, F, x):
        if self.upsample:
            x = F.UpSampling(x, scale=2, sample_type='nearest', num_args=1)
        p = self.padding
        return self.conv2d(F.pad(x, mode='reflect', pad_width=(0, 0, 0, 0, p, p, p, p)))


class CondInstanceNorm(gluon.HybridBlock):
    """Instance norm whose scale and shift are `style_weights . table`, one table row per style,
    followed by a ReLU when built with relu=True (so that the two can run as one operator).

    The rows live in groups of Parameters, concatenated in the graph: group 0 ('gamma',
    'beta') holds the styles the layer was built with, and each `add_rows` appends a group
    ('gamma_added1', ...) so that the old rows can be frozen (grad_req 'null') while the new ones
    train; no optimiser setting (momentum, weight decay) can then move an old row."""

    def __init__(self, channels, n_styles, relu=False, **kwargs):
        super().__init__(**kwargs)
        self.channels, self.relu = channels, relu
        self.groups = []            # (scale name, shift name, rows)
        self._add_group(n_styles)

    @property
    def n_styles(self):
        return sum(rows for _, _, rows in self.groups)

    def _add_group(self, rows):
        suffix = '_added%d' % len(self.groups) if self.groups else ''
        names = ('gamma' + suffix, 'beta' + suffix)
        for name, init in zip(names, (mx.init.One(), mx.init.Zero())):
            setattr(self, name, self.params.get(name, shape=(rows, self.channels), init=init))
        self.groups.append(names + (rows,))
        return [getattr(self, name) for name in names]

    def add_rows(self, rows, init_from=None):
        """Append `rows` styles; every existing row is frozen. New rows start as `init_from`
        ((rows, C) scale and shift arrays) or, by default, as the mean of the existing rows
        (a network that already stylises, a better start than scale 1, shift 0). The new
        Parameters are initialised on the contexts of the existing ones."""
        old = self.tables()
        for name in [n for group in self.groups for n in group[:2]]:
            getattr(self, name).grad_req = 'null'
        scale, shift = self._add_group(rows)
        if init_from is None:
            init_from = [nd.broadcast_to(table.mean(axis=0, keepdims=True),
                                         (rows, self.channels)) for table in old]
        ctx = getattr(self, self.groups[0][0]).list_ctx()
        for param, values in zip((scale, shift), init_from):
            param.initialize(ctx=ctx)
            param.set_data(nd.array(values, dtype='float32') if not isinstance(values, nd.NDArray)
                           else values)

    def tables(self):
        """The whole (scale, shift) tables, n_styles x C each, as NDArrays (on the first
        context)."""
        return [nd.concat(*[getattr(self, group[i]).data() for group in self.groups], dim=0)
                for i in (0, 1)]

    # A BatchNormPlan, set only while a graph run in training mode traces this norm
    # (fast/train_johnson.py's training graph, OnePicture).
    batch_norm_stats = None

    def hybrid_forward(self, F, x, style_weights, **params):
        scales, shifts = ([params[group[i]] for group in self.groups] for i in (0, 1))
        scale = scales[0] if len(scales) == 1 else F.concat(*scales, dim=0)
        shift = shifts[0] if len(shifts) == 1 else F.concat(*shifts, dim=0)
        if self.batch_norm_stats is not None:
            return _instance_norm_batch(x, F.dot(style_weights, scale),
                                        F.dot(style_weights, shift), self.batch_norm_stats,
                                        self.relu, F)
        rows = _instance_norm_rows(x, F)
        # The per-sample scale and shift are broadcast to the N x C x (H*W) view first and then
        # applied elementwise: the same numbers as broadcast_mul / broadcast_add, whose backward
        # (a reduction fused with the product) took twice as long in training: 4x32x128x128,
        # 0.49 s against 0.26 s for the norm's whole backward (2 threads, busy machine).
        scale, shift = [F.broadcast_like(F.reshape(F.dot(style_weights, table), shape=(0, 0, 1)),
                                         rows) for table in (scale, shift)]
        y = F.reshape_like(rows * scale + shift, x)
        return F.relu(y) if self.relu else y


class BatchNormPlan(namedtuple('BatchNormPlan', 'mean var one_picture fuse_relu')):
    """How a graph run in training mode has its instance norms computed by oneDNN's BatchNorm
    (`_instance_norm_batch`): `mean`, `var` the running-statistics variables BatchNorm writes
    and nothing reads (N*C entries, or C for one picture); `one_picture` when the batch is
    always a single picture (BatchNorm then runs on the convolution's output as it is);
    `fuse_relu` when a ReLU after the norm may be fused into it (oneDNN's BatchNormWithReLU,
    `fused_relu_available`)."""


def fused_relu_available(ctx):
    """BatchNormWithReLU exists for oneDNN on the CPU only."""
    return ctx.device_type == 'cpu' and hasattr(nd.contrib, 'BatchNormWithReLU')


def _instance_norm_batch(x, scale, shift, plan, relu, F):
    """The same instance norm, scale and shift (and ReLU) as oneDNN's BatchNorm in training
    mode over the 1 x (N*C) x H x W view: batch statistics of that view are each sample's and
    channel's, and gamma and beta of N*C entries are the per-sample rows. For one picture
    (N = 1) that view is x itself and no reshape is traced: MXNet's reshape of a convolution's
    output reorders it out of oneDNN's blocked layout, which cost more than the norm (1 x 32 x
    512 x 512: convolution and fused norm 0.032 s, 0.085 s with the reshape; 2 threads, AMD
    EPYC). Training mode only: in inference BatchNorm would use the running statistics."""
    flat = x if plan.one_picture else F.reshape(x, shape=(1, -1, 0, 0))
    args = (flat, F.reshape(scale, shape=(-1,)), F.reshape(shift, shape=(-1,)), plan.mean,
            plan.var)
    options = dict(eps=IN_EPS, fix_gamma=False, use_global_stats=False)
    if relu and plan.fuse_relu:
        y = F.contrib.BatchNormWithReLU(*args, **options)
    else:
        y = F.BatchNorm(*args, **options)
        y = F.relu(y) if relu else y
    return y if plan.one_picture else F.reshape_like(y, x)


def _instance_norm_rows(x, F):
    """(x - mean) / sqrt(var + IN_EPS) per sample and channel over the positions, variance
    divided by H*W as PyTorch's, in the N x C x (H*W) view.

    Computed as LayerNorm over the last axis of the N x C x (H*W) view: the same numbers as
    F.InstanceNorm (bit for bit in our checks), 2-3 times faster on CPU (1x32x512x512: 0.08 s
    against 0.15-0.27 s, 2 threads). A whole 512x512 stylisation took 0.89 s instead of 1.77 s
    (2 threads, quiet machine) and 2.7 s instead of 3.7 s (1 thread, busy machine). LayerNorm
    wants a gamma and beta as long as the normalised axis: ones and zeros made from a row of x,
    so they need no shape read here and sit on x's device."""
    rows = F.reshape(x, shape=(0, 0, -1))
    row = F.reshape(F.slice(rows, begin=(0, 0, None), end=(1, 1, None)), shape=(-1,))
    return F.LayerNorm(rows, F.ones_like(row), F.zeros_like(row), axis=-1, eps=IN_EPS)


class ResidualBlock(gluon.HybridBlock):
    """conv, norm, relu, conv, norm, plus the input (no relu after the sum)."""

    def __init__(self, channels, n_styles, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.conv1 = ConvLayer(channels, channels, 3)
            self.in1 = CondInstanceNorm(channels, n_styles, relu=True)
            self.conv2 = ConvLayer(channels, channels, 3)
            self.in2 = CondInstanceNorm(channels, n_styles)

    def hybrid_forward(self, F, x, style_weights):
        y = self.in1(self.conv1(x), style_weights)
        return self.in2(self.conv2(y), style_weights) + x


class TransformerNet(gluon.HybridBlock):
    """`net(x, style_weights)`: N x 3 x H x W images in the network's `convention`, and
    N x n_styles weights -> N x 3 x H x W, unclamped, in the same convention. H and W need
    not be multiples of 4, but then the output's size differs from the input's (two stride-2
    convolutions each round up, the upsamplings double): the PyTorch models do the same."""

    def __init__(self, n_styles=1, convention='imagenet', **kwargs):
        super().__init__(**kwargs)
        self.convention = convention
        with self.name_scope():
            self.conv1 = ConvLayer(3, 32, 9)
            self.in1 = CondInstanceNorm(32, n_styles, relu=True)
            self.conv2 = ConvLayer(32, 64, 3, stride=2)
            self.in2 = CondInstanceNorm(64, n_styles, relu=True)
            self.conv3 = ConvLayer(64, CHANNELS, 3, stride=2)
            self.in3 = CondInstanceNorm(CHANNELS, n_styles, relu=True)
            for i in range(1, RESIDUAL_BLOCKS + 1):
                setattr(self, 'res%d' % i, ResidualBlock(CHANNELS, n_styles))
            self.deconv1 = ConvLayer(CHANNELS, 64, 3, upsample=True)
            self.in4 = CondInstanceNorm(64, n_styles, relu=True)
            self.deconv2 = ConvLayer(64, 32, 3, upsample=True)
            self.in5 = CondInstanceNorm(32, n_styles, relu=True)
            self.deconv3 = ConvLayer(32, 3, 9)

    def hybrid_forward(self, F, x, style_weights):
        s = style_weights
        y = self.in1(self.conv1(x), s)          # each norm here includes its ReLU
        y = self.in2(self.conv2(y), s)
        y = self.in3(self.conv3(y), s)
        for i in range(1, RESIDUAL_BLOCKS + 1):
            y = getattr(self, 'res%d' % i)(y, s)
        y = self.in4(self.deconv1(y), s)
        y = self.in5(self.deconv2(y), s)
        return self.deconv3(y)

    def norms(self):
        """The conditional instance norms, by structural name ('in1', 'res2.in1', ...)."""
        found = {}

        def walk(block, prefix):
            for name, child in block._children.items():
                if isinstance(child, CondInstanceNorm):
                    found[prefix + name] = child
                else:
                    walk(child, prefix + name + '.')
        walk(self, '')
        return found

    @property
    def n_styles(self):
        return self.in1.n_styles

    def initialize_weights(self, ctx=None, seed=None):
        """He-normal convolutions (fan in), zero biases; norms start at scale 1, shift 0."""
        if seed is not None:
            mx.random.seed(seed)
        self.initialize(mx.init.Xavier(rnd_type='gaussian', factor_type='in', magnitude=2),
                        ctx=ctx)

    def add_styles(self, count, init_from=None):
        """Grow every norm's tables by `count` rows and leave only those trainable: every other
        Parameter (convolutions, the old rows) gets grad_req 'null'. A Trainer made after this
        call over `collect_params()` updates only the new rows. `init_from` maps a norm's
        structural name to (scale, shift) starting rows; the default is the mean of the
        existing rows."""
        if not (isinstance(count, int) and count >= 1):
            raise StyleTransferError('add_styles: count must be a positive integer, not %r'
                                     % (count,))
        for param in self.collect_params().values():
            param.grad_req = 'null'
        for name, norm in self.norms().items():
            norm.add_rows(count, (init_from or {}).get(name))
        # a cached graph has the old Parameters wired in: the next call builds a new one
        for block in self._all_blocks():
            block._clear_cached_op()

    def _all_blocks(self):
        blocks = [self]
        for block in blocks:
            blocks.extend(block._children.values())
        return blocks

    def canonical_state(self):
        """Structural name -> NDArray, with each norm's groups joined into one table
        ('in1.gamma' of n_styles x C): what a saved file holds, whatever groups training
        added."""
        state = {}
        norms = self.norms()
        for name, param in self._collect_params_with_prefix().items():
            owner, _, leaf = name.rpartition('.')
            if owner in norms:
                if leaf in ('gamma', 'beta'):
                    state[name] = norms[owner].tables()[leaf == 'beta']
            else:
                state[name] = param.data()
        return state


class OnePicture(gluon.HybridBlock):
    """A TransformerNet's forward pass for one picture at a time, the way oneDNN runs it
    fastest: each instance norm is BatchNorm over the picture (a batch of one, whose batch
    statistics are the instance statistics) with its ReLU fused in, on the convolution's
    output as oneDNN laid it out. The network's own form (LayerNorm over an N x C x (H*W)
    view, then scale, shift and ReLU) reads that output back into plain layout and makes a
    pass over memory per operator. The same numbers to float rounding.

    Shares the network's Parameters (`net` stays what is saved and exported) and holds the
    running-statistics variables BatchNorm writes and nothing reads. Every call runs in
    training mode, which is when BatchNorm uses batch statistics; nothing is recorded unless
    the caller records."""

    def __init__(self, net, ctx, **kwargs):
        super().__init__(**kwargs)
        self.net = net
        self.fuse_relu = fused_relu_available(ctx)
        for k, norm in enumerate(net.norms().values()):
            for leaf, init in (('mean', 'zeros'), ('var', 'ones')):
                name = 'stats%d_%s' % (k, leaf)
                param = self.params.get(name, shape=(norm.channels,), init=init,
                                        grad_req='null')
                param.initialize(ctx=ctx)
                setattr(self, name, param)

    def __call__(self, x, style_weights):
        if x.shape[0] != 1:
            raise ValueError('OnePicture runs one picture at a time, not %d' % x.shape[0])
        with autograd.train_mode():
            return super().__call__(x, style_weights)

    def hybrid_forward(self, F, x, style_weights, **stats):
        # the norms read these while this graph traces them, and only then
        norms = list(self.net.norms().values())
        for k, norm in enumerate(norms):
            norm.batch_norm_stats = BatchNormPlan(stats['stats%d_mean' % k],
                                                  stats['stats%d_var' % k], True,
                                                  self.fuse_relu)
        try:
            return self.net(x, style_weights)
        finally:
            for norm in norms:
                norm.batch_norm_stats = None


def expected_shapes(n_styles):
    """Structural name -> shape of a TransformerNet with one group per norm."""
    net = TransformerNet(n_styles)
    return {name: param.shape for name, param in net._collect_params_with_prefix().items()}


def torch_name_map():
    """PyTorch-examples state-dict name -> (our structural name, reshape needed): the affine
    weight and bias of instance norm 'inK' become 'inK.gamma' / 'inK.beta', rows of a table;
    convolutions keep their names."""
    names = {}
    for ours in expected_shapes(1):
        owner, _, leaf = ours.rpartition('.')
        torch = '%s.%s' % (owner, {'gamma': 'weight', 'beta': 'bias'}.get(leaf, leaf))
        names[torch] = (ours, leaf in ('gamma', 'beta'))
    return names


# what torch < 0.4 saved for InstanceNorm2d and the example's stylise step deletes
TORCH_IGNORED_SUFFIXES = ('.running_mean', '.running_var', '.num_batches_tracked')


def style_weights(n_styles, choice, batch=1, ctx=None):
    """A batch x n_styles weight matrix from a style index or a {index: weight} mapping (or a
    sequence of n_styles weights). Weights must be >= 0 with a positive sum; they are divided
    by their sum, so a mix is a weighted average of the styles' (scale, shift) rows."""
    row = np.zeros(n_styles, np.float64)
    if isinstance(choice, (int, np.integer)) and not isinstance(choice, bool):
        items = {int(choice): 1.0}
    elif isinstance(choice, dict):
        items = choice
    else:
        items = dict(enumerate(choice))
    for index, weight in items.items():
        if not (isinstance(index, (int, np.integer)) and 0 <= index < n_styles):
            raise StyleTransferError('style %r: the network has styles 0..%d'
                                     % (index, n_styles - 1))
        if not (np.isfinite(weight) and weight >= 0):
            raise StyleTransferError('style %d: weight %r must be finite and >= 0'
                                     % (index, weight))
        row[index] += weight
    if row.sum() <= 0:
        raise StyleTransferError('style weights sum to 0: give at least one positive weight')
    rows = np.tile(row / row.sum(), (batch, 1)).astype(np.float32)
    return nd.array(rows, ctx=ctx or mx.cpu())
