"""Turn torchvision's VGG-19 checkpoint (a PyTorch .pth) into a Gluon .params file, without torch.

The .pth is read by `styletransfer.torchfile`, which runs nothing in the pickle; this module
maps torchvision's names and shapes onto Gluon's vgg19 and writes the .params file.
"""
import collections
import os
import re
from dataclasses import dataclass

import numpy as np

from ..errors import StyleTransferError
from ..files import atomic_path, check_input_file, sha256_of
from ..torchfile import read_pth
from .layers import CONV_SHAPES

TORCHVISION_FILE = 'vgg19-dcbb9e9d.pth'
# torchvision names its files NAME-<first hex digits of the file's SHA-256>.pth
TORCHVISION_SHA256_PREFIX = 'dcbb9e9d'
HASH_IN_NAME = re.compile(r'-([0-9a-f]{8,})\.')   # the pattern torch.hub checks names with

# torchvision's classifier -> Gluon's vgg19: Dense layers features.37 and features.39 (each after
# pool5, with Dropout at 38 and 40 between them) and the output layer. Both flatten the 512x7x7
# pool5 map of a 224x224 image in NCHW order, and torch's Linear weight (out, in) is Gluon's
# Dense layout, so the tensors are copied unchanged.
POOL5_VALUES = 512 * 7 * 7
DENSE_LAYERS = (('classifier.0', 'features.37', (4096, POOL5_VALUES)),
                ('classifier.3', 'features.39', (4096, 4096)),
                ('classifier.6', 'output', (1000, 4096)))


@dataclass(frozen=True)
class Param:
    source: str     # name in torchvision's state dict, e.g. 'classifier.0.weight'
    target: str     # Gluon's structural name (what save_parameters writes), 'features.37.weight'
    shape: tuple
    group: str      # 'conv' or 'dense'


@dataclass(frozen=True)
class Conversion:
    convs: int          # layers written, per group
    denses: int
    values: int
    size: int           # bytes of the file written
    sha256: str         # of the input file
    ignored: tuple      # input names VGG-19 has no place for (the classifier with features_only)


def expected_parameters(features_only=False):
    """What torchvision's vgg19 state dict holds, in its order, and where each goes in Gluon."""
    layers = [('features.%d' % i, 'features.%d' % i, CONV_SHAPES[i], 'conv')
              for i in sorted(CONV_SHAPES)]
    if not features_only:
        layers += [(source, target, shape, 'dense') for source, target, shape in DENSE_LAYERS]
    return tuple(Param('%s.%s' % (source, kind), '%s.%s' % (target, kind), shape, group)
                 for source, target, weight_shape, group in layers
                 for kind, shape in (('weight', weight_shape), ('bias', weight_shape[:1])))


# ------------------------------------------------------------------------- checking, writing

def to_gluon(state, expected):
    """{Gluon name: float32 array} from a torchvision state dict, or an error naming the first
    expected parameter that is missing or misshapen."""
    if not isinstance(state, dict):
        raise StyleTransferError('holds a %s, not a state dict' % type(state).__name__)
    params = {}
    for p in expected:
        if p.source not in state:
            raise StyleTransferError('no parameter %s: not torchvision\'s vgg19 state dict '
                                     '(vgg19_bn and other models do not fit)' % p.source)
        value = state[p.source]
        if not isinstance(value, np.ndarray):
            raise StyleTransferError('parameter %s is a %s, not a tensor'
                                     % (p.source, type(value).__name__))
        if value.shape != p.shape:
            raise StyleTransferError('parameter %s has shape %s, VGG-19 needs %s'
                                     % (p.source, value.shape, p.shape))
        if value.dtype.kind != 'f':
            raise StyleTransferError('parameter %s holds %s, not floating point'
                                     % (p.source, value.dtype))
        params[p.target] = value.astype(np.float32, copy=False)
    return params


def write_params(params, path):
    """Save {name: array} as a Gluon .params file, atomically."""
    import mxnet as mx
    arrays = {name: mx.nd.array(value, dtype='float32') for name, value in params.items()}
    try:
        with atomic_path(path) as tmp:
            mx.nd.save(tmp, arrays)
    except (OSError, mx.base.MXNetError) as e:
        raise StyleTransferError('%s: cannot write: %s' % (path, str(e).splitlines()[0]
                                                           if str(e) else e)) from None


def describe_input(path, sha256):
    """One line: the input's hash prefix, and whether it is torchvision's VGG-19 file."""
    name = os.path.basename(path)
    line = '%s: SHA-256 %s...' % (path, sha256[:8])
    if sha256.startswith(TORCHVISION_SHA256_PREFIX):
        return line + ', torchvision\'s VGG-19 file (%s)' % TORCHVISION_FILE
    claim = HASH_IN_NAME.search(name)
    if claim and not sha256.startswith(claim.group(1)):
        return line + (', NOT the %s its name claims (damaged or another file); torchvision\'s '
                       'VGG-19 file is %s' % (claim.group(1), TORCHVISION_FILE))
    if claim:
        line += ', as its name says'
    return line + ', not torchvision\'s VGG-19 file (%s)' % TORCHVISION_FILE


def check_paths(in_path, out_path, overwrite=False):
    """Refuse, before any reading, what would fail or destroy something at the end."""
    in_path, out_path = os.fspath(in_path), os.fspath(out_path)
    check_input_file(in_path, 'a .pth file')
    if not out_path.strip():
        raise StyleTransferError('the output path is empty')
    if os.path.isdir(out_path):
        raise StyleTransferError('%s: output path is a directory' % out_path)
    folder = os.path.dirname(os.path.abspath(out_path))
    if not os.path.isdir(folder):
        raise StyleTransferError('%s: output folder does not exist' % folder)
    if os.path.exists(out_path):
        if os.path.samefile(in_path, out_path):
            raise StyleTransferError('%s: output would overwrite the input' % out_path)
        if not overwrite:
            raise StyleTransferError('%s: exists; pass --overwrite to replace it' % out_path)


def convert(in_path, out_path, features_only=False, overwrite=False, expected=None):
    """Read torchvision's VGG-19 .pth at `in_path`, check it and write Gluon's .params.

    `expected` (default: `expected_parameters(features_only)`) lets tests use small shapes.
    """
    check_paths(in_path, out_path, overwrite)
    if expected is None:
        expected = expected_parameters(features_only)
    state = read_pth(in_path)
    try:
        params = to_gluon(state, expected)
    except StyleTransferError as e:
        raise StyleTransferError('%s: %s' % (in_path, e)) from None
    wanted = {p.source for p in expected}
    ignored = tuple(name for name in state if name not in wanted)
    del state
    write_params(params, out_path)
    groups = collections.Counter(p.group for p in expected if p.source.endswith('.weight'))
    return Conversion(convs=groups['conv'], denses=groups['dense'],
                      values=sum(v.size for v in params.values()),
                      size=os.path.getsize(out_path), sha256=sha256_of(in_path),
                      ignored=ignored)
