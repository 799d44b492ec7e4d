"""Where VGG-19's convolution weights come from: the Gluon model zoo, a local .params file, or a
seeded random initialisation (for smoke runs and tests only: it is not a style transfer).

Every source yields a dict {layer index: (weight, bias)} of NDArrays on the CPU, plus a
line saying which weights these are, which the run prints and stores with its outputs.
"""
import os
import socket
from dataclasses import dataclass
from urllib.parse import urlparse

import numpy as np

from ..errors import StyleTransferError
from ..files import check_input_file
from .layers import CONV_SHAPES

ZOO_NAME = 'vgg19'
ZOO_FILE_MB = 548


@dataclass(frozen=True)
class Weights:
    convs: dict          # {layer index: (weight NDArray, bias NDArray)}, on the CPU
    description: str     # e.g. 'random (seed 0), NOT pretrained'
    pretrained: bool


def zoo_root():
    """Where Gluon caches model-zoo files: $MXNET_HOME/models (default ~/.mxnet/models)."""
    from mxnet import base
    return os.path.join(base.data_dir(), 'models')


def zoo_file_name():
    from mxnet.gluon.model_zoo import model_store
    return '%s-%s.params' % (ZOO_NAME, model_store.short_hash(ZOO_NAME))


def load(source, deepest, seed=0):
    """Weights for conv layers up to index `deepest` from 'zoo', 'random' or a .params path."""
    if source == 'zoo':
        return _from_zoo(deepest)
    if source == 'random':
        return _random(deepest, seed)
    return _from_file(source, deepest)


def _wanted(deepest):
    return [i for i in sorted(CONV_SHAPES) if i <= deepest]


def _random(deepest, seed):
    import mxnet as mx
    from mxnet.gluon.model_zoo import vision
    # Initialise on the CPU whatever the run's context, so a seed gives the same weights on
    # every device.
    mx.random.seed(seed)
    net = vision.vgg19()
    for i in _wanted(deepest):
        conv = net.features[i]
        conv.weight.shape = CONV_SHAPES[i]  # Gluon defers the input channels to the first call
        conv.initialize(ctx=mx.cpu())
    convs = {i: (net.features[i].weight.data(), net.features[i].bias.data())
             for i in _wanted(deepest)}
    return Weights(convs, 'random (seed %d), NOT pretrained: a smoke run, not a style transfer'
                   % seed, pretrained=False)


def _unavailable_message(path, why):
    return ('%s: pretrained VGG-19 weights %s (%s, %d MB): %s. Put the file at that path '
            '(or set MXNET_HOME to the folder above models/), or pass --weights PATH.params for '
            'a Gluon vgg19 file you have, or --weights random for a smoke run that is not a '
            'style transfer' % (path, zoo_file_name(), ZOO_NAME, ZOO_FILE_MB, why))


def _zoo_reachable(timeout=3.0):
    from mxnet.gluon.model_zoo import model_store
    url = os.environ.get('MXNET_GLUON_REPO', model_store.apache_repo_url)
    host = urlparse(url).hostname
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


def _from_zoo(deepest):
    from mxnet.gluon.model_zoo import model_store
    from mxnet.gluon.utils import check_sha1
    path = os.path.join(zoo_root(), zoo_file_name())
    if os.path.exists(path):
        if not check_sha1(path, model_store._model_sha1[ZOO_NAME]):
            raise StyleTransferError(
                '%s: cached model-zoo file fails its SHA-1 check (damaged or partial download); '
                'delete it to download again' % path)
    elif not _zoo_reachable():
        # Gluon would retry the download five times with no timeout; tell the user now instead.
        raise StyleTransferError(_unavailable_message(path, 'not found and the model zoo '
                                                      'cannot be reached'))
    else:
        try:
            path = model_store.get_model_file(ZOO_NAME, root=zoo_root())
        except Exception as e:  # network errors of several libraries, hash mismatch
            raise StyleTransferError(_unavailable_message(path, 'download failed: %s' % e)) from e
    weights = _from_file(path, deepest)
    return Weights(weights.convs, 'model zoo %s (ImageNet-pretrained, SHA-1 checked)'
                   % os.path.basename(path), pretrained=True)


def _from_file(path, deepest):
    import mxnet as mx
    path = os.fspath(path)
    if not os.path.exists(path):
        raise StyleTransferError('%s: weights file not found (use --weights zoo, random or a '
                                 'path to a .params file)' % path)
    check_input_file(path, 'a .params file')
    try:
        loaded = mx.nd.load(path)
    except Exception as e:
        raise StyleTransferError('%s: not a readable MXNet .params file (truncated or another '
                                 'format)' % path) from e
    if not isinstance(loaded, dict) or not loaded:
        raise StyleTransferError('%s: holds no named parameters' % path)
    params = _structural_names(loaded, path)
    convs = {}
    for i in _wanted(deepest):
        pair = []
        for kind, shape in (('weight', CONV_SHAPES[i]), ('bias', CONV_SHAPES[i][:1])):
            key = '%d.%s' % (i, kind)
            if key not in params:
                raise StyleTransferError('%s: no parameter features.%s: not a Gluon vgg19 file'
                                         % (path, key))
            if params[key].shape != shape:
                raise StyleTransferError('%s: parameter features.%s has shape %s, VGG-19 needs %s'
                                         % (path, key, params[key].shape, shape))
            value = params[key].as_in_context(mx.cpu())
            if not np.isfinite(value.asnumpy()).all():
                raise StyleTransferError('%s: parameter features.%s holds NaN or infinite values'
                                         % (path, key))
            pair.append(value)
        convs[i] = tuple(pair)
    return Weights(convs, 'file %s' % os.path.abspath(path), pretrained=True)


def _structural_names(loaded, path):
    """Map a Gluon file's names onto 'index.weight' of vgg19().features.

    Files from `save_parameters` name parameters 'features.0.weight' (whole network) or
    '0.weight' (features only); older model-zoo files use prefixed names ('vgg0_conv0_weight'),
    which only Gluon's own loader can map, so those go through it.
    """
    if all('.' in key for key in loaded):
        prefix = 'features.'
        if any(key.startswith(prefix) for key in loaded):
            return {k[len(prefix):]: v for k, v in loaded.items() if k.startswith(prefix)}
        return dict(loaded)
    from mxnet.gluon.model_zoo import vision
    net = vision.vgg19()
    try:
        net.load_parameters(path, ignore_extra=True)
    except Exception as e:
        raise StyleTransferError('%s: parameters do not fit Gluon vgg19 (%s)'
                                 % (path, str(e).splitlines()[0])) from e
    return {'%d.%s' % (i, kind): getattr(net.features[i], kind).data()
            for i in CONV_SHAPES for kind in ('weight', 'bias')}
