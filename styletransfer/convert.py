"""Turn torchvision's VGG-19 checkpoint (a PyTorch .pth) into a Gluon .params file, without torch.

A .pth is a pickle, and unpickling runs whatever the file asks for, so this module never hands a
.pth to `pickle.load`: its unpickler resolves only an allow-list of globals (OrderedDict, torch's
tensor-rebuilding functions and storage types), each to a stand-in of ours that builds plain data,
and refuses every other global by name before anything is called.

Two layouts are read, the two `torch.save` has written:

- zip (torch >= 1.6): one top folder holding `data.pkl`, `data/<key>` (each storage's raw bytes)
  and `version`; storages are persistent ids ('storage', type, key, location, numel);
- legacy (torch < 1.6, which torchvision's 2017 `vgg19-dcbb9e9d.pth` uses): pickles one after
  another (magic number, protocol version, sys_info, the object with persistent ids
  ('storage', type, root key, location, numel, view), the list of storage keys), then for each
  key in that list an int64 element count and the storage's raw bytes.

Tensors come out as numpy arrays, rebuilt from (storage, offset, size, stride) as torch does.
"""
import collections
import os
import pickle
import re
import struct
import zipfile
from dataclasses import dataclass

import numpy as np

from .errors import StyleTransferError
from .files import atomic_path, check_input_file, sha256_of
from .layers import CONV_SHAPES

TORCHVISION_FILE = 'vgg19-dcbb9e9d.pth'
# torchvision names its files NAME-<first hex digits of the file's SHA-256>.pth
TORCHVISION_SHA256_PREFIX = 'dcbb9e9d'
HASH_IN_NAME = re.compile(r'-([0-9a-f]{8,})\.')   # the pattern torch.hub checks names with

LEGACY_MAGIC = 0x1950a86a20f9469cfc6c
LEGACY_PROTOCOL = 1001
ZIP_MAGIC = b'PK\x03\x04'
MAX_DIMS = 32                                     # numpy's limit

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


# ------------------------------------------------------------------ stand-ins for torch's globals

class _StorageType:
    """Stands for torch.FloatStorage and its kin: only a dtype, never called."""
    __slots__ = ('name', 'dtype')

    def __init__(self, name, dtype):
        self.name, self.dtype = name, np.dtype(dtype)


# bfloat16 has no numpy dtype: its storage is read as uint16 and widened to float32 on load.
_STORAGE_TYPES = {name: _StorageType(name, dtype) for name, dtype in (
    ('FloatStorage', 'f4'), ('DoubleStorage', 'f8'), ('HalfStorage', 'f2'),
    ('LongStorage', 'i8'), ('IntStorage', 'i4'), ('ShortStorage', 'i2'), ('CharStorage', 'i1'),
    ('ByteStorage', 'u1'), ('BoolStorage', '?'), ('BFloat16Storage', 'u2'))}


class _StorageRef:
    """A storage the pickle refers to: elements [offset, offset + numel) of the root `key`."""
    __slots__ = ('key', 'type', 'offset', 'numel')

    def __init__(self, key, type_, offset, numel):
        self.key, self.type, self.offset, self.numel = key, type_, offset, numel


class _LazyTensor:
    """A tensor whose storage bytes may not be read yet (the legacy layout stores them after the
    pickle), made into a numpy array once they are."""
    __slots__ = ('storage', 'offset', 'size', 'stride')

    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _rebuild_tensor(storage, storage_offset, size, stride):
    if not isinstance(storage, _StorageRef):
        raise StyleTransferError('a tensor without a storage')
    if not (_is_int(storage_offset) and isinstance(size, (tuple, list))
            and isinstance(stride, (tuple, list)) and len(size) == len(stride) <= MAX_DIMS
            and all(_is_int(v) and v >= 0 for v in (storage_offset, *size, *stride))):
        raise StyleTransferError('a tensor with a malformed offset, size or stride: %r, %r, %r'
                                 % (storage_offset, size, stride))
    size, stride = tuple(size), tuple(stride)
    # as_strided reads raw memory: a view reaching beyond its storage must never get that far.
    if all(size):
        last = storage_offset + sum((n - 1) * s for n, s in zip(size, stride))
        if last >= storage.numel:
            raise StyleTransferError('a tensor of size %s, stride %s at offset %d reaches past '
                                     'its storage of %d elements'
                                     % (size, stride, storage_offset, storage.numel))
    return _LazyTensor(storage, storage_offset, size, stride)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None):
    # Gradients, hooks and metadata mean nothing to the weights.
    return _rebuild_tensor(storage, storage_offset, size, stride)


def _ordered_dict(items=()):
    # Python 2 pickles (torch's 2017 files) pass the items; Python 3 ones add them afterwards.
    return collections.OrderedDict(items)


_ALLOWED = {('collections', 'OrderedDict'): _ordered_dict,
            ('torch._utils', '_rebuild_tensor_v2'): _rebuild_tensor_v2,
            ('torch._utils', '_rebuild_tensor'): _rebuild_tensor}
_ALLOWED.update({('torch', name): type_ for name, type_ in _STORAGE_TYPES.items()})


class _Unpickler(pickle.Unpickler):
    """Unpickles only the allow-list above and records every storage the pickle refers to."""

    def __init__(self, file, legacy):
        # torch reads Python 2 pickles' byte strings as UTF-8 too
        super().__init__(file, encoding='utf-8')
        self.legacy = legacy
        self.storages = {}          # root key -> (_StorageType, element count)

    def find_class(self, module, name):
        try:
            return _ALLOWED[module, name]
        except (KeyError, TypeError):
            raise StyleTransferError(
                'refusing to load %s.%s: a .pth is a pickle, which can run code, so only '
                'tensors and OrderedDicts are read' % (module, name)) from None

    def persistent_load(self, pid):
        length = 6 if self.legacy else 5
        if not (isinstance(pid, tuple) and len(pid) == length and pid[0] == 'storage'):
            raise StyleTransferError('unsupported persistent reference %.80r' % (pid,))
        type_, key, _location, numel = pid[1:5]
        if not (isinstance(type_, _StorageType) and isinstance(key, str) and _is_int(numel)
                and numel >= 0):
            raise StyleTransferError('malformed storage reference %.80r' % (pid,))
        if self.storages.setdefault(key, (type_, numel)) != (type_, numel):
            raise StyleTransferError('storage %s is referred to with two types or sizes' % key)
        view = pid[5] if self.legacy else None
        if view is None:
            return _StorageRef(key, type_, 0, numel)
        # (view key, offset, size): a slice of the root storage, as torch before 0.4 wrote them
        if not (isinstance(view, tuple) and len(view) == 3 and _is_int(view[1])
                and _is_int(view[2]) and 0 <= view[1] and 0 <= view[2]
                and view[1] + view[2] <= numel):
            raise StyleTransferError('malformed storage view %.80r' % (view,))
        return _StorageRef(key, type_, view[1], view[2])


# ------------------------------------------------------------------------------------ reading

def read_pth(path):
    """The object a .pth holds, with every tensor a numpy array (contiguous, owning its data)."""
    path = os.fspath(path)
    try:
        with open(path, 'rb') as f:
            zipped = f.read(len(ZIP_MAGIC)) == ZIP_MAGIC
            f.seek(0)
            if zipped:
                obj, storages = _read_zip(f)
            else:
                obj, storages = _read_legacy(f)
            return _materialise(obj, storages)
    except StyleTransferError as e:
        raise StyleTransferError('%s: %s' % (path, e)) from None
    except OSError as e:
        raise StyleTransferError('%s: cannot read: %s' % (path, e.strerror or e)) from None
    except zipfile.BadZipFile as e:
        # the zip directory is at the end, so a partial download loses it first
        raise StyleTransferError('%s: a zip that is truncated or damaged (%s)'
                                 % (path, e)) from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError,
            KeyError, MemoryError, RecursionError, struct.error) as e:
        raise StyleTransferError('%s: not a readable PyTorch checkpoint, or truncated (%s: %s)'
                                 % (path, type(e).__name__, str(e)[:200])) from None


def _unpickle(f, legacy):
    unpickler = _Unpickler(f, legacy)
    return unpickler.load(), unpickler.storages


def _read_zip(f):
    with zipfile.ZipFile(f) as archive:
        pickles = [n for n in archive.namelist() if n.count('/') == 1 and n.endswith('/data.pkl')]
        if len(pickles) != 1:
            raise StyleTransferError('a zip, but not one PyTorch wrote (expected one '
                                     'FOLDER/data.pkl, found %d)' % len(pickles))
        folder = pickles[0][:-len('data.pkl')]
        byteorder = 'little'
        if folder + 'byteorder' in archive.namelist():
            byteorder = archive.read(folder + 'byteorder').decode('ascii', 'replace').strip()
        with archive.open(pickles[0]) as pickled:
            obj, refs = _unpickle(pickled, legacy=False)
        storages = {}
        for key, (type_, numel) in refs.items():
            name = '%sdata/%s' % (folder, key)
            try:
                stored = archive.getinfo(name).file_size
            except KeyError:
                raise StyleTransferError('storage %s is missing (no %s)' % (key, name)) from None
            _check_size(key, stored, numel * type_.dtype.itemsize)
            storages[key] = _storage_array(archive.read(name), type_, numel, byteorder)
    return obj, storages


def _read_legacy(f):
    total = os.fstat(f.fileno()).st_size
    magic, _ = _unpickle(f, legacy=True)
    if magic != LEGACY_MAGIC:
        raise StyleTransferError('not a PyTorch checkpoint (neither a zip nor torch\'s legacy '
                                 'format)')
    protocol, _ = _unpickle(f, legacy=True)
    if protocol != LEGACY_PROTOCOL:
        raise StyleTransferError('legacy PyTorch protocol %r, only %d is known'
                                 % (protocol, LEGACY_PROTOCOL))
    sys_info, _ = _unpickle(f, legacy=True)
    little = sys_info.get('little_endian', True) if isinstance(sys_info, dict) else True
    byteorder = 'little' if little else 'big'
    obj, refs = _unpickle(f, legacy=True)
    keys, _ = _unpickle(f, legacy=True)
    if not (isinstance(keys, list) and all(isinstance(k, str) for k in keys)):
        raise StyleTransferError('the list of storage keys is malformed')
    missing = sorted(set(refs) - set(keys))
    if missing:
        raise StyleTransferError('storage %s is used but not stored' % missing[0])
    count_format = '<q' if little else '>q'
    storages = {}
    for key in keys:
        if key not in refs:
            raise StyleTransferError('storage %s is stored but no tensor gives its type' % key)
        type_, numel = refs[key]
        header = f.read(8)
        if len(header) < 8:
            raise StyleTransferError('truncated: storage %s is missing' % key)
        (count,) = struct.unpack(count_format, header)
        if count != numel:
            raise StyleTransferError('storage %s holds %d elements, its tensors say %d'
                                     % (key, count, numel))
        nbytes = numel * type_.dtype.itemsize
        # checked before reading, so a damaged count cannot ask for more memory than the file
        _check_size(key, total - f.tell(), nbytes, at_least=True)
        storages[key] = _storage_array(f.read(nbytes), type_, numel, byteorder)
    return obj, storages


def _check_size(key, have, need, at_least=False):
    if have < need or (have != need and not at_least):
        raise StyleTransferError('truncated or damaged: storage %s has %d bytes, its tensors need '
                                 '%d' % (key, have, need))


def _storage_array(data, type_, numel, byteorder):
    dtype = type_.dtype.newbyteorder('<' if byteorder == 'little' else '>')
    array = np.frombuffer(data, dtype=dtype, count=numel)
    if type_.name == 'BFloat16Storage':
        # bfloat16 is the upper half of a float32
        return (array.astype(np.uint32) << 16).view(np.float32)
    return array.astype(type_.dtype.newbyteorder('='), copy=False)


def _materialise(obj, storages):
    if isinstance(obj, _LazyTensor):
        ref = obj.storage
        base = storages[ref.key][ref.offset:ref.offset + ref.numel]
        strides = tuple(s * base.itemsize for s in obj.stride)
        view = np.lib.stride_tricks.as_strided(base[obj.offset:], obj.size, strides,
                                               writeable=False)
        return np.array(view, order='C')
    if isinstance(obj, dict):
        for key in list(obj):
            obj[key] = _materialise(obj[key], storages)
        return obj
    if isinstance(obj, list):
        return [_materialise(item, storages) for item in obj]
    if isinstance(obj, tuple):
        return tuple(_materialise(item, storages) for item in obj)
    return obj


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
