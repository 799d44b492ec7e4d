"""AdaIN: arbitrary style transfer in one forward pass (Huang and Belongie 2017).

A fixed VGG-19 encoder maps the content picture to its relu4_1 features; adaptive instance
normalisation gives every channel the style's mean and standard deviation; a decoder trained for
that encoder turns the result back into a picture.

Two encoders:

- 'vgg_normalised', the one the authors' decoders were trained with (`vgg_normalised.pth` and
  `decoder.pth` of the PyTorch port, state dicts of plain Sequentials: see ENCODER_SOURCE and
  DECODER_SOURCE). Its first layer is a 1x1 convolution that does the preprocessing, every 3x3
  convolution is preceded by a reflection pad and pooling rounds up (ceil mode), so a side of
  42 gives 21, 11, then 6 at relu4_1.
- 'vgg19', this project's VGG-19 (weights from vgg/weights.py: the model zoo, a .params file,
  or random), with ImageNet normalisation as a fixed 1x1 convolution, zero padding and floor
  pooling, as Gluon's vgg19 has: for decoders trained here. A decoder's .params file records the
  encoder it was trained with (META_KEY); a decoder.pth is always a vgg_normalised one.

Both take RGB pictures in [0, 1] as 1x3xHxW. Everything numeric is written as pure functions
over `F` (mxnet.nd or mxnet.sym, as in hybrid_forward), so the networks below hybridise and export
with style statistics, mixing weights, masks and alpha as inputs rather than Python branches.

The statistics follow the authors' code exactly: per-channel mean over HxW and the UNBIASED
standard deviation (divided by N - 1) with EPS added to the variance inside the square root.
"""
import collections
import json
import os

import numpy as np
from mxnet import nd
from mxnet.gluon import HybridBlock, nn

from .. import device
from ..errors import StyleTransferError
from ..files import atomic_path, check_input_file

EPS = 1e-5                       # added to the variance, as the authors' calc_mean_std does
ENCODER_KINDS = ('vgg_normalised', 'vgg19')
FEATURE_CHANNELS = 512           # relu4_1
DOWNSAMPLING = 8                 # three 2x2 poolings before relu4_1
# The decoder .params entry naming its encoder: JSON bytes as a uint8 array, so the one file
# carries its pairing and cannot lose a sidecar.
META_KEY = 'meta:adain'
META_FORMAT = 'styletransfer-adain-decoder'
# A decoder.pth is the authors', trained with their encoder; our .params say which (META_KEY).
AUTHORS_ENCODER = 'vgg_normalised'

# VGG-19 up to relu4_1: output channels of each convolution, block by block.
VGG_BLOCKS = ((64, 64), (128, 128), (256, 256, 256, 256), (512,))
ENCODER_CONV_NAMES = tuple('conv%d_%d' % (b, c) for b, block in enumerate(VGG_BLOCKS, 1)
                           for c in range(1, len(block) + 1))
ENCODER_OUTPUTS = ('relu1_1', 'relu2_1', 'relu3_1', 'relu4_1')

# The decoder mirrors the encoder: (output channels, nearest x2 upsampling after this conv).
# Its last convolution makes the picture and has no ReLU.
DECODER_CONVS = ((256, True), (256, False), (256, False), (256, False), (128, True),
                 (128, False), (64, True), (64, False), (3, False))


# ---------------------------------------------------------------------- weight layouts

Param = collections.namedtuple('Param', 'key shape')


def _encoder_shapes():
    """[(name, weight shape)] of the encoder's convolutions, the 1x1 preprocessing first."""
    shapes, channels = [('preprocess', (3, 3, 1, 1))], 3
    for name, out in zip(ENCODER_CONV_NAMES, (c for block in VGG_BLOCKS for c in block)):
        shapes.append((name, (out, channels, 3, 3)))
        channels = out
    return shapes


def _normalised_indices():
    """Positions of the convolutions in the authors' vgg Sequential: the 1x1 conv at 0, then
    (reflection pad, conv, ReLU) per convolution and a pooling layer after each block."""
    indices, position = [0], 1
    for b, block in enumerate(VGG_BLOCKS):
        for _ in block:
            indices.append(position + 1)
            position += 3
        position += 1                       # the block's max pooling
    return indices


def _decoder_layout():
    """[(Sequential index, weight shape, relu, upsample)] of the authors' decoder: each conv is
    (reflection pad, conv[, ReLU][, nearest x2 upsampling])."""
    layout, position, channels = [], 0, FEATURE_CHANNELS
    for number, (out, upsample) in enumerate(DECODER_CONVS):
        relu = number < len(DECODER_CONVS) - 1
        layout.append((position + 1, (out, channels, 3, 3), relu, upsample))
        position += 2 + relu + upsample
        channels = out
    return layout


ENCODER_SHAPES = _encoder_shapes()
# (name, index in the authors' vgg Sequential) for the layers up to relu4_1: 0, 2, 5, 9, ... 29.
ENCODER_SOURCE = tuple(zip([n for n, _ in ENCODER_SHAPES], _normalised_indices()))
DECODER_LAYOUT = _decoder_layout()
# Keys of decoder.pth in order: 1, 5, 8, 11, 14, 18, 21, 25, 28 (.weight, .bias).
DECODER_SOURCE = tuple(Param('%d.%s' % (index, kind), shape if kind == 'weight' else shape[:1])
                       for index, shape, _, _ in DECODER_LAYOUT for kind in ('weight', 'bias'))


def feature_size(kind, height, width):
    """(height, width) of relu4_1 for a HEIGHTxWIDTH picture: ceil-mode pooling rounds each
    halving up (vgg_normalised), Gluon's floor pooling rounds it down (vgg19)."""
    _check_kind(kind)
    for _ in range(3):
        if kind == 'vgg_normalised':
            height, width = -(-height // 2), -(-width // 2)
        else:
            height, width = height // 2, width // 2
    return height, width


def _check_kind(kind):
    if kind not in ENCODER_KINDS:
        raise StyleTransferError('unknown AdaIN encoder %r: use one of %s'
                                 % (kind, ', '.join(ENCODER_KINDS)))


# ----------------------------------------------------------------------- the AdaIN op

def mean_std(feat, F=nd, eps=EPS):
    """Per-channel mean and standard deviation of NxCxHxW features over HxW, each NxCx1x1.

    The variance is the unbiased one (sum of squares / (H*W - 1)), plus `eps`, as the authors'
    code computes it: losses.channel_mean_std (the style loss's statistics, one
    implementation), unbiased, works on Symbols too."""
    from ..losses import channel_mean_std
    mean, std = channel_mean_std(feat, F, unbiased=True, eps=eps)
    return F.reshape(mean, shape=(0, 0, 1, 1)), F.reshape(std, shape=(0, 0, 1, 1))


def _normalise(content_feat, F, eps):
    mean, std = mean_std(content_feat, F, eps)
    return F.broadcast_div(F.broadcast_sub(content_feat, mean), std)


def adain(content_feat, style_mean, style_std, F=nd, eps=EPS):
    """Content features with each channel moved to the style's mean and std (broadcastable to
    the features: Cx1x1 or NxCx1x1)."""
    return F.broadcast_add(F.broadcast_mul(_normalise(content_feat, F, eps), style_std),
                           style_mean)


def blend(target, content_feat, alpha, F=nd):
    """alpha * target + (1 - alpha) * content: how far the picture moves towards the style.
    `alpha` is a one-element array, so one graph serves every alpha."""
    alpha = F.reshape(alpha, shape=(1, 1, 1, 1))
    return F.broadcast_mul(target, alpha) + F.broadcast_mul(content_feat, 1 - alpha)


def adain_mix(content_feat, style_means, style_stds, weights, F=nd, eps=EPS):
    """sum_k w_k adain(content, style k), the weights w normalised to sum to 1.

    style_means and style_stds are KxC (one row per style), weights has K entries. This is
    what the authors' code computes (it interpolates the AdaIN outputs, not the features of
    the styles); since AdaIN is affine in the style's statistics, it equals one AdaIN with the
    weighted mean of the means and of the stds, which is how it is computed here: one pass over
    the features whatever K."""
    weights = F.broadcast_div(weights, F.sum(weights))
    column = F.reshape(weights, shape=(-1, 1))
    mean = F.sum(F.broadcast_mul(style_means, column), axis=0)
    std = F.sum(F.broadcast_mul(style_stds, column), axis=0)
    return adain(content_feat, F.reshape(mean, shape=(1, -1, 1, 1)),
                 F.reshape(std, shape=(1, -1, 1, 1)), F, eps)


def masked_adain(content_feat, style_means, style_stds, masks, F=nd, eps=EPS):
    """Spatial control: region k of the content takes style k's statistics.

    masks is Kxhxw at the features' resolution, values in [0, 1]. For each region the content's
    statistics are taken inside its mask (a mask-weighted mean, and the weighted sum of squares
    over (mask sum - 1), which for a binary mask is the unbiased variance of the region's
    positions, and for an all-white mask is exactly `mean_std`). The regions' AdaIN outputs are
    put back together weighted by the masks; where masks overlap to more than 1 they are
    rescaled to sum to 1, and where they cover less, the rest keeps the content's features
    (unstyled), so a position outside every mask is left as it was.

    A mask should cover at least two positions: below that its variance is taken over 1 rather
    than a smaller number, so empty masks give finite values (and weigh nothing)."""
    m = F.expand_dims(F.expand_dims(masks, axis=0), axis=2)             # 1xKx1xhxw
    c = F.expand_dims(content_feat, axis=1)                              # Nx1xCxhxw
    area = F.sum(m, axis=(3, 4), keepdims=True)                          # 1xKx1x1x1
    mean = F.broadcast_div(F.sum(F.broadcast_mul(c, m), axis=(3, 4), keepdims=True),
                           F.maximum(area, 1e-12))                       # NxKxCx1x1
    centred = F.broadcast_sub(c, mean)                                   # NxKxCxhxw
    variance = F.broadcast_div(
        F.sum(F.broadcast_mul(F.square(centred), m), axis=(3, 4), keepdims=True),
        F.maximum(area - 1, 1))
    std = F.sqrt(variance + eps)
    style_mean = F.expand_dims(F.expand_dims(F.expand_dims(style_means, axis=0), axis=3), axis=4)
    style_std = F.expand_dims(F.expand_dims(F.expand_dims(style_stds, axis=0), axis=3), axis=4)
    regions = F.broadcast_add(F.broadcast_mul(F.broadcast_div(centred, std), style_std),
                              style_mean)                                # NxKxCxhxw
    coverage = F.sum(m, axis=1, keepdims=True)                           # 1x1x1xhxw
    share = F.broadcast_div(m, F.maximum(coverage, 1))
    rest = 1 - F.sum(share, axis=1)                                      # 1x1xhxw
    return (F.sum(F.broadcast_mul(regions, share), axis=1)
            + F.broadcast_mul(content_feat, rest))


# ---------------------------------------------------------------------------- networks

def _reflect_pad(x, F):
    return F.pad(x, mode='reflect', pad_width=(0, 0, 0, 0, 1, 1, 1, 1))


class Encoder(HybridBlock):
    """VGG-19 to relu4_1: 1x3xHxW RGB in [0, 1] -> (relu1_1, relu2_1, relu3_1, relu4_1).

    kind 'vgg_normalised': reflection padding and ceil-mode pooling (the authors');
    'vgg19': zero padding and floor pooling (Gluon's). Both start with a 1x1 convolution
    that turns [0, 1] RGB into what their 3x3 convolutions were trained on."""

    def __init__(self, kind, **kwargs):
        super().__init__(**kwargs)
        _check_kind(kind)
        self.kind = kind
        self.reflect = kind == 'vgg_normalised'
        with self.name_scope():
            self.convs = nn.HybridSequential(prefix='')
            for name, shape in ENCODER_SHAPES:
                out, channels, kernel, _ = shape
                padding = 1 if (kernel == 3 and not self.reflect) else 0
                self.convs.add(nn.Conv2D(out, kernel, padding=padding,
                                         in_channels=channels, prefix=name + '_'))
            # MXNet's 'full' pooling convention is PyTorch's ceil_mode.
            self.pool = nn.MaxPool2D(pool_size=2, strides=2, ceil_mode=self.reflect)

    def hybrid_forward(self, F, x):
        x = self.convs[0](x)
        outputs, layer = [], 1
        for block_number, block in enumerate(VGG_BLOCKS):
            if block_number:
                x = self.pool(x)
            for position in range(len(block)):
                if self.reflect:
                    x = _reflect_pad(x, F)
                x = F.Activation(self.convs[layer](x), act_type='relu')
                layer += 1
                if position == 0:
                    outputs.append(x)
        return tuple(outputs)

class Decoder(HybridBlock):
    """relu4_1-shaped features (Nx512xhxw) -> Nx3x(8h)x(8w) picture, RGB meant as [0, 1]
    (not clipped: clip when turning it into pixels). `encoder_kind` names the encoder it
    was trained with."""

    def __init__(self, encoder_kind=AUTHORS_ENCODER, **kwargs):
        super().__init__(**kwargs)
        _check_kind(encoder_kind)
        self.encoder_kind = encoder_kind
        self.layout = [(relu, upsample) for _, _, relu, upsample in DECODER_LAYOUT]
        with self.name_scope():
            self.convs = nn.HybridSequential(prefix='')
            for index, (out, channels, _, _), _, _ in DECODER_LAYOUT:
                self.convs.add(nn.Conv2D(out, 3, in_channels=channels,
                                         prefix='conv%d_' % index))

    def hybrid_forward(self, F, x):
        for conv, (relu, upsample) in zip(self.convs, self.layout):
            x = conv(_reflect_pad(x, F))
            if relu:
                x = F.Activation(x, act_type='relu')
            if upsample:
                x = F.UpSampling(x, scale=2, sample_type='nearest', num_args=1)
        return x

class StyleEncoder(HybridBlock):
    """Picture -> (mean, std) of its relu4_1 features, each NxC."""

    def __init__(self, encoder, eps=EPS, **kwargs):
        super().__init__(**kwargs)
        self.eps = eps
        with self.name_scope():
            self.encoder = encoder

    def hybrid_forward(self, F, picture):
        mean, std = mean_std(self.encoder(picture)[-1], F, self.eps)
        return F.reshape(mean, shape=(0, 0)), F.reshape(std, shape=(0, 0))

class Stylizer(HybridBlock):
    """(content 1x3xHxW, style_means KxC, style_stds KxC, weights K, alpha 1) -> picture.

    One graph for one style (K = 1, weights [1]) and for mixes. With the vgg_normalised
    encoder the decoder's 8*ceil(H/8) x 8*ceil(W/8) output is cropped to the content's
    size (the rows and columns past it came from the padding that ceil pooling adds);
    with vgg19 it is 8*floor(H/8) x 8*floor(W/8), the part the features saw."""

    def __init__(self, encoder, decoder, eps=EPS, **kwargs):
        super().__init__(**kwargs)
        check_pair(encoder, decoder)
        self.eps = eps
        self.crop = encoder.kind == 'vgg_normalised'
        with self.name_scope():
            self.encoder, self.decoder = encoder, decoder

    def _decode(self, F, feat, content):
        picture = self.decoder(feat)
        return F.slice_like(picture, content, axes=(2, 3)) if self.crop else picture

    def hybrid_forward(self, F, content, style_means, style_stds, weights, alpha):
        feat = self.encoder(content)[-1]
        target = adain_mix(feat, style_means, style_stds, weights, F, self.eps)
        return self._decode(F, blend(target, feat, alpha, F), content)

class MaskedStylizer(Stylizer):
    """(content 1x3xHxW, style_means KxC, style_stds KxC, masks Kxhxw at relu4_1's
    resolution, alpha 1) -> picture: region k in style k (see masked_adain)."""

    def hybrid_forward(self, F, content, style_means, style_stds, masks, alpha):
        feat = self.encoder(content)[-1]
        target = masked_adain(feat, style_means, style_stds, masks, F, self.eps)
        return self._decode(F, blend(target, feat, alpha, F), content)


def check_pair(encoder, decoder):
    """Refuse a decoder trained with another encoder than `encoder`: its pictures would be
    noise, with no error to say why."""
    if decoder.encoder_kind != encoder.kind:
        raise StyleTransferError(
            'AdaIN decoder%s was trained with the %s encoder, not %s%s: load the matching '
            'encoder' % (_source(decoder), decoder.encoder_kind, encoder.kind, _source(encoder)))


def _source(block):
    path = getattr(block, 'source', None)
    return ' (%s)' % path if path else ''


# ------------------------------------------------------------------------- loading

_MXNET_LIST_MAGIC = (0x112).to_bytes(8, 'little')


def _is_pth(path):
    with open(path, 'rb') as f:
        head = f.read(8)
    # a zip (torch >= 1.6) or a protocol-2 pickle (torch's legacy layout)
    return head.startswith(b'PK\x03\x04') or head[:1] == b'\x80'


def _check_file(path, what):
    path = os.fspath(path)
    check_input_file(path, what)
    if os.path.getsize(path) == 0:
        raise StyleTransferError('%s: file is empty' % path)
    return path


def _read_state_dict(path):
    from ..torchfile import read_pth
    state = read_pth(path)
    if not isinstance(state, dict):
        raise StyleTransferError('%s: holds a %s, not a state dict of named tensors'
                                 % (path, type(state).__name__))
    return state


def _take(state, params, path, what):
    """{key: float32 array} for `params` from a state dict, refusing with the first parameter
    that is missing, misshapen or not finite."""
    taken = {}
    for key, shape in params:
        if key not in state:
            raise StyleTransferError('%s: no parameter %s (%s %s): not %s'
                                     % (path, key, 'weight' if len(shape) > 1 else 'bias',
                                        'x'.join(map(str, shape)), what))
        value = state[key]
        if not isinstance(value, np.ndarray) or value.dtype.kind != 'f':
            raise StyleTransferError('%s: parameter %s is not a floating-point tensor: not %s'
                                     % (path, key, what))
        if value.shape != shape:
            raise StyleTransferError('%s: parameter %s has shape %s, %s needs %s'
                                     % (path, key, 'x'.join(map(str, value.shape)) or 'scalar',
                                        what, 'x'.join(map(str, shape))))
        value = value.astype(np.float32)
        if not np.isfinite(value).all():
            raise StyleTransferError('%s: parameter %s holds NaN or infinite values'
                                     % (path, key))
        taken[key] = value
    return taken


def _set(block, values, ctx):
    """Give a freshly built block `values` ([(weight, bias)] in conv order) on `ctx`."""
    import mxnet as mx
    block.initialize(mx.init.Zero(), ctx=ctx)
    for conv, (weight, bias) in zip(block.convs, values):
        conv.weight.set_data(nd.array(weight, ctx=ctx, dtype='float32'))
        conv.bias.set_data(nd.array(bias, ctx=ctx, dtype='float32'))
    return block


def _freeze(block):
    block.collect_params().setattr('grad_req', 'null')
    block.hybridize(static_alloc=True, static_shape=True)
    return block


def _for_inference(block, ctx):
    """Hybridise a graph that is only run forward. On CPUs, oneDNN's subgraph backend fuses each
    convolution with its ReLU, saving the ReLUs' separate passes over the features (5-10% of a
    512x512 stylisation here); fused operators have no backward, so the encoder and decoder
    blocks themselves, which a trainer differentiates through, are left unfused."""
    from mxnet.runtime import Features
    backend = None
    if ctx.device_type == 'cpu' and Features().is_enabled('MKLDNN'):
        backend = 'MKLDNN'
    block.hybridize(static_alloc=True, static_shape=True, backend=backend)
    return block


def _imagenet_preprocess():
    """The 1x1 convolution that is (x - mean) / std per channel for [0, 1] RGB input."""
    from ..images import RGB_MEAN, RGB_STD
    std = np.asarray(RGB_STD, np.float64)
    weight = np.diag(1 / std).reshape(3, 3, 1, 1)
    bias = -np.asarray(RGB_MEAN, np.float64) / std
    return weight.astype(np.float32), bias.astype(np.float32)


def load_encoder(source, ctx=None, seed=0):
    """A frozen, hybridised Encoder on `ctx` (default CPU).

    source: a .pth file (the authors' vgg_normalised.pth: kind 'vgg_normalised'; the layers
    past relu4_1 it also holds are ignored), or what vgg/weights.py loads for this project's
    VGG-19 (kind 'vgg19'): 'zoo' (also called 'vgg19'), 'random' (with `seed`; for tests, not a
    style transfer), or a Gluon vgg19 .params path."""
    import mxnet as mx
    ctx = ctx or mx.cpu()
    if source == 'vgg19':
        source = 'zoo'
    if source not in ('zoo', 'random'):
        path = _check_file(source, 'a VGG-19 weights file')
        if _is_pth(path):
            return _load_normalised(path, ctx)
    return _load_vgg19(source, ctx, seed)


def _load_normalised(path, ctx):
    state = _read_state_dict(path)
    params = []
    for (name, shape), (_, index) in zip(ENCODER_SHAPES, ENCODER_SOURCE):
        params += [Param('%d.weight' % index, shape), Param('%d.bias' % index, shape[:1])]
    taken = _take(state, params, path, "AdaIN's vgg_normalised.pth (for torchvision's VGG-19, "
                                       "convert it to .params first)")
    values = [(taken['%d.weight' % i], taken['%d.bias' % i]) for _, i in ENCODER_SOURCE]
    encoder = _set(Encoder('vgg_normalised'), values, ctx)
    encoder.source = path
    return _freeze(encoder)


def _load_vgg19(source, ctx, seed):
    from ..vgg import layers, weights
    deepest = layers.NAMES['relu4_1']
    loaded = weights.load(source, deepest, seed)
    values = [_imagenet_preprocess()]
    for name in ENCODER_CONV_NAMES:
        weight, bias = loaded.convs[layers.NAMES[name]]
        values.append((weight.asnumpy(), bias.asnumpy()))
    encoder = _set(Encoder('vgg19'), values, ctx)
    encoder.source = loaded.description
    return _freeze(encoder)


def load_decoder(path, ctx=None):
    """A frozen, hybridised Decoder on `ctx` from the authors' decoder.pth (encoder
    vgg_normalised) or a .params written by save_decoder (encoder as it records)."""
    import mxnet as mx
    ctx = ctx or mx.cpu()
    path = _check_file(path, 'an AdaIN decoder file')
    if _is_pth(path):
        state, kind = _read_state_dict(path), AUTHORS_ENCODER
        what = "AdaIN's decoder.pth"
    else:
        state, kind = _read_params(path)
        what = 'an AdaIN decoder'
    taken = _take(state, DECODER_SOURCE, path, what)
    values = [(taken['%d.weight' % i], taken['%d.bias' % i]) for i, _, _, _ in DECODER_LAYOUT]
    decoder = _set(Decoder(kind), values, ctx)
    decoder.source = path
    return _freeze(decoder)


def _read_params(path):
    with open(path, 'rb') as f:
        if f.read(8) != _MXNET_LIST_MAGIC:
            raise StyleTransferError('%s: neither a PyTorch .pth nor an MXNet .params file'
                                     % path)
    try:
        loaded = nd.load(path)
    except Exception as e:
        raise StyleTransferError('%s: not a readable MXNet .params file (truncated or damaged)'
                                 % path) from e
    if not isinstance(loaded, dict) or META_KEY not in loaded:
        raise StyleTransferError('%s: does not record which encoder the decoder was trained '
                                 'with (no %s entry): not a decoder saved by this project'
                                 % (path, META_KEY))
    try:
        meta = json.loads(loaded.pop(META_KEY).asnumpy().astype(np.uint8).tobytes())
        kind = meta['encoder'] if meta.get('format') == META_FORMAT else None
    except (ValueError, TypeError, KeyError, AttributeError):
        kind = None
    if kind not in ENCODER_KINDS:
        raise StyleTransferError('%s: its %s entry is damaged or names no known encoder'
                                 % (path, META_KEY))
    return {key: value.asnumpy() for key, value in loaded.items()}, kind


def decoder_state(decoder):
    """{decoder.pth's name: NDArray} of `decoder`'s parameters (what save_decoder writes)."""
    arrays = {}
    for (index, _, _, _), conv in zip(DECODER_LAYOUT, decoder.convs):
        arrays['%d.weight' % index] = conv.weight.data()
        arrays['%d.bias' % index] = conv.bias.data()
    return arrays


def save_decoder(decoder, path, info=None):
    """Write `decoder` as .params (atomically) under decoder.pth's names, with the encoder it
    was trained with in the META_KEY entry, and `info` (JSON data: how it was trained) beside
    it under 'training'."""
    arrays = {name: value.copyto(_cpu()) for name, value in decoder_state(decoder).items()}
    record = {'format': META_FORMAT, 'version': 1, 'encoder': decoder.encoder_kind}
    if info is not None:
        record['training'] = info
    meta = json.dumps(record)
    arrays[META_KEY] = nd.array(np.frombuffer(meta.encode('utf-8'), np.uint8), dtype='uint8')
    with atomic_path(path) as tmp:
        nd.save(tmp, arrays)


def _cpu():
    import mxnet as mx
    return mx.cpu()


# ------------------------------------------------------------------------- running

StyleStatistics = collections.namedtuple('StyleStatistics', 'mean std encoder')
StyleStatistics.__doc__ = """A style as AdaIN uses it: relu4_1's per-channel mean and std
(C-element NDArrays) and the kind of encoder that measured them."""


class AdaIN:
    """An encoder/decoder pair with its hybridised graphs, built once.

    encode_style measures a style once; stylise and stylise_masked take those statistics, so a
    style used for many pictures is encoded once. Pictures are 1x3xHxW float32 NDArrays, RGB in
    [0, 1], on `ctx`; outputs are unclipped pictures of the same layout.

    dtype 'bfloat16' (where the CPU has it: device.check_dtype, the caller's) runs the
    stylising graphs converted by MXNet's AMP (convolutions in bfloat16, reductions such as the
    AdaIN statistics in float32); styles are still measured in float32, once each."""

    def __init__(self, encoder, decoder, ctx=None, eps=EPS, dtype='float32'):
        check_pair(encoder, decoder)
        self.encoder, self.decoder = encoder, decoder
        # where the weights are, unless told
        self.ctx = ctx or next(iter(encoder.collect_params().values())).list_ctx()[0]
        self.kind = encoder.kind
        self._style_encoder = _for_inference(StyleEncoder(encoder, eps), self.ctx)
        self._stylizer = _for_inference(Stylizer(encoder, decoder, eps), self.ctx)
        self._masked = _for_inference(MaskedStylizer(encoder, decoder, eps), self.ctx)
        self.dtype, self.eps = dtype, eps
        self._bf16 = {}              # graph class -> its AMP-converted block

    def encode_style(self, picture):
        """StyleStatistics of a 1x3xHxW picture."""
        _check_picture(picture, 'style')
        mean, std = self._style_encoder(picture)
        return StyleStatistics(mean[0], std[0], self.kind)

    def _stack(self, styles):
        styles = [styles] if isinstance(styles, StyleStatistics) else list(styles)
        if not styles:
            raise StyleTransferError('AdaIN needs at least one style')
        for style in styles:
            if style.encoder != self.kind:
                raise StyleTransferError('style statistics measured with the %s encoder cannot '
                                         'be used with %s' % (style.encoder, self.kind))
        return (nd.stack(*[s.mean for s in styles]).as_in_context(self.ctx),
                nd.stack(*[s.std for s in styles]).as_in_context(self.ctx))

    def _alpha(self, alpha):
        alpha = float(alpha)
        if not 0 <= alpha <= 1:
            raise StyleTransferError('alpha must be between 0 and 1, not %g' % alpha)
        return nd.array([alpha], ctx=self.ctx)

    def stylise(self, content, styles, weights=None, alpha=1.0):
        """content in one style, or in the mix sum_k w_k adain(content, style k) with `weights`
        normalised to sum to 1 (default: equal)."""
        _check_picture(content, 'content')
        means, stds = self._stack(styles)
        count = means.shape[0]
        weights = mix_weights(weights if weights is not None else [1] * count, count)
        return self._run(Stylizer, content, means, stds, nd.array(weights, ctx=self.ctx),
                         self._alpha(alpha))

    def stylise_masked(self, content, styles, masks, alpha=1.0):
        """Region k (masks[k], Kxhxw at relu4_1's resolution: see feature_size and
        masks_to_features) in style k."""
        _check_picture(content, 'content')
        means, stds = self._stack(styles)
        masks = nd.array(masks, ctx=self.ctx, dtype='float32') if not isinstance(
            masks, nd.NDArray) else masks.as_in_context(self.ctx).astype('float32')
        height, width = feature_size(self.kind, *content.shape[2:])
        if masks.shape != (means.shape[0], height, width):
            raise StyleTransferError(
                'masks must be %dx%dx%d (one per style, at relu4_1 resolution for a %dx%d '
                'content), not %s' % (means.shape[0], height, width, content.shape[2],
                                      content.shape[3], 'x'.join(map(str, masks.shape))))
        values = masks.asnumpy()
        if not (np.isfinite(values).all() and values.min() >= 0 and values.max() <= 1):
            raise StyleTransferError('mask values must lie in [0, 1]')
        small = [k for k, area in enumerate(values.sum(axis=(1, 2))) if area < 2]
        if small:
            raise StyleTransferError('mask %d covers less than two positions of the %dx%d '
                                     'features' % (small[0], height, width))
        return self._run(MaskedStylizer, content, means, stds, masks, self._alpha(alpha))

    def _run(self, graph, *inputs):
        if self.dtype != 'bfloat16':
            return (self._stylizer if graph is Stylizer else self._masked)(*inputs)
        if graph not in self._bf16:
            block = graph(self.encoder, self.decoder, self.eps)      # unfused, for AMP
            block.hybridize(static_alloc=True, static_shape=True)
            self._bf16[graph] = device.to_bfloat16(block, self.ctx, *inputs)
        return self._bf16[graph](*inputs).astype('float32', copy=False)


def _check_picture(picture, what):
    if not isinstance(picture, nd.NDArray) or picture.ndim != 4 or picture.shape[1] != 3:
        raise StyleTransferError('the %s picture must be a 1x3xHxW NDArray, RGB in [0, 1]'
                                 % what)
    if min(picture.shape[2:]) < DOWNSAMPLING:
        raise StyleTransferError('the %s picture is %dx%d: AdaIN needs at least %d pixels a side'
                                 % (what, picture.shape[2], picture.shape[3], DOWNSAMPLING))


def mix_weights(weights, count):
    """`count` non-negative weights normalised to sum to 1, as a float32 numpy array."""
    weights = np.asarray(weights, dtype=np.float64).ravel()
    if weights.size != count:
        raise StyleTransferError('%d mixing weights for %d styles' % (weights.size, count))
    if not np.isfinite(weights).all() or (weights < 0).any() or weights.sum() <= 0:
        raise StyleTransferError('mixing weights must be non-negative with a positive sum, '
                                 'not %s' % ', '.join('%g' % w for w in weights))
    return (weights / weights.sum()).astype(np.float32)


def masks_to_features(masks, kind, height, width):
    """K masks at the picture's HEIGHTxWIDTH (values in [0, 1]) -> Kxhxw at relu4_1's
    resolution: each feature position takes the mean of the 8x8 pixels it stands for (partial
    blocks at the edges where ceil pooling rounds up; pixels past the last full block are
    dropped where floor pooling does)."""
    masks = np.asarray(masks, dtype=np.float64)
    if masks.ndim != 3 or masks.shape[1:] != (height, width):
        raise StyleTransferError('masks must be Kx%dx%d, not %s'
                                 % (height, width, 'x'.join(map(str, masks.shape))))
    h, w = feature_size(kind, height, width)
    masks = masks[:, :h * DOWNSAMPLING, :w * DOWNSAMPLING]
    rows, cols = np.arange(h) * DOWNSAMPLING, np.arange(w) * DOWNSAMPLING
    sums = np.add.reduceat(np.add.reduceat(masks, rows, axis=1), cols, axis=2)
    ones = np.ones(masks.shape[1:])
    counts = np.add.reduceat(np.add.reduceat(ones, rows, axis=0), cols, axis=1)
    return (sums / counts).astype(np.float32)


def to_input(picture, ctx=None):
    """HxWx3 picture (uint8 0..255, as images.load_image gives) -> 1x3xHxW float32 NDArray in
    [0, 1] on `ctx`: what both encoders take (neither wants ImageNet normalisation outside)."""
    import mxnet as mx
    array = np.asarray(picture.asnumpy() if isinstance(picture, nd.NDArray) else picture)
    if array.ndim != 3 or array.shape[2] != 3:
        raise StyleTransferError('a picture must be HxWx3, not %s'
                                 % 'x'.join(map(str, array.shape)))
    scaled = array.astype(np.float32) / 255
    return nd.array(scaled.transpose(2, 0, 1)[None], ctx=ctx or mx.cpu(), dtype='float32')


def to_picture(output):
    """1x3xHxW decoder output -> HxWx3 uint8, clipped to [0, 1] first as the authors' saving
    does."""
    from ..images import to_uint8
    return to_uint8(output[0].transpose((1, 2, 0)).clip(0, 1))
