"""Feed-forward networks by name or path: `get_net(name_or_path, ctx)` -> LoadedNet.

Three file formats:

- our own `.params` (`save_net`): the Gluon structural names ('conv1.conv2d.weight',
  'res2.in1.gamma', ...) plus one extra array '__meta__', the UTF-8 bytes of a JSON object
  stored as uint8. Embedding it keeps a network and its description in one file that one atomic
  rename writes, so the two can never disagree or be separated. Fields: format, version, kind
  ('johnson'), n_styles, style_names, convention (a name in conventions.py), loss_network (a
  description of the weights that trained it), plus whatever the trainer adds under 'extra'.
  Gluon's own load_parameters would stop at '__meta__': load these through `get_net`.
- a PyTorch `.pth` state dict (pytorch/examples fast_neural_style's candy, mosaic,
  rain_princess, udnie), read by torchfile.read_pth, which refuses any pickle asking for more
  than tensors and OrderedDicts; names map onto ours by the kind's fixed table.
- an exported symbol (`export_net`, or Gluon's own `export`): NAME-symbol.json and
  NAME-0000.params, with our metadata in a sidecar NAME-meta.json (a symbol has no room for it).
  A symbol exported without it loads only when the caller says its convention.

Kinds: `KINDS` maps a kind name to how to build its network, take its state and read PyTorch's
names for it. Only 'johnson' is here; another kind (an AdaIN decoder) is added by putting a
`Kind` into KINDS under its name.
"""
import json
import os
import re
import shutil
import tempfile
from collections import namedtuple
from dataclasses import dataclass, field

import mxnet as mx
import numpy as np
from mxnet import nd

from .. import torchfile
from ..errors import StyleTransferError
from ..files import atomic_path, check_input_file, write_text
from . import conventions, johnson

FORMAT = 'styletransfer-fast-net'
VERSION = 1
META_KEY = '__meta__'
SYMBOL_SUFFIX, EXPORT_PARAMS_SUFFIX, META_SUFFIX = '-symbol.json', '-0000.params', '-meta.json'
SUFFIXES = ('.params', '.pth', SYMBOL_SUFFIX)
DEFAULT_ROOT = os.path.join('~', '.styletransfer', 'nets')


Kind = namedtuple('Kind', 'description build state torch_names torch_ignored torch_meta')
Kind.__doc__ = """How one kind of network is built, saved and read from PyTorch.

description: what the kind is, for messages ('fast_neural_style TransformerNet');
build(meta) -> an uninitialised HybridBlock whose structural names are the saved ones;
state(block) -> {structural name: NDArray}, what `save_net` writes;
torch_names() -> {PyTorch name: structural name} in the network's order, or None;
torch_ignored(name) -> True for PyTorch entries that carry nothing the network needs;
torch_meta(path) -> the metadata a PyTorch file of this kind implies."""


_TORCH_NORM_BUFFER = re.compile(r'(^|\.)in\d+\.(running_mean|running_var|num_batches_tracked)$')


def _johnson_build(meta):
    return johnson.TransformerNet(meta['n_styles'], meta['convention'])


def _johnson_torch_meta(path):
    return {'kind': 'johnson', 'n_styles': 1,
            'style_names': [os.path.splitext(os.path.basename(path))[0]],
            'convention': 'rgb255',
            'loss_network': 'VGG-16 (torchvision), as pytorch/examples fast_neural_style trains'}


KINDS = {
    'johnson': Kind('fast_neural_style TransformerNet', _johnson_build,
                    lambda block: block.canonical_state(),
                    lambda: {torch: ours for torch, (ours, _) in
                             johnson.torch_name_map().items()},
                    lambda name: bool(_TORCH_NORM_BUFFER.search(name)),
                    _johnson_torch_meta),
}


@dataclass
class LoadedNet:
    """A network ready to run, and what its file says about it."""
    block: object               # HybridBlock: block(x, style_weights)
    kind: str
    n_styles: int
    style_names: list
    convention: str             # conventions.CONVENTIONS key
    loss_network: str
    source: str                 # the file it came from
    extra: dict = field(default_factory=dict)

    def weights(self, choice=0, batch=1):
        """Style weights (batch x n_styles) from an index, a style name, or a mapping of
        indices/names to weights (normalised to sum 1)."""
        if isinstance(choice, str):
            choice = {choice: 1.0}
        if isinstance(choice, dict):
            choice = {self._index(k): w for k, w in choice.items()}
        ctx = next(iter(self.block.collect_params().values())).list_ctx()[0]
        return johnson.style_weights(self.n_styles, choice, batch, ctx)

    def _index(self, key):
        if isinstance(key, str):
            if key not in self.style_names:
                raise StyleTransferError('no style %r in %s (it has: %s)'
                                         % (key, self.source, ', '.join(self.style_names)))
            return self.style_names.index(key)
        return key

    def stylise(self, pixels, choice=0):
        """N x 3 x H x W pixels in 0..255 (float NDArray on the network's context) -> stylised
        pixels, clipped to 0..255, through the network's pixel convention."""
        x = conventions.to_input(pixels, self.convention)
        return conventions.from_output(self.block(x, self.weights(choice, pixels.shape[0])),
                                       self.convention)


# ----------------------------------------------------------------------------------- finding

def nets_root(root=None):
    return os.path.expanduser(root or DEFAULT_ROOT)


def list_nets(root=None):
    """{name: path} of the networks in `root` (default ~/.styletransfer/nets), one per name:
    NAME.params, NAME.pth or NAME-symbol.json."""
    folder = nets_root(root)
    found = {}
    if not os.path.isdir(folder):
        return found
    for entry in sorted(os.listdir(folder)):
        for suffix in SUFFIXES:
            if entry.endswith(suffix) and not entry.endswith(EXPORT_PARAMS_SUFFIX):
                found.setdefault(entry[:-len(suffix)], os.path.join(folder, entry))
    return found


def _resolve(name_or_path, root):
    path = os.fspath(name_or_path)
    if os.sep in path or path.endswith(SUFFIXES) or os.path.exists(path):
        return path
    nets = list_nets(root)
    if path not in nets:
        raise StyleTransferError('no network named %r in %s (found: %s)'
                                 % (path, nets_root(root), ', '.join(nets) or 'none'))
    return nets[path]


def get_net(name_or_path, ctx=None, root=None, convention=None):
    """Load a network from a file (.params, .pth, NAME-symbol.json) or by name from `root`.

    `convention` overrides the file's (and is needed for a symbol exported without our
    metadata). Every problem is a one-line StyleTransferError naming the file."""
    ctx = ctx or mx.cpu()
    path = _resolve(name_or_path, root)
    if path.endswith(EXPORT_PARAMS_SUFFIX):
        # the parameters half of an export: the network is its symbol
        symbol = path[:-len(EXPORT_PARAMS_SUFFIX)] + SYMBOL_SUFFIX
        path = symbol if os.path.exists(symbol) else path
    check_input_file(path, 'a network file')
    if convention is not None:
        conventions.get(convention)
    if path.endswith(SYMBOL_SUFFIX):
        net = _load_symbol(path, ctx, convention)
    elif path.endswith('.pth'):
        net = _load_torch(path, ctx)
    else:
        net = _load_params(path, ctx)
    if convention is not None:
        net.convention = convention
    return net


# ---------------------------------------------------------------------------------- checking

def _shape_text(shape):
    return str(tuple(int(n) for n in shape))


def _checked(path, arrays, expected, what, names=None):
    """{structural name: float32 numpy array} from `arrays` ({file name: array}) against
    `expected` ({structural name: shape}); `names` maps file names to structural ones. The
    first missing, misshapen or unexpected parameter is named."""
    names = names or {name: name for name in expected}
    loaded = {}
    for file_name, ours in names.items():
        if file_name not in arrays:
            raise StyleTransferError('%s: not a %s: missing %s' % (path, what, file_name))
        array = np.asarray(arrays[file_name])
        want = expected[ours]
        if array.shape != want and (1,) + array.shape != want:
            # a PyTorch norm's (C,) is a row of our (1, C) table: say what the file should hold
            said = want[1:] if len(want) == array.ndim + 1 and want[0] == 1 else want
            raise StyleTransferError('%s: not a %s: %s has shape %s, expected %s'
                                     % (path, what, file_name, _shape_text(array.shape),
                                        _shape_text(said)))
        if not np.issubdtype(array.dtype, np.floating):
            raise StyleTransferError('%s: %s holds %s, not floating-point weights'
                                     % (path, file_name, array.dtype))
        if not np.all(np.isfinite(array)):
            raise StyleTransferError('%s: %s holds NaN or infinite values' % (path, file_name))
        loaded[ours] = array.astype(np.float32).reshape(want)
    extra = [name for name in arrays if name not in names]
    if extra:
        raise StyleTransferError('%s: not a %s: unexpected parameter %s' % (path, what, extra[0]))
    return loaded


def _set_parameters(block, values, ctx):
    params = block._collect_params_with_prefix()
    for name, param in params.items():
        param.initialize(init=mx.init.Zero(), ctx=ctx, force_reinit=True)
        param.set_data(nd.array(values[name], ctx=ctx, dtype='float32'))


def _expected(block):
    return {name: p.shape for name, p in block._collect_params_with_prefix().items()}


# ----------------------------------------------------------------------------------- loading

def _check_meta(path, meta):
    if not (isinstance(meta, dict) and meta.get('format') == FORMAT):
        raise StyleTransferError('%s: metadata is not %s\'s' % (path, FORMAT))
    if meta.get('version') != VERSION:
        raise StyleTransferError('%s: metadata version %r, this tool reads %d'
                                 % (path, meta.get('version'), VERSION))
    if meta.get('kind') not in KINDS:
        raise StyleTransferError('%s: network kind %r is unknown (known: %s)'
                                 % (path, meta.get('kind'), ', '.join(sorted(KINDS))))
    n = meta.get('n_styles')
    if not (isinstance(n, int) and n >= 1):
        raise StyleTransferError('%s: n_styles %r is not a positive integer' % (path, n))
    names = meta.get('style_names')
    if not (isinstance(names, list) and len(names) == n
            and all(isinstance(s, str) for s in names)):
        raise StyleTransferError('%s: style_names must be %d strings' % (path, n))
    conventions.get(meta.get('convention'))
    return meta


def _net(block, meta, path):
    return LoadedNet(block, meta['kind'], meta['n_styles'], list(meta['style_names']),
                     meta['convention'], meta.get('loss_network', ''), path,
                     dict(meta.get('extra') or {}))


def _mx_message(e):
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    message = next((line for line in lines if 'Check failed' in line or 'Error' in line),
                   lines[0] if lines else type(e).__name__)
    return message[:200]


def _load_params(path, ctx):
    try:
        arrays = nd.load(path)
    except mx.base.MXNetError as e:
        raise StyleTransferError('%s: damaged, truncated or not a .params file (%s)'
                                 % (path, _mx_message(e))) from None
    if not isinstance(arrays, dict) or META_KEY not in arrays:
        raise StyleTransferError('%s: a .params without %s (was it saved by zoo.save_net?)'
                                 % (path, META_KEY))
    try:
        meta = json.loads(arrays.pop(META_KEY).asnumpy().tobytes().decode('utf-8'))
    except (ValueError, UnicodeDecodeError) as e:
        raise StyleTransferError('%s: damaged metadata (%s)' % (path, e)) from None
    meta = _check_meta(path, meta)
    kind = KINDS[meta['kind']]
    block = kind.build(meta)
    numpy_arrays = {name: a.asnumpy() for name, a in arrays.items()}
    _set_parameters(block, _checked(path, numpy_arrays, _expected(block), kind.description),
                    ctx)
    return _net(block, meta, path)


def _load_torch(path, ctx):
    state = torchfile.read_pth(path)
    if not (isinstance(state, dict) and state
            and all(isinstance(k, str) and isinstance(v, np.ndarray) for k, v in state.items())):
        raise StyleTransferError('%s: not a state dict (a mapping of names to tensors)' % path)
    # the kind whose PyTorch names the file shares most; its first missing name is reported
    candidates = [(name, kind) for name, kind in KINDS.items() if kind.torch_names]
    kind_name, kind = max(candidates, key=lambda c: len(set(c[1].torch_names()) & set(state)))
    arrays = {name: a for name, a in state.items() if not kind.torch_ignored(name)}
    meta = dict(kind.torch_meta(path), format=FORMAT, version=VERSION)
    block = kind.build(meta)
    values = _checked(path, arrays, _expected(block), kind.description, kind.torch_names())
    _set_parameters(block, values, ctx)
    return _net(block, meta, path)


def _load_symbol(path, ctx, convention):
    prefix = path[:-len(SYMBOL_SUFFIX)]
    params_path = prefix + EXPORT_PARAMS_SUFFIX
    check_input_file(params_path, 'the parameters of %s' % os.path.basename(path))
    meta_path = prefix + META_SUFFIX
    if os.path.exists(meta_path):
        try:
            with open(meta_path, encoding='utf-8') as f:
                meta = json.load(f)
        except (OSError, ValueError, UnicodeDecodeError) as e:
            raise StyleTransferError('%s: damaged metadata (%s)' % (meta_path, e)) from None
        meta = _check_meta(meta_path, meta)
    elif convention is None:
        raise StyleTransferError('%s: no %s beside it to say its pixel convention; pass one '
                                 '(%s)' % (path, os.path.basename(meta_path),
                                           ', '.join(sorted(conventions.CONVENTIONS))))
    else:
        meta = None
    try:
        symbol = mx.sym.load(path)
        params = nd.load(params_path)
        names = {k.split(':', 1)[-1] for k in params}
        inputs = [a for a in symbol.list_inputs() if a not in names]
        block = mx.gluon.SymbolBlock.imports(path, inputs, params_path, ctx=ctx)
    except mx.base.MXNetError as e:
        raise StyleTransferError('%s: damaged, truncated or not an exported network (%s)'
                                 % (path, _mx_message(e))) from None
    if len(inputs) != 2:
        raise StyleTransferError('%s: a network with inputs %s; a stylisation network takes '
                                 'two (images, style weights)' % (path, ', '.join(inputs)))
    if meta is None:
        n_styles = _symbol_styles(block, path)
        meta = {'kind': 'symbol', 'n_styles': n_styles,
                'style_names': ['style%d' % i for i in range(n_styles)],
                'convention': convention, 'loss_network': ''}
    return _net(block, meta, path)


def _symbol_styles(block, path):
    """n_styles of an exported TransformerNet without metadata: the rows of its first norm's
    tables (the graph's first 2-D parameter named like a scale table)."""
    shapes = {name: param.data().shape for name, param in block.collect_params().items()}
    for name, shape in shapes.items():
        if name.endswith('gamma') and len(shape) == 2:
            # with the groups add_styles appended ('..._gamma_added1')
            return sum(s[0] for n, s in shapes.items() if n.startswith(name) and len(s) == 2)
    raise StyleTransferError('%s: cannot tell how many styles it holds' % path)


# ------------------------------------------------------------------------------------ saving

def _meta_of(block, kind, style_names, loss_network, extra):
    n_styles = block.n_styles
    style_names = list(style_names or ['style%d' % i for i in range(n_styles)])
    if len(style_names) != n_styles:
        raise StyleTransferError('%d style names for a network of %d styles'
                                 % (len(style_names), n_styles))
    return {'format': FORMAT, 'version': VERSION, 'kind': kind, 'n_styles': n_styles,
            'style_names': style_names, 'convention': block.convention,
            'loss_network': loss_network, 'extra': dict(extra or {})}


def save_net(block, path, style_names=None, loss_network='', kind='johnson', extra=None):
    """Write `block`'s parameters and metadata to one .params file, atomically. Norm tables
    grown by `add_styles` are saved joined, so the file loads as a network with one group."""
    meta = _meta_of(block, kind, style_names, loss_network, extra)
    arrays = {name: a.copyto(mx.cpu()) for name, a in KINDS[kind].state(block).items()}
    encoded = np.frombuffer(json.dumps(meta, sort_keys=True).encode('utf-8'), np.uint8)
    arrays[META_KEY] = nd.array(encoded, dtype='uint8')
    try:
        with atomic_path(path) as tmp:
            nd.save(tmp, arrays)
    except (OSError, mx.base.MXNetError) as e:
        raise StyleTransferError('%s: cannot write: %s' % (path, _mx_message(e))) from None
    return meta


def export_net(block, prefix, style_names=None, loss_network='', kind='johnson', extra=None):
    """`block.export(prefix)` (PREFIX-symbol.json, PREFIX-0000.params) plus PREFIX-meta.json,
    each file written to a temporary folder beside them and renamed into place. The block must
    have run once hybridised (Gluon exports the graph it traced)."""
    meta = _meta_of(block, kind, style_names, loss_network, extra)
    folder = os.path.dirname(os.path.abspath(prefix))
    staging = tempfile.mkdtemp(prefix='.export.', dir=folder)
    try:
        staged = os.path.join(staging, 'net')
        block.export(staged)
        for suffix in (SYMBOL_SUFFIX, EXPORT_PARAMS_SUFFIX):
            with atomic_path(prefix + suffix) as tmp:
                shutil.copyfile(staged + suffix, tmp)
        write_text(prefix + META_SUFFIX, json.dumps(meta, sort_keys=True, indent=1) + '\n')
    except (OSError, mx.base.MXNetError) as e:
        raise StyleTransferError('%s: cannot export: %s' % (prefix, _mx_message(e))) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return meta
