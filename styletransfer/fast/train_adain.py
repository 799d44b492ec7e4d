"""The 'adain' training recipe: Huang and Belongie 2017's decoder, trained to turn AdaIN's
relu4_1 features back into pictures, for any style. The loop around it is fast/training.py's.

Each sample of a batch pairs a content crop with a style crop (folders 'content' and 'style';
the authors used COCO and WikiArt). With E the fixed encoder (fast/adain.py: the authors'
vgg_normalised, or our VGG-19 with ImageNet normalisation inside) and D the decoder:
    t = AdaIN(E(content)_relu4_1, E(style)_relu4_1)     (a constant: no gradient)
    g = D(t)
    content = content_weight * mean((E(g)_relu4_1 - t)^2)
    style   = style_weight * sum over relu1_1..relu4_1 of mean-std loss(E(g)_l, E(style)_l)
Only D is trained; E's weights are frozen. g is not clipped (nor is it in the authors' code).

The style loss is losses.py's 'mean-std' with unbiased=True: the mean over the batch and the
channels of (mean - mean_s)^2 plus that of (std - std_s)^2, which is the authors' code (their
MSE of the means plus MSE of the stds, over N x C entries) with their statistics: the
unbiased variance (over H*W - 1) plus 1e-5 under the root. losses.channel_mean_std is the one
implementation of those statistics; AdaIN's own (adain.mean_std) is it.

Defaults are the authors' PyTorch code's (SETTINGS): Adam, lr 1e-4 with the inverse-time decay
lr / (1 + 5e-5 * i) (TrainingSettings.lr_decay), batch 8, 160,000 iterations, 256x256 random
crops of pictures resized to 512 (TrainingSettings.load_size). Their PyTorch port squashes
every picture to 512x512 before cropping; their Lua code, and this recipe, keep the aspect
ratio (the shorter side becomes 512). Content weight 1, style weight 10.

How those weights carry over to our VGG-19. Everything outside the network agrees: both
encoders take RGB in [0, 1] (ours normalises with ImageNet's mean and std inside its first
layer, as theirs turns [0, 1] into Caffe's BGR 0..255 inside its own), the decoder gives
[0, 1] RGB either way, and the losses are defined identically. What differs is the scale of
the features, layer by layer. vgg_normalised is Gatys et al.'s normalised VGG-19: its
filters were rescaled so that each one's mean activation over ImageNet's images and positions
is 1, at every layer. Ours is not normalised: its mean activation m_l differs from layer to
layer. A loss on features f_l / m_l (our features with each layer's mean activation brought
to 1, as theirs have) is the loss on our features with its weight divided by m_l^2 (both
terms are squares of features). So with our VGG-19 (layer_scales 'auto' or 'measured') the
recipe measures m_l for relu1_1..relu4_1 on the bundled photographs (MEASURE_PICTURES, resized
and centre-cropped as training crops are) and uses
    content weight / m_relu4_1^2,    style weight / m_l^2 at each layer l,
so that the authors' 1 and 10 keep their balance. With vgg_normalised nothing is translated
(its means are 1 by construction). Departures: theirs is per filter and over ImageNet; ours
is per layer (a per-filter scale measured on three photographs would be noisy, and a filter
those never excite would get an unbounded weight) and over three photographs; and the 1e-5
under the std's root acts as 1e-5 * m_l^2 on the scaled features. Adam barely cares about
the overall scale of the loss (its steps are normalised by the gradients' size), so what
the translation keeps is the balance between the layers and between the two terms; the
measured means and the weights used are in the log (summary()) and in the checkpoint, so a
resumed training uses the same ones.

Samples: each sample content picture with one fixed style (sample_style; default the bundled
starry_night.jpg), through adain's own Stylizer graph, cropped to multiples of 8 so the
decoded picture has the content's size.
"""
import os
from dataclasses import asdict, dataclass

import numpy as np

from ..errors import StyleTransferError
from ..losses import mean_std_loss, mean_std_target
from ..settings import choice, non_negative, number
from . import adain

CONTENT_WEIGHT = 1.0
STYLE_WEIGHT = 10.0
# The authors' train.py defaults (batch 8, Adam 1e-4, inverse-time decay 5e-5, 160k steps,
# 256 crops of pictures resized to 512).
SETTINGS = dict(iterations=160000, batch_size=8, image_size=256, load_size=512, lr=1e-4,
                lr_decay=5e-5)
LAYER_SCALES = ('auto', 'measured', 'none')
# Natural photographs shipped with the package: where our VGG-19's layer means are measured.
MEASURE_PICTURES = ('rainier.jpg', 'tubingen.jpg', 'autumn-oak.jpg')
SAMPLE_STYLE = 'starry_night.jpg'
# relu4_1 must keep at least 2x2 positions: the unbiased variance divides by H*W - 1.
MIN_SIZE = 2 * adain.DOWNSAMPLING


def adain_settings(**changes):
    """TrainingSettings with this recipe's defaults (SETTINGS), changed by `changes`."""
    from .training import TrainingSettings
    return TrainingSettings(**dict(SETTINGS, **changes))


@dataclass(frozen=True)
class AdaINLoss:
    content_weight: float = CONTENT_WEIGHT
    style_weight: float = STYLE_WEIGHT
    # 'auto': measured for our VGG-19, none for vgg_normalised (see the module's docstring)
    layer_scales: str = 'auto'

    def __post_init__(self):
        for name in ('content_weight', 'style_weight'):
            object.__setattr__(self, name, non_negative(getattr(self, name), name))
        object.__setattr__(self, 'layer_scales',
                           choice(self.layer_scales, 'layer_scales', LAYER_SCALES))


def layer_means(encoder, pictures):
    """Mean activation of relu1_1, relu2_1, relu3_1, relu4_1 (over channels and positions)
    of `pictures` (1x3xHxW NDArrays, RGB in [0, 1]), averaged over the pictures."""
    sums = np.zeros(len(adain.ENCODER_OUTPUTS))
    for picture in pictures:
        sums += [float(f.mean().asscalar()) for f in encoder(picture)]
    return sums / len(pictures)


def _graph_class():
    from mxnet import gluon

    class LossGraph(gluon.HybridBlock):
        """(content, style crops ImageNet-normalised, as the loop gives them; ImageNet's mean
        and std, 1x3x1x1) -> (content, style, total). The crops are taken back to [0, 1],
        what both encoders take: one multiply-add on the pictures, cheap beside VGG."""

        def __init__(self, encoder, decoder, content_weight, style_weights, **kwargs):
            super().__init__(**kwargs)
            self.encoder, self.decoder = encoder, decoder
            self.content_weight, self.style_weights = content_weight, style_weights

        def hybrid_forward(self, F, content, style, mean, std):
            def pixels(x):
                return F.broadcast_add(F.broadcast_mul(x, std), mean)
            fc = F.BlockGrad(self.encoder(pixels(content))[-1])
            fs = [F.BlockGrad(f) for f in self.encoder(pixels(style))]
            targets = [mean_std_target(f, None, F, unbiased=True) for f in fs]
            s_mean, s_std = (F.reshape(a, shape=(0, 0, 1, 1)) for a in targets[-1])
            t = F.BlockGrad(adain.adain(fc, s_mean, s_std, F))
            fg = self.encoder(self.decoder(t))
            content_term = F.mean(F.square(fg[-1] - t)) * self.content_weight
            style_term = F.add_n(*[mean_std_loss(f, target, None, F, unbiased=True) * w
                                   for f, target, w in zip(fg, targets, self.style_weights)])
            return content_term, style_term, content_term + style_term

    return LossGraph


class AdaINRecipe:
    """Train an AdaIN decoder for a fixed `encoder`: what adain.load_encoder takes (the
    authors' vgg_normalised.pth, or our VGG-19: 'zoo', a .params path, or 'random' with
    `encoder_seed`, for tests). `sample_style`: the style of the sample pictures (path or
    HxWx3 uint8; default the bundled starry_night.jpg). `scales`: the layer means a checkpoint
    recorded (measured when None and the loss asks for them)."""

    name = 'adain'
    terms = ('content', 'style', 'total')
    folders = ('content', 'style')

    def __init__(self, encoder='zoo', loss=None, sample_style=None, encoder_seed=0,
                 scales=None, style_name=None):
        from ..images import load_image
        if not isinstance(encoder, (str, os.PathLike)) or not os.fspath(encoder).strip():
            raise StyleTransferError('encoder must be a vgg_normalised.pth, zoo, random or a '
                                     'VGG-19 .params path', 'encoder')
        self.encoder_source = os.fspath(encoder)
        self.encoder_seed = number(encoder_seed, 'encoder_seed', int)
        self.loss = loss if loss is not None else AdaINLoss()
        if not isinstance(self.loss, AdaINLoss):
            raise StyleTransferError('loss must be an AdaINLoss', 'loss')
        if sample_style is None:
            from ..data import bundled
            sample_style = bundled(SAMPLE_STYLE)
        if isinstance(sample_style, (str, os.PathLike)):
            style_name = style_name or os.path.splitext(os.path.basename(sample_style))[0]
            sample_style = load_image(sample_style)[0]
        self.sample_style = np.asarray(sample_style, np.uint8)
        if self.sample_style.ndim != 3 or self.sample_style.shape[2] != 3:
            raise StyleTransferError('sample_style: expected an HxWx3 picture', 'sample_style')
        self.style_name = style_name or 'style'
        self.scales = None if scales is None else [float(m) for m in scales]
        self.decoder = None

    # ------------------------------------------------------------------------ description

    def describe(self):
        meta = {'encoder': self.encoder_source, 'encoder_seed': self.encoder_seed,
                'loss': asdict(self.loss), 'scales': self.scales, 'style_name': self.style_name}
        return meta, {'sample_style': self.sample_style}

    @classmethod
    def restore(cls, meta, arrays):
        return cls(meta['encoder'], AdaINLoss(**meta['loss']), arrays['sample_style'],
                   meta['encoder_seed'], meta['scales'], meta['style_name'])

    @property
    def weights_description(self):
        return self.encoder.source

    def title(self):
        kind = self.encoder.kind if self.decoder is not None else 'given'
        return 'AdaIN decoder for the %s encoder' % kind

    def loss_description(self):
        loss, layers = self.loss, ', '.join(adain.ENCODER_OUTPUTS)
        text = ('content relu4_1 x %g, style mean-std (unbiased std) at %s x %g'
                % (loss.content_weight, layers, loss.style_weight))
        if self.scales is None:
            return text + '; not translated'
        return text + ('; translated by the layer means %s measured on %s: content x %.4g, '
                       'style x %s' % ('/'.join('%.4g' % m for m in self.scales),
                                       ', '.join(MEASURE_PICTURES), self.content_weight,
                                       '/'.join('%.4g' % w for w in self.style_weights)))

    def summary(self):
        return ['encoder: %s (%s)' % (self.encoder.source, self.encoder.kind),
                'loss: %s' % self.loss_description(),
                'samples: in the style %s' % self.style_name]

    # ----------------------------------------------------------------------------- build

    def build(self, ctx, settings, values=None):
        import mxnet as mx
        from mxnet import nd
        from ..images import RGB_MEAN, RGB_STD
        size = settings.image_size
        if size % adain.DOWNSAMPLING or size < MIN_SIZE:
            raise StyleTransferError('image_size must be a multiple of %d and at least %d for '
                                     'AdaIN, not %d' % (adain.DOWNSAMPLING, MIN_SIZE, size),
                                     'image_size')
        self.ctx, self.settings = ctx, settings
        self.encoder = adain.load_encoder(self.encoder_source, ctx, self.encoder_seed)
        if self.scales is None and (self.loss.layer_scales == 'measured' or (
                self.loss.layer_scales == 'auto' and self.encoder.kind == 'vgg19')):
            self.scales = [float(m) for m in self._measure(settings)]
        scales = np.ones(len(adain.ENCODER_OUTPUTS)) if self.scales is None \
            else np.asarray(self.scales, np.float64)
        if not (np.isfinite(scales).all() and (scales > 0).all()):
            raise StyleTransferError('the encoder %s is silent at some layer (mean activations '
                                     '%s): it cannot measure a style'
                                     % (self.encoder.source, scales.tolist()), 'encoder')
        self.content_weight = self.loss.content_weight / scales[-1] ** 2
        self.style_weights = [float(w) for w in self.loss.style_weight / scales ** 2]

        self.decoder = adain.Decoder(self.encoder.kind)
        if values is None:
            # PyTorch's default bound for the weights, 1/sqrt(fan in), as the authors' decoder
            # started; zero biases
            mx.random.seed(settings.seed)
            self.decoder.initialize(mx.init.Xavier(rnd_type='uniform', factor_type='in',
                                                   magnitude=1), ctx=ctx)
        else:
            self.decoder.initialize(ctx=ctx)
            params = self.parameters()
            if set(params) != set(values):
                raise StyleTransferError('resume: the state\'s network differs (%s)'
                                         % sorted(set(params) ^ set(values))[0], 'resume')
            for name, param in params.items():
                param.set_data(nd.array(values[name], ctx=ctx, dtype='float32'))
        self.normalisation = [nd.array(np.asarray(v, np.float32).reshape((1, 3, 1, 1)), ctx=ctx)
                              for v in (RGB_MEAN, RGB_STD)]
        graph = _graph_class()
        self.graph = graph(self.encoder, self.decoder, self.content_weight, self.style_weights)
        self.graph.hybridize(static_alloc=True, static_shape=True)
        self._evaluation = graph(self.encoder, self.decoder, self.content_weight,
                                 self.style_weights)
        self._evaluation.hybridize(static_alloc=True)   # any batch size
        self._stylizer = None
        return list(self.parameters().items())

    def _measure(self, settings):
        from ..data import bundled
        from ..images import load_image
        from .imagefolder import centre_crop
        pictures = [adain.to_input(centre_crop(load_image(bundled(name))[0],
                                               settings.image_size, settings.load_size),
                                   self.ctx) for name in MEASURE_PICTURES]
        return layer_means(self.encoder, pictures)

    def parameters(self):
        return self.decoder._collect_params_with_prefix()

    def network_state(self):
        """The decoder under decoder.pth's names, as save_decoder writes it."""
        return adain.decoder_state(self.decoder)

    # -------------------------------------------------------------------------- training

    def conditions(self, rng, batch):
        """Nothing conditions an AdaIN decoder: the style comes in the features."""
        return np.zeros(batch, dtype=np.int64)

    def losses(self, batch, conditions):
        return self.graph(batch['content'], batch['style'], *self.normalisation)

    def evaluate(self, batch, condition=None):
        if condition is not None:
            raise StyleTransferError('the adain recipe trains no conditions (the style is the '
                                     'style folder\'s picture paired with each content one)',
                                     'condition')
        return self._evaluation(batch['content'], batch['style'], *self.normalisation)

    def sample(self, pictures):
        """Each content picture in the sample style, at its size cut down to multiples of 8."""
        from mxnet import nd
        if self._stylizer is None:
            # the style measured once, its shorter side at image_size as the contents are
            style = self.sample_style
            style = _resized(style, self.settings.image_size / min(style.shape[:2]))
            encode = adain.StyleEncoder(self.encoder)
            encode.hybridize()
            mean, std = encode(adain.to_input(style, self.ctx))
            self._style = (mean, std)
            self._stylizer = adain.Stylizer(self.encoder, self.decoder)
            self._stylizer.hybridize()
        out = []
        one = nd.array([1.0], ctx=self.ctx)
        for k, picture in enumerate(pictures):
            picture = np.asarray(picture, np.uint8)
            height, width = (d // adain.DOWNSAMPLING * adain.DOWNSAMPLING
                             for d in picture.shape[:2])
            x = adain.to_input(picture[:height, :width], self.ctx)
            made = self._stylizer(x, self._style[0], self._style[1], one, one)
            out.append(('%d: %s' % (k + 1, self.style_name), adain.to_picture(made)))
        return out

    def save(self, path, extra=None):
        info = dict(extra or {}, encoder=self.encoder.source,
                    loss=self.loss_description())
        adain.save_decoder(self.decoder, path, info)
        return path


def _resized(picture, scale):
    from PIL import Image
    height, width = picture.shape[:2]
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.asarray(Image.fromarray(picture, 'RGB').resize(size, Image.Resampling.BILINEAR))
