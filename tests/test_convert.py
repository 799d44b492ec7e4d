"""torchvision's VGG-19 .pth -> Gluon .params, without torch: both layouts torch.save has written,
strided and offset tensors, pickles that try to run code, damaged and foreign files, the CLI.

torch is not installed here, so the .pth files are written by a small writer (tests/torchpickle.py)
that emits the opcodes torch's own do: GLOBAL 'collections OrderedDict' for the state dict, and
each tensor as GLOBAL 'torch._utils _rebuild_tensor_v2' (or the older '_rebuild_tensor') called
with a persistent storage reference, offset, size, stride (plus requires_grad False and an empty
OrderedDict).

Sizes: the real VGG-19 holds 143,667,240 values (548 MB), 86% of them in the classifier, which
would cost seconds and more than a gigabyte per file written and read. So files carry the sixteen
convolutions at their real shapes (20M random values, 80 MB, which is what style transfer and
weights.load use), while the classifier is checked two cheaper ways: its real shapes pass the
checker as np.zeros arrays (lazily allocated, never written), and its renaming onto Gluon's names
goes through a file with the checker told small shapes.
"""
import collections
import io
import math
import os
import pickle
import struct
import zipfile

import mxnet as mx
import numpy as np
import pytest
from mxnet.gluon.model_zoo import vision

from styletransfer import torchfile
from styletransfer.vgg import convert, layers, weights
from styletransfer.cli.convert import main
from styletransfer.errors import StyleTransferError

# the writer lives in tests/torchpickle.py (pytest puts tests/ on sys.path), shared with the
# other tests that need PyTorch files
from torchpickle import (Call, Storage, Tensor, TorchLikePickler, View, state_dict, tensor_of,
                         write_pth)

FORMATS = ('zip', 'legacy')
CONV_VALUES = 20024384              # the sixteen convolutions, weights and biases
ALL_VALUES = 143667240              # with the classifier


# ------------------------------------------------------------------------------- fixtures

@pytest.fixture(scope='module')
def conv_arrays():
    """torchvision vgg19's sixteen convolutions at their real shapes, random float32."""
    rng = np.random.default_rng(19)
    arrays = collections.OrderedDict()
    for p in convert.expected_parameters(features_only=True):
        arrays[p.source] = rng.standard_normal(p.shape, dtype=np.float32)
    return arrays


@pytest.fixture(scope='module', params=FORMATS)
def conv_pth(request, conv_arrays, tmp_path_factory):
    folder = tmp_path_factory.mktemp(request.param)
    # torchvision's name on a file that is not torchvision's: the report must say so
    return request.param, write_pth(str(folder / 'vgg19-dcbb9e9d.pth'),
                                    state_dict(conv_arrays), request.param)


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(err, *fragments):
    assert err.count('\n') == 1 and 'Traceback' not in err, err
    assert err.startswith('convert_weights.py: error: ')
    for fragment in fragments:
        assert fragment in err


def small_expected():
    """The real names with small shapes, for files that carry the classifier."""
    weight_shapes = {'conv': (4, 3, 3, 3), 'dense': (5, 6)}
    return tuple(convert.Param(p.source, p.target,
                               weight_shapes[p.group] if len(p.shape) > 1
                               else weight_shapes[p.group][:1], p.group)
                 for p in convert.expected_parameters())


# --------------------------------------------------------------------------------- names

def test_expected_parameters_are_gluon_vgg19s_names_and_shapes():
    net = vision.vgg19()
    net.infer_shape(mx.nd.zeros((1, 3, 224, 224)))
    gluon = {name: p.shape for name, p in net._collect_params_with_prefix().items()}
    expected = convert.expected_parameters()
    assert {p.target: p.shape for p in expected} == gluon
    assert len(expected) == 38 and sum(math.prod(p.shape) for p in expected) == ALL_VALUES
    features = convert.expected_parameters(features_only=True)
    assert [p.source for p in features] == [p.target for p in features] == [
        'features.%d.%s' % (i, kind) for i in sorted(layers.CONV_SHAPES)
        for kind in ('weight', 'bias')]
    assert sum(math.prod(p.shape) for p in features) == CONV_VALUES
    assert [(p.source, p.target) for p in expected if p.group == 'dense'] == [
        ('classifier.0.weight', 'features.37.weight'), ('classifier.0.bias', 'features.37.bias'),
        ('classifier.3.weight', 'features.39.weight'), ('classifier.3.bias', 'features.39.bias'),
        ('classifier.6.weight', 'output.weight'), ('classifier.6.bias', 'output.bias')]


def test_full_size_classifier_passes_the_checker():
    # np.zeros maps untouched pages: 548 MB of shapes cost no memory or time until written.
    state = {p.source: np.zeros(p.shape, np.float32) for p in convert.expected_parameters()}
    params = convert.to_gluon(state, convert.expected_parameters())
    assert len(params) == 38 and params['features.37.weight'].shape == (4096, 25088)
    assert params['output.bias'].shape == (1000,)


# ----------------------------------------------------------------------------- round trip

def test_round_trip_features_only(conv_pth, conv_arrays, tmp_path, capsys):
    fmt, pth = conv_pth
    out = tmp_path / 'vgg19.params'
    code, stdout, err = run(capsys, pth, out, '--features-only')
    assert (code, err) == (0, '')
    lines = stdout.splitlines()
    assert len(lines) == 2
    assert 'SHA-256 %s...' % convert.sha256_of(pth)[:8] in lines[0]
    assert 'NOT the dcbb9e9d its name claims' in lines[0]
    assert lines[1].startswith('16 convolutions, 20,024,384 values, ')
    assert lines[1].endswith(' MB -> %s (classifier left out: --features-only)' % out)
    assert '%.1f MB' % (os.path.getsize(out) / 2 ** 20) in lines[1]

    loaded = weights.load(str(out), 28)
    assert sorted(loaded.convs) == [i for i in sorted(layers.CONV_SHAPES) if i <= 28]
    for i, (weight, bias) in loaded.convs.items():
        np.testing.assert_array_equal(weight.asnumpy(), conv_arrays['features.%d.weight' % i])
        np.testing.assert_array_equal(bias.asnumpy(), conv_arrays['features.%d.bias' % i])
    saved = mx.nd.load(str(out))
    assert sorted(saved) == sorted(conv_arrays)
    for name, array in conv_arrays.items():
        assert saved[name].dtype == np.float32
        np.testing.assert_array_equal(saved[name].asnumpy(), array)


@pytest.mark.parametrize('fmt', FORMATS)
def test_classifier_goes_to_gluons_dense_layers(fmt, tmp_path):
    expected = small_expected()
    rng = np.random.default_rng(3)
    arrays = {p.source: rng.standard_normal(p.shape).astype(np.float32) for p in expected}
    pth = write_pth(str(tmp_path / 'small.pth'), state_dict(arrays), fmt)
    out = str(tmp_path / 'small.params')
    result = convert.convert(pth, out, expected=expected)
    assert (result.convs, result.denses, result.ignored) == (16, 3, ())
    assert result.values == sum(a.size for a in arrays.values())
    saved = mx.nd.load(out)
    assert set(saved) == set(vision.vgg19()._collect_params_with_prefix())
    for p in expected:
        np.testing.assert_array_equal(saved[p.target].asnumpy(), arrays[p.source])
    np.testing.assert_array_equal(saved['features.37.weight'].asnumpy(),
                                  arrays['classifier.0.weight'])


# ---------------------------------------------------------------- storages, strides, dtypes

@pytest.mark.parametrize('fmt', FORMATS)
def test_strided_offset_and_shared_storages_are_rebuilt(fmt, tmp_path):
    values = np.arange(40, dtype=np.float64) * 1.5
    shared = Storage('7', values)
    strided = np.lib.stride_tricks.as_strided
    obj = collections.OrderedDict([
        # a transposed 4x3 block starting at element 5: column-major, not contiguous
        ('transposed', Tensor(shared, 5, (3, 4), (1, 3))),
        # every other element of rows 10 apart, in the same storage
        ('strided', Tensor(shared, 2, (2, 3), (10, 2))),
        ('scalar', Tensor(shared, 39, (), ())),
        ('empty', Tensor(shared, 0, (0, 5), (5, 1))),
        ('half', tensor_of('h', np.array([[1.5, -2.25], [0.125, 65504]], np.float16))),
        ('bytes', tensor_of('b', np.arange(6, dtype=np.uint8).reshape(2, 3))),
        ('nested', [tensor_of('n', np.int64([1, -2])), {'x': 3}]),
    ])
    got = torchfile.read_pth(write_pth(str(tmp_path / 'strided.pth'), obj, fmt))
    assert isinstance(got, collections.OrderedDict) and list(got) == list(obj)
    itemsize = values.itemsize
    np.testing.assert_array_equal(got['transposed'],
                                  strided(values[5:], (3, 4), (itemsize, 3 * itemsize)))
    np.testing.assert_array_equal(got['transposed'], values[5:17].reshape(4, 3).T)
    np.testing.assert_array_equal(got['strided'], [[3, 6, 9], [18, 21, 24]])
    assert got['scalar'].shape == () and got['scalar'] == 58.5
    assert got['empty'].shape == (0, 5)
    for name in ('transposed', 'strided', 'half', 'bytes'):
        assert got[name].flags.c_contiguous and got[name].flags.owndata, name
    assert got['half'].dtype == np.float16 and got['half'][1, 1] == 65504
    assert got['bytes'].dtype == np.uint8 and got['bytes'].tolist() == [[0, 1, 2], [3, 4, 5]]
    assert got['nested'][0].tolist() == [1, -2] and got['nested'][1] == {'x': 3}


def test_legacy_storage_views_and_old_rebuild(tmp_path):
    # torch before 0.4 pickled tensors with _rebuild_tensor and could point into storage views
    root = Storage('100', np.arange(12, dtype=np.float32))
    obj = {'a': Tensor(View(root, '101', 4, 6), 1, (2, 2), (1, 2), old=True),
           'b': Tensor(root, 0, (12,), (1,), old=True)}
    got = torchfile.read_pth(write_pth(str(tmp_path / 'old.pth'), obj, 'legacy'))
    np.testing.assert_array_equal(got['a'], [[5, 7], [6, 8]])
    np.testing.assert_array_equal(got['b'], np.arange(12))


@pytest.mark.parametrize('fmt', FORMATS)
def test_half_double_and_bfloat16_weights_become_float32(fmt, tmp_path):
    exact = np.array([1.5, -2.0, 0.15625, 3.0], np.float32)    # exact in every format
    bf16 = (exact.view(np.uint32) >> 16).astype(np.uint16)
    obj = {'half': tensor_of('0', exact.astype(np.float16)),
           'double': tensor_of('1', exact.astype(np.float64)),
           'bf16': Tensor(Storage('2', bf16, 'BFloat16Storage'), 0, (4,), (1,))}
    state = torchfile.read_pth(write_pth(str(tmp_path / 'dtypes.pth'), obj, fmt))
    expected = [convert.Param(name, name, (4,), 'conv') for name in obj]
    for name, array in convert.to_gluon(state, expected).items():
        assert array.dtype == np.float32, name
        np.testing.assert_array_equal(array, exact)


@pytest.mark.parametrize('fmt', FORMATS)
@pytest.mark.parametrize('offset, size, stride', [(0, (4, 4), (4, 1)), (10, (3,), (1,)),
                                                  (0, (2, 2), (1, 15))])
def test_views_past_their_storage_are_refused(fmt, offset, size, stride, tmp_path):
    # as_strided would read whatever memory lies beyond: such a tensor must never be built
    obj = {'x': Tensor(Storage('0', np.zeros(12, np.float32)), offset, size, stride)}
    pth = write_pth(str(tmp_path / 'oob.pth'), obj, fmt)
    with pytest.raises(StyleTransferError, match='reaches past its storage of 12 elements'):
        torchfile.read_pth(pth)


# --------------------------------------------------------------------- pickles that run code

PAYLOADS = {'os.system': lambda marker: Call('os', 'system', 'touch %s' % marker),
            'builtins.eval': lambda marker: Call('builtins', 'eval',
                                                 'open(%r, "w").close()' % str(marker))}


def test_the_payloads_do_run_under_plain_pickle(tmp_path):
    # proves the refusal tests below are not vacuous: an ordinary unpickler runs them
    marker = tmp_path / 'ran'
    data = io.BytesIO()
    TorchLikePickler(data, legacy=False).dump(PAYLOADS['builtins.eval'](marker))
    pickle.loads(data.getvalue())
    assert marker.exists()


@pytest.mark.parametrize('fmt', FORMATS)
@pytest.mark.parametrize('refused', sorted(PAYLOADS))
def test_code_in_the_pickle_is_refused_and_never_run(fmt, refused, tmp_path, capsys):
    marker = tmp_path / 'ran'
    # the payload sits where a tensor would, after a real one
    obj = collections.OrderedDict([('features.0.weight', tensor_of('0', np.ones(3, np.float32))),
                                   ('features.0.bias', PAYLOADS[refused](marker))])
    pth = write_pth(str(tmp_path / 'evil.pth'), obj, fmt)
    with pytest.raises(StyleTransferError, match='refusing to load %s' % refused):
        torchfile.read_pth(pth)
    out = tmp_path / 'evil.params'
    code, stdout, err = run(capsys, pth, out)
    assert (code, stdout) == (2, '')
    assert_one_line_error(err, 'evil.pth: refusing to load %s' % refused)
    assert not marker.exists() and not out.exists()


@pytest.mark.parametrize('module, name', [('torch.storage', '_load_from_bytes'),
                                          ('torch._utils', '_rebuild_parameter'),
                                          ('torch', 'FloatTensor'),
                                          ('collections', 'defaultdict')])
def test_globals_outside_the_allow_list_are_refused(module, name, tmp_path):
    pth = write_pth(str(tmp_path / 'other.pth'), {'x': Call(module, name, 0)}, 'zip')
    with pytest.raises(StyleTransferError, match='refusing to load %s.%s' % (module, name)):
        torchfile.read_pth(pth)


def test_a_storage_type_is_not_callable(tmp_path):
    # a storage type is allowed as a value, never as something to call
    pth = write_pth(str(tmp_path / 'call.pth'), {'x': Call('torch', 'FloatStorage', 3)}, 'zip')
    with pytest.raises(StyleTransferError, match='not a readable PyTorch checkpoint'):
        torchfile.read_pth(pth)


# ---------------------------------------------------------------- not VGG-19, damaged files

def test_missing_parameter_is_named(conv_arrays, tmp_path, capsys):
    arrays = collections.OrderedDict(conv_arrays)
    del arrays['features.10.bias']
    pth = write_pth(str(tmp_path / 'missing.pth'), state_dict(arrays), 'zip')
    code, _, err = run(capsys, pth, tmp_path / 'out.params', '--features-only')
    assert code == 2
    assert_one_line_error(err, 'missing.pth: no parameter features.10.bias')
    assert not (tmp_path / 'out.params').exists()
    # without --features-only the classifier is expected too, and the first missing is named
    code, _, err = run(capsys, write_pth(str(tmp_path / 'convs.pth'), state_dict(conv_arrays),
                                         'legacy'), tmp_path / 'out.params')
    assert code == 2
    assert_one_line_error(err, 'no parameter classifier.0.weight')


def test_wrong_shape_is_named(conv_arrays, tmp_path, capsys):
    arrays = collections.OrderedDict(conv_arrays)
    arrays['features.5.weight'] = arrays['features.5.weight'][:, :32]     # 64 -> 32 inputs
    pth = write_pth(str(tmp_path / 'shape.pth'), state_dict(arrays), 'legacy')
    code, _, err = run(capsys, pth, tmp_path / 'out.params', '--features-only')
    assert code == 2
    assert_one_line_error(err, 'parameter features.5.weight has shape (128, 32, 3, 3), '
                               'VGG-19 needs (128, 64, 3, 3)')


def test_non_float_weights_and_non_dicts_are_refused():
    expected = [convert.Param('w', 'w', (2,), 'conv')]
    with pytest.raises(StyleTransferError, match='parameter w holds int64, not floating point'):
        convert.to_gluon({'w': np.int64([1, 2])}, expected)
    with pytest.raises(StyleTransferError, match='parameter w is a str, not a tensor'):
        convert.to_gluon({'w': 'x'}, expected)
    with pytest.raises(StyleTransferError, match='holds a list, not a state dict'):
        convert.to_gluon([1], expected)


@pytest.mark.parametrize('fmt', FORMATS)
@pytest.mark.parametrize('keep', [0.999, 0.5, 0.01, 60])
def test_truncated_files_are_refused(fmt, keep, tmp_path, capsys):
    arrays = {'features.0.weight': np.ones((64, 3, 3, 3), np.float32),
              'features.0.bias': np.ones(64, np.float32)}
    pth = write_pth(str(tmp_path / 'cut.pth'), state_dict(arrays), fmt)
    size = os.path.getsize(pth)
    with open(pth, 'r+b') as f:
        f.truncate(keep if isinstance(keep, int) else int(size * keep))
    with pytest.raises(StyleTransferError, match='cut.pth: .*(truncated|damaged)'):
        torchfile.read_pth(pth)
    code, _, err = run(capsys, pth, tmp_path / 'out.params')
    assert code == 2
    assert_one_line_error(err, 'cut.pth')
    assert os.listdir(str(tmp_path)) == ['cut.pth']        # no output, no temporary left


def test_storage_count_that_disagrees_is_refused(tmp_path):
    pth = write_pth(str(tmp_path / 'count.pth'), {'x': tensor_of('0', np.ones(4, np.float32))},
                    'legacy')
    with open(pth, 'rb') as f:
        data = f.read()
    count_at = len(data) - 16 - 8
    assert struct.unpack('<q', data[count_at:count_at + 8]) == (4,)
    with open(pth, 'wb') as f:
        f.write(data[:count_at] + struct.pack('<q', 1 << 60) + data[count_at + 8:])
    with pytest.raises(StyleTransferError, match='storage 0 holds 1152921504606846976 elements, '
                                                 'its tensors say 4'):
        torchfile.read_pth(pth)


@pytest.mark.parametrize('content', [b'', b'not a checkpoint at all\n', b'PK\x03\x04garbage',
                                     pickle.dumps({'a': 1}, protocol=2)])
def test_other_files_are_refused(content, tmp_path):
    path = tmp_path / 'other.pth'
    path.write_bytes(content)
    with pytest.raises(StyleTransferError, match='other.pth: '):
        torchfile.read_pth(str(path))


def test_zip_without_one_data_pkl_is_refused(tmp_path):
    path = str(tmp_path / 'plain.zip')
    with zipfile.ZipFile(path, 'w') as archive:
        archive.writestr('readme.txt', 'hello')
    with pytest.raises(StyleTransferError, match='expected one FOLDER/data.pkl, found 0'):
        torchfile.read_pth(path)


# ---------------------------------------------------------------------------- paths, report

def test_existing_output_is_kept_without_overwrite(conv_pth, tmp_path, capsys):
    _, pth = conv_pth
    out = tmp_path / 'vgg19.params'
    out.write_bytes(b'keep me')
    code, stdout, err = run(capsys, pth, out, '--features-only')
    assert (code, stdout) == (2, '')
    assert_one_line_error(err, 'vgg19.params: exists; pass --overwrite to replace it')
    assert out.read_bytes() == b'keep me'
    code, _, err = run(capsys, pth, out, '--features-only', '--overwrite')
    assert (code, err) == (0, '')
    assert len(mx.nd.load(str(out))) == 32
    assert sorted(os.listdir(str(tmp_path))) == ['vgg19.params']


def test_bad_paths_are_refused_before_reading(tmp_path, capsys):
    before = os.listdir(tmp_path.parent)
    code, _, err = run(capsys, tmp_path / 'none.pth', tmp_path / 'out.params')
    assert code == 2
    assert_one_line_error(err, 'none.pth: no such file')
    pth = tmp_path / 'in.pth'
    pth.write_bytes(b'x')
    code, _, err = run(capsys, pth, tmp_path / 'no' / 'out.params')
    assert_one_line_error(err, 'output folder does not exist')
    code, _, err = run(capsys, pth, pth, '--overwrite')
    assert_one_line_error(err, 'in.pth: output would overwrite the input')
    assert pth.read_bytes() == b'x'
    code, _, err = run(capsys, tmp_path, tmp_path / 'out.params')
    assert_one_line_error(err, 'is a directory, not a .pth file')
    code, _, err = run(capsys, pth, '')
    assert_one_line_error(err, 'the output path is empty')
    assert sorted(os.listdir(tmp_path.parent)) == sorted(before)


def test_describe_input_says_whether_it_is_torchvisions_file():
    real = 'dcbb9e9d' + '0' * 56
    other = '12345678' + '0' * 56
    assert convert.describe_input('/c/vgg19-dcbb9e9d.pth', real) == (
        "/c/vgg19-dcbb9e9d.pth: SHA-256 dcbb9e9d..., torchvision's VGG-19 file "
        "(vgg19-dcbb9e9d.pth)")
    assert convert.describe_input('renamed.pth', real).endswith("torchvision's VGG-19 file "
                                                                "(vgg19-dcbb9e9d.pth)")
    assert ('NOT the dcbb9e9d its name claims'
            in convert.describe_input('vgg19-dcbb9e9d.pth', other))
    assert convert.describe_input('mine-12345678.pth', other).endswith(
        "as its name says, not torchvision's VGG-19 file (vgg19-dcbb9e9d.pth)")
    assert convert.describe_input('mine.pth', other) == (
        "mine.pth: SHA-256 12345678..., not torchvision's VGG-19 file (vgg19-dcbb9e9d.pth)")


def test_help_names_the_shared_normalisation(capsys):
    code, stdout, _ = run(capsys, '--help')
    assert code == 0
    text = ' '.join(stdout.split())
    assert 'mean (0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225)' in text
    assert 'preprocessing unchanged' in text and '86% of the values' in text
