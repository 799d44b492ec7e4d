"""Where VGG-19 weights come from: .params files of Gluon's vgg19 in its three naming styles,
damaged or foreign files, and the model zoo's cache (never reached over the network here)."""
import hashlib
import os
import shutil
import time

import mxnet as mx
import numpy as np
import pytest
from mxnet.gluon.model_zoo import model_store, vision

from styletransfer.vgg import layers, weights
from styletransfer.errors import StyleTransferError

ALL_CONVS = sorted(layers.CONV_SHAPES)        # 0 .. 34, sixteen convolutions
DEEPEST = max(ALL_CONVS)
BOOK_ZOO_FILE = 'vgg19-ad2f660d.params'


def sha1_of(path):
    h = hashlib.sha1()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            h.update(block)
    return h.hexdigest()


def link_or_copy(src, dst):
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


@pytest.fixture(scope='module')
def vgg_files(tmp_path_factory):
    """A randomly initialised Gluon vgg19 saved three ways, and its conv tensors as numpy."""
    folder = tmp_path_factory.mktemp('vgg')
    mx.random.seed(1234)
    net = vision.vgg19()
    net.initialize(mx.init.Xavier(), ctx=mx.cpu())
    # One forward on a small input fixes every deferred shape (the classifier's first Dense
    # then takes 512 inputs instead of 25088, which the loader must not care about).
    net(mx.nd.zeros((1, 3, 32, 32)))
    paths = {
        'whole': str(folder / 'whole.params'),          # 'features.0.weight', 'output.weight'
        'features': str(folder / 'features.params'),    # '0.weight', ...
        'legacy': str(folder / 'legacy.params'),        # 'conv0_weight': the model zoo's style
    }
    net.save_parameters(paths['whole'])
    net.features.save_parameters(paths['features'])
    net.collect_params().save(paths['legacy'], strip_prefix=net.prefix)
    convs = {i: (net.features[i].weight.data().asnumpy(), net.features[i].bias.data().asnumpy())
             for i in ALL_CONVS}
    return paths, convs


def assert_same_convs(loaded, convs, indices):
    assert sorted(loaded.convs) == list(indices)
    for i in indices:
        w, b = loaded.convs[i]
        assert w.shape == layers.CONV_SHAPES[i]
        assert w.context == mx.cpu()
        np.testing.assert_array_equal(w.asnumpy(), convs[i][0])
        np.testing.assert_array_equal(b.asnumpy(), convs[i][1])


def test_file_names_in_the_fixture_are_what_gluon_writes(vgg_files):
    paths, _ = vgg_files
    assert 'features.0.weight' in mx.nd.load(paths['whole'])
    assert 'output.weight' in mx.nd.load(paths['whole'])
    assert '0.weight' in mx.nd.load(paths['features'])
    assert not any('.' in k for k in mx.nd.load(paths['legacy']))


@pytest.mark.parametrize('kind', ['whole', 'features', 'legacy'])
def test_params_file_round_trip(vgg_files, kind):
    paths, convs = vgg_files
    loaded = weights.load(paths[kind], DEEPEST)
    assert_same_convs(loaded, convs, ALL_CONVS)
    assert loaded.pretrained
    assert os.path.abspath(paths[kind]) in loaded.description


def test_params_file_only_up_to_deepest(vgg_files):
    paths, convs = vgg_files
    loaded = weights.load(paths['whole'], 28)
    assert_same_convs(loaded, convs, [0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28])


def test_missing_file(tmp_path):
    path = tmp_path / 'nope.params'
    with pytest.raises(StyleTransferError) as info:
        weights.load(str(path), 28)
    assert str(path) in str(info.value) and 'not found' in str(info.value)


def test_truncated_file(vgg_files, tmp_path):
    paths, _ = vgg_files
    path = tmp_path / 'truncated.params'
    with open(paths['features'], 'rb') as f:
        path.write_bytes(f.read(os.path.getsize(paths['features']) // 2))
    with pytest.raises(StyleTransferError) as info:
        weights.load(str(path), 28)
    message = str(info.value)
    assert str(path) in message and 'truncated' in message


def test_not_a_params_file(tmp_path):
    path = tmp_path / 'text.params'
    path.write_text('hello\n')
    with pytest.raises(StyleTransferError) as info:
        weights.load(str(path), 28)
    assert 'not a readable MXNet .params file' in str(info.value)


def test_file_of_another_network(tmp_path):
    net = vision.resnet18_v1()
    net.initialize(ctx=mx.cpu())
    net(mx.nd.zeros((1, 3, 32, 32)))
    path = tmp_path / 'resnet18.params'
    net.save_parameters(str(path))
    with pytest.raises(StyleTransferError) as info:
        weights.load(str(path), 28)
    message = str(info.value)
    # resnet's first conv is 7x7: the first VGG parameter that does not fit is features.0.weight
    assert 'features.0.weight' in message
    assert '(64, 3, 7, 7)' in message and '(64, 3, 3, 3)' in message


def test_legacy_file_of_another_network(tmp_path):
    net = vision.resnet18_v1()
    net.initialize(ctx=mx.cpu())
    net(mx.nd.zeros((1, 3, 32, 32)))
    path = tmp_path / 'resnet18-legacy.params'
    net.collect_params().save(str(path), strip_prefix=net.prefix)
    with pytest.raises(StyleTransferError) as info:
        weights.load(str(path), 28)
    assert 'do not fit Gluon vgg19' in str(info.value)


def conv_dict(vgg_files, upto=28):
    """The whole-network names of the convolutions up to `upto`, as numpy arrays."""
    _, convs = vgg_files
    d = {}
    for i in ALL_CONVS:
        if i <= upto:
            d['features.%d.weight' % i] = mx.nd.array(convs[i][0])
            d['features.%d.bias' % i] = mx.nd.array(convs[i][1])
    return d


def test_a_file_with_only_the_needed_convs_loads(vgg_files, tmp_path):
    path = str(tmp_path / 'convs.params')
    mx.nd.save(path, conv_dict(vgg_files))
    _, convs = vgg_files
    assert_same_convs(weights.load(path, 28), convs, [i for i in ALL_CONVS if i <= 28])


def test_one_mismatched_shape_is_named(vgg_files, tmp_path):
    d = conv_dict(vgg_files)
    d['features.10.weight'] = mx.nd.zeros((256, 64, 3, 3))
    path = str(tmp_path / 'mismatch.params')
    mx.nd.save(path, d)
    with pytest.raises(StyleTransferError) as info:
        weights.load(path, 28)
    message = str(info.value)
    assert 'features.10.weight' in message
    assert '(256, 64, 3, 3)' in message and '(256, 128, 3, 3)' in message
    # a mismatch beyond the deepest layer used does not matter
    assert sorted(weights.load(path, 7).convs) == [0, 2, 5, 7]


def test_non_finite_weights_and_directories_are_refused(vgg_files, tmp_path):
    d = conv_dict(vgg_files)
    poisoned = d['features.5.weight'].asnumpy()
    poisoned[3, 2, 1, 1] = np.nan
    d['features.5.weight'] = mx.nd.array(poisoned)
    path = str(tmp_path / 'nan.params')
    mx.nd.save(path, d)
    with pytest.raises(StyleTransferError, match='features.5.weight holds NaN'):
        weights.load(path, 28)
    with pytest.raises(StyleTransferError, match='is a directory, not a .params file'):
        weights.load(str(tmp_path), 28)


def test_the_first_of_two_mismatches_is_named(vgg_files, tmp_path):
    d = conv_dict(vgg_files)
    d['features.19.bias'] = mx.nd.zeros((500,))
    d['features.5.weight'] = mx.nd.zeros((128, 64, 5, 5))
    path = str(tmp_path / 'two.params')
    mx.nd.save(path, d)
    with pytest.raises(StyleTransferError) as info:
        weights.load(path, 28)
    assert 'features.5.weight' in str(info.value)
    assert 'features.19' not in str(info.value)


def test_a_missing_parameter_is_named(vgg_files, tmp_path):
    d = conv_dict(vgg_files)
    del d['features.12.bias']
    path = str(tmp_path / 'missing.params')
    mx.nd.save(path, d)
    with pytest.raises(StyleTransferError) as info:
        weights.load(path, 28)
    assert 'features.12.bias' in str(info.value)


@pytest.mark.parametrize('content', [{}, [mx.nd.zeros((3,))]])
def test_a_file_without_named_parameters(tmp_path, content):
    path = str(tmp_path / 'empty.params')
    mx.nd.save(path, content)
    with pytest.raises(StyleTransferError) as info:
        weights.load(path, 28)
    assert 'no named parameters' in str(info.value)


# --------------------------------------------------------------------------------- model zoo

@pytest.fixture
def mxnet_home(tmp_path, monkeypatch):
    home = tmp_path / 'mxnet-home'
    home.mkdir()
    monkeypatch.setenv('MXNET_HOME', str(home))
    return home


def test_zoo_file_name_is_the_books():
    assert weights.zoo_file_name() == BOOK_ZOO_FILE


def test_zoo_unreachable_and_not_cached(mxnet_home, monkeypatch):
    monkeypatch.setattr(weights, '_zoo_reachable', lambda *a, **k: False)

    def no_download(*args, **kwargs):
        raise AssertionError('must not try to download')
    monkeypatch.setattr(model_store, 'get_model_file', no_download)
    start = time.perf_counter()
    with pytest.raises(StyleTransferError) as info:
        weights.load('zoo', 28)
    assert time.perf_counter() - start < 5
    message = str(info.value)
    assert BOOK_ZOO_FILE in message
    assert '548 MB' in message
    assert os.path.join(str(mxnet_home), 'models', BOOK_ZOO_FILE) in message
    assert '--weights random' in message
    assert '--weights PATH.params' in message
    assert not os.listdir(str(mxnet_home))          # nothing was written


def test_zoo_download_failure_is_reported(mxnet_home, monkeypatch):
    monkeypatch.setattr(weights, '_zoo_reachable', lambda *a, **k: True)

    def failing(*args, **kwargs):
        raise OSError('connection reset by peer')
    monkeypatch.setattr(model_store, 'get_model_file', failing)
    with pytest.raises(StyleTransferError) as info:
        weights.load('zoo', 28)
    message = str(info.value)
    assert 'download failed' in message and 'connection reset by peer' in message
    assert BOOK_ZOO_FILE in message


def test_zoo_cached_file_with_wrong_content(mxnet_home, monkeypatch):
    monkeypatch.setattr(weights, '_zoo_reachable', lambda *a, **k: False)
    models = mxnet_home / 'models'
    models.mkdir()
    bad = models / BOOK_ZOO_FILE
    mx.nd.save(str(bad), {'features.0.weight': mx.nd.zeros((64, 3, 3, 3))})
    with pytest.raises(StyleTransferError) as info:
        weights.load('zoo', 28)
    message = str(info.value)
    assert 'SHA-1' in message and str(bad) in message
    assert bad.exists()                              # not deleted behind the user's back


def test_zoo_cached_file_with_the_right_hash_loads(vgg_files, mxnet_home, monkeypatch):
    paths, convs = vgg_files
    monkeypatch.setattr(weights, '_zoo_reachable', lambda *a, **k: False)
    digest = sha1_of(paths['whole'])
    monkeypatch.setitem(model_store._model_sha1, 'vgg19', digest)
    name = 'vgg19-%s.params' % digest[:8]
    assert weights.zoo_file_name() == name
    models = mxnet_home / 'models'
    models.mkdir()
    link_or_copy(paths['whole'], str(models / name))
    loaded = weights.load('zoo', 28)
    assert_same_convs(loaded, convs, [i for i in ALL_CONVS if i <= 28])
    assert loaded.pretrained
    assert 'model zoo' in loaded.description and name in loaded.description
