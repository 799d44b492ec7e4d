"""Read a PyTorch .pth file without torch and without running anything in it.

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
Every network file users bring from PyTorch (torchvision's VGG-19, the fast-style-transfer
models, AdaIN's encoder and decoder) goes through `read_pth`.
"""
import collections
import os
import pickle
import struct
import zipfile

import numpy as np

from .errors import StyleTransferError

LEGACY_MAGIC = 0x1950a86a20f9469cfc6c
LEGACY_PROTOCOL = 1001
ZIP_MAGIC = b'PK\x03\x04'
MAX_DIMS = 32                                     # numpy's limit


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
