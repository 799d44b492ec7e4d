"""The feed-forward networks a server offers: `styletransfer serve --models DIR` names a folder,
read once when the server starts into named models. A job names a model; no file name or path
ever comes from a client.

The folder's naming rule (`serve --help` says it too):

- per-style networks (method 'fast'), found as `styletransfer stylize --model NAME` finds them
  (fast.zoo.list_nets): NAME.params (saved by this project), NAME.pth (pytorch/examples
  fast_neural_style's candy.pth and the like), NAME-symbol.json (an export, with its
  NAME-0000.params and NAME-meta.json);
- AdaIN decoders (method 'adain'): NAME.adain.pth (the authors' layout) or NAME.adain.params
  (saved by this project), and the authors' decoder.pth under the name they publish it with:
  the model 'decoder';
- a decoder trained with the authors' encoder (every .pth, and a .params that records it)
  takes NAME.vgg_normalised.pth when there is one, else vgg_normalised.pth, from the same
  folder; a decoder trained with this project's VGG-19 takes the server's --weights;
- encoder files (vgg_normalised.pth, NAME.vgg_normalised.pth) are not models; other files are
  left alone. A name is one model: two files claiming one name are refused.

Every network is loaded once here, on the CPU, so that a damaged file or a decoder without its
encoder stops the server before it listens, with one line naming the file; the worker loads
them again on its own device when a job first needs them. That loading uses MXNet, so
`find_models` runs before the job queue's worker starts (MXNet 1.x is not thread-safe).
"""
import os
from dataclasses import dataclass

from ..errors import StyleTransferError

ADAIN_SUFFIXES = ('.adain.pth', '.adain.params')
AUTHORS_DECODER = 'decoder.pth'
AUTHORS_ENCODER = 'vgg_normalised.pth'
METHODS = ('fast', 'adain')


@dataclass(frozen=True)
class Model:
    """One network of the folder: what a job names, and how the worker builds its stylizer."""
    name: str
    method: str             # 'fast' (a network per style) or 'adain' (any style)
    path: str               # the network's or the decoder's file
    styles: tuple = ()      # fast: the network's style names, in its order
    kind: str = ''          # fast: the network's kind (johnson, symbol); adain: the encoder's
    encoder: str = ''       # adain: the encoder's file, or the server's VGG-19 weights

    def build(self, ctx):
        """The model's FastStylizer on `ctx` (in the worker thread)."""
        from ..fast.stylizer import FastStylizer
        if self.method == 'adain':
            return FastStylizer(ctx=ctx, decoder=self.path, encoder=self.encoder)
        return FastStylizer(self.path, ctx)

    def describe(self, text):
        """`text` (a stylizer's description) with the models folder left out: a client sees
        file names, not where they are kept."""
        folder = os.path.dirname(self.path) + os.sep
        return text.replace(folder, '')

    def to_dict(self):
        """What a client is told of the model."""
        d = {'name': self.name, 'method': self.method, 'file': os.path.basename(self.path)}
        if self.method == 'fast':
            d.update(styles=list(self.styles), kind=self.kind)
        else:
            d.update(encoder=_shown(self.encoder), encoder_kind=self.kind)
        return d


def _shown(source):
    return source if source in ('zoo', 'random') else os.path.basename(source)


def find_models(folder, weights='zoo'):
    """{name: Model} of `folder` by the naming rule above, per-style networks first, each
    sorted by name; `weights` is the server's VGG-19 (the encoder of decoders trained on it).
    Raises StyleTransferError naming the file at fault."""
    import mxnet as mx
    from ..fast import adain, zoo
    if not os.path.isdir(folder):
        raise StyleTransferError('--models %s: no such folder' % folder, 'models')
    folder = os.path.abspath(folder)
    names = sorted(os.listdir(folder))
    models, claimed = {}, {}

    def add(model):
        if model.name in models:
            raise StyleTransferError(
                '--models %s: %s and %s both name the model %r: rename one'
                % (folder, os.path.basename(claimed[model.name]), os.path.basename(model.path),
                   model.name), 'models')
        models[model.name], claimed[model.name] = model, model.path

    for name, path in zoo.list_nets(folder).items():
        if _is_adain_file(os.path.basename(path)):
            continue
        net = zoo.get_net(path, mx.cpu())
        add(Model(name, 'fast', path, tuple(net.style_names), net.kind))

    encoders = {}       # an encoder file checked once, whatever number of decoders use it
    for entry in names:
        path = os.path.join(folder, entry)
        if entry == AUTHORS_DECODER:
            name = entry[:-len('.pth')]
        elif entry.endswith(ADAIN_SUFFIXES):
            name = entry[:entry.rindex('.adain.')]
        else:
            continue
        if not name or not os.path.isfile(path):
            continue
        decoder = adain.load_decoder(path, mx.cpu())
        if decoder.encoder_kind == adain.AUTHORS_ENCODER:
            encoder = _authors_encoder(folder, name, entry)
            if encoder not in encoders:
                encoders[encoder] = adain.load_encoder(encoder, mx.cpu())
            adain.check_pair(encoders[encoder], decoder)
        else:
            encoder = weights
        add(Model(name, 'adain', path, kind=decoder.encoder_kind, encoder=encoder))
    return dict(sorted(models.items(), key=lambda item: (METHODS.index(item[1].method),
                                                         item[0])))


def _is_adain_file(entry):
    return (entry == AUTHORS_DECODER or entry.endswith(ADAIN_SUFFIXES)
            or entry == AUTHORS_ENCODER or entry.endswith('.' + AUTHORS_ENCODER))


def _authors_encoder(folder, name, entry):
    """NAME.vgg_normalised.pth beside the decoder, else the folder's vgg_normalised.pth."""
    own = os.path.join(folder, '%s.%s' % (name, AUTHORS_ENCODER))
    shared = os.path.join(folder, AUTHORS_ENCODER)
    for path in (own, shared):
        if os.path.isfile(path):
            return path
    raise StyleTransferError(
        '--models %s: the AdaIN decoder %s was trained with the authors\' encoder: put %s or '
        '%s beside it' % (folder, entry, os.path.basename(own), AUTHORS_ENCODER), 'models')
