"""A torch-like .pth writer for tests: torch is not installed here, so the files PyTorch users
bring are written by hand, with the opcodes torch's own writer emits.

The state dict is GLOBAL 'collections OrderedDict'; each tensor is GLOBAL
'torch._utils _rebuild_tensor_v2' (or the older '_rebuild_tensor') called with a persistent
storage reference, offset, size, stride (plus requires_grad False and an empty OrderedDict).
Both layouts torch.save has written: zip (torch >= 1.6) and legacy (torch < 1.6).
"""
import collections
import io
import pickle
import struct
import zipfile

import numpy as np

class Global:
    """Pickled as GLOBAL 'module name', without importing the module (torch is not here)."""

    def __init__(self, module, name):
        self.module, self.name = module, name

    def __call__(self, *args):      # the pickler asks for a callable; nothing calls it
        raise AssertionError('%s.%s called while writing' % (self.module, self.name))


STORAGE_TYPES = {np.dtype('float32'): 'FloatStorage', np.dtype('float64'): 'DoubleStorage',
                 np.dtype('float16'): 'HalfStorage', np.dtype('int64'): 'LongStorage',
                 np.dtype('uint8'): 'ByteStorage'}


class Storage:
    def __init__(self, key, array, type_name=None):
        self.key, self.array = key, np.ascontiguousarray(array).ravel()
        self.type = Global('torch', type_name or STORAGE_TYPES[self.array.dtype])


class View:
    """Elements [offset, offset + size) of a root storage: torch < 0.4's storage views."""

    def __init__(self, root, key, offset, size):
        self.root, self.key, self.offset, self.size = root, key, offset, size


class Tensor:
    def __init__(self, storage, offset, size, stride, old=False):
        self.args = (storage, offset, tuple(size), tuple(stride))
        self.old = old

    def __reduce__(self):
        if self.old:        # torch 0.2/0.3, as torchvision's 2017 files
            return Global('torch._utils', '_rebuild_tensor'), self.args
        return (Global('torch._utils', '_rebuild_tensor_v2'),
                self.args + (False, collections.OrderedDict()))


class Call:
    """A pickled call of any global: what a malicious .pth holds."""

    def __init__(self, module, name, *args):
        self.func, self.args = Global(module, name), args

    def __reduce__(self):
        return self.func, self.args


class TorchLikePickler(pickle._Pickler):    # the Python pickler: its dispatch table is open
    dispatch = dict(pickle._Pickler.dispatch)

    def __init__(self, file, legacy):
        super().__init__(file, protocol=2)  # torch's default protocol
        self.legacy, self.storages = legacy, {}

    def save_raw_global(self, obj):
        self.write(pickle.GLOBAL + ('%s\n%s\n' % (obj.module, obj.name)).encode('ascii'))
        self.memoize(obj)

    dispatch[Global] = save_raw_global

    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            self.storages[obj.key] = obj
            ref = ('storage', obj.type, obj.key, 'cpu', obj.array.size)
            return ref + (None,) if self.legacy else ref
        if isinstance(obj, View):
            assert self.legacy
            self.storages[obj.root.key] = obj.root
            return ('storage', obj.root.type, obj.root.key, 'cpu', obj.root.array.size,
                    (obj.key, obj.offset, obj.size))
        return None


def tensor_of(key, array):
    array = np.ascontiguousarray(array)
    return Tensor(Storage(key, array), 0, array.shape,
                  [s // array.itemsize for s in array.strides])


def state_dict(arrays):
    return collections.OrderedDict((name, tensor_of(str(i), a))
                                   for i, (name, a) in enumerate(arrays.items()))


def little_endian_bytes(array):
    return array.astype(array.dtype.newbyteorder('<')).tobytes()


def write_pth(path, obj, fmt):
    if fmt == 'zip':                # torch >= 1.6
        data = io.BytesIO()
        pickler = TorchLikePickler(data, legacy=False)
        pickler.dump(obj)
        with zipfile.ZipFile(path, 'w', zipfile.ZIP_STORED) as archive:
            archive.writestr('archive/data.pkl', data.getvalue())
            archive.writestr('archive/byteorder', 'little')
            for key, storage in pickler.storages.items():
                archive.writestr('archive/data/%s' % key, little_endian_bytes(storage.array))
            archive.writestr('archive/version', '3\n')
    else:                           # torch < 1.6
        with open(path, 'wb') as f:
            sys_info = {'protocol_version': 1001, 'little_endian': True,
                        'type_sizes': {'short': 2, 'int': 4, 'long': 4}}
            for value in (0x1950a86a20f9469cfc6c, 1001, sys_info):
                pickle.dump(value, f, protocol=2)
            pickler = TorchLikePickler(f, legacy=True)
            pickler.dump(obj)
            keys = sorted(pickler.storages)
            pickle.dump(keys, f, protocol=2)
            for key in keys:
                array = pickler.storages[key].array
                f.write(struct.pack('<q', array.size))
                f.write(little_endian_bytes(array))
    return path
