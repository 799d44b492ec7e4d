"""The feature extractor: VGG-19's layers up to the deepest one used, frozen and hybridised into
one graph that returns the content outputs followed by the style outputs."""
from mxnet import gluon
from mxnet.gluon import nn
from mxnet.gluon.model_zoo import vision

from .. import device
from .layers import CONV_SHAPES, DOWNSAMPLING


class FeatureExtractor(gluon.HybridBlock):
    """x (1x3xHxW, normalised) -> (content features..., style features...)."""

    def __init__(self, content_layers, style_layers, pooling='max', **kwargs):
        super().__init__(**kwargs)
        self.content_layers = tuple(content_layers)
        self.style_layers = tuple(style_layers)
        self.deepest = max(self.content_layers + self.style_layers)
        # Taking Gluon's own vgg19 layers keeps parameter names and behaviour identical to the
        # model zoo's network.
        zoo = vision.vgg19()
        with self.name_scope():
            self.body = nn.HybridSequential(prefix='')
            for i in range(self.deepest + 1):
                layer = zoo.features[i]
                if pooling == 'avg' and isinstance(layer, nn.MaxPool2D):
                    # Average pooling gives smoother images (Gatys et al. 2016).
                    layer = nn.AvgPool2D(pool_size=2, strides=2)
                self.body.add(layer)

    def hybrid_forward(self, F, x):
        outputs = {}
        wanted = set(self.content_layers + self.style_layers)
        for i, layer in enumerate(self.body):
            x = layer(x)
            if i in wanted:
                outputs[i] = x
        return tuple(outputs[i] for i in self.content_layers + self.style_layers)

    def split(self, outputs):
        """(contents, styles) lists from the flat output tuple."""
        n = len(self.content_layers)
        return list(outputs[:n]), list(outputs[n:])


def build_extractor(weights, content_layers, style_layers, ctx, pooling='max', dtype='float32'):
    """A frozen, hybridised extractor on `ctx` holding `weights` (a weights.Weights).

    dtype 'bfloat16' runs the network in bfloat16 through MXNet's AMP (oneDNN kernels on CPUs
    with AVX-512 BF16); inputs and outputs stay float32, so the losses are float32."""
    net = FeatureExtractor(content_layers, style_layers, pooling)
    for i, layer in enumerate(net.body):
        if i in CONV_SHAPES:
            weight, bias = weights.convs[i]
            for param, value in ((layer.weight, weight), (layer.bias, bias)):
                param.shape = value.shape  # fills in the input channels Gluon left deferred
                param.initialize(ctx=ctx)
                param.set_data(value)
    # Only the image is optimised: without this every backward also computes weight gradients.
    net.collect_params().setattr('grad_req', 'null')
    net.hybridize(static_alloc=True, static_shape=True)
    if dtype == 'bfloat16':
        net = _to_bfloat16(net, ctx)
    return net


def _to_bfloat16(net, ctx):
    from mxnet import nd
    smallest = DOWNSAMPLING[net.deepest]
    converted = device.to_bfloat16(net, ctx, nd.zeros((1, 3, smallest, smallest), ctx=ctx))
    converted.collect_params().setattr('grad_req', 'null')
    converted.hybridize(static_alloc=True, static_shape=True)
    # The converted block is a SymbolBlock: give it what the optimiser asks of an extractor.
    converted.content_layers, converted.style_layers = net.content_layers, net.style_layers
    converted.deepest, converted.split = net.deepest, net.split
    return converted
