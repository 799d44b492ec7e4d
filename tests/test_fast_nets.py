"""Johnson et al.'s TransformerNet with conditional instance norm (fast/johnson.py) and the
network registry (fast/zoo.py).

The PyTorch-examples layout below is written out here from the architecture (names, shapes,
order) rather than taken from johnson.torch_name_map, and the forward pass it is checked
against is an independent NumPy one in float64: reflection padding, convolution, instance norm
with PyTorch's eps of 1e-5, ReLU, nearest upsampling.
"""
import collections
import json
import os

import numpy as np
import pytest
from mxnet import autograd, gluon, nd

from styletransfer.errors import StyleTransferError
from styletransfer.fast import conventions, johnson, zoo
from torch_pickles import FORMATS, Call, state_dict, write_pth

H, W = 32, 40               # the test image; multiples of 4 come back at the same size
EPS = 1e-5                  # torch.nn.InstanceNorm2d's


# ---------------------------------------------------------------- the PyTorch layout, by hand

def torch_layout():
    """(name, shape) of pytorch/examples' TransformerNet state dict, in its order."""
    layout = []

    def conv(name, c_in, c_out, k):
        layout.extend([(name + '.conv2d.weight', (c_out, c_in, k, k)),
                       (name + '.conv2d.bias', (c_out,))])

    def norm(name, c):
        layout.extend([(name + '.weight', (c,)), (name + '.bias', (c,))])

    conv('conv1', 3, 32, 9), norm('in1', 32)
    conv('conv2', 32, 64, 3), norm('in2', 64)
    conv('conv3', 64, 128, 3), norm('in3', 128)
    for r in range(1, 6):
        conv('res%d.conv1' % r, 128, 128, 3), norm('res%d.in1' % r, 128)
        conv('res%d.conv2' % r, 128, 128, 3), norm('res%d.in2' % r, 128)
    conv('deconv1', 128, 64, 3), norm('in4', 64)
    conv('deconv2', 64, 32, 3), norm('in5', 32)
    conv('deconv3', 32, 3, 9)
    return layout


def random_torch_state(seed, out_bias=0.0, out_gain=1.0):
    """Random values in the torch layout: He-scaled convolutions, norms near scale 1. The
    output layer can be shifted and scaled so that the 0..255 clamp has work to do."""
    rng = np.random.default_rng(seed)
    state = collections.OrderedDict()
    for name, shape in torch_layout():
        if name.endswith('conv2d.weight'):
            fan_in = np.prod(shape[1:])
            value = rng.standard_normal(shape) * np.sqrt(2 / fan_in)
        elif name.endswith('conv2d.bias'):
            value = rng.standard_normal(shape) * 0.1
        elif name.endswith('.weight'):
            value = 1 + rng.standard_normal(shape) * 0.2
        else:
            value = rng.standard_normal(shape) * 0.2
        state[name] = value.astype(np.float32)
    state['deconv3.conv2d.weight'] *= out_gain
    state['deconv3.conv2d.bias'] += out_bias
    return state


def with_running_stats(state, seed=0):
    """What torch < 0.4 saved: running_mean / running_var after every norm's affine."""
    rng = np.random.default_rng(seed)
    old = collections.OrderedDict()
    for name, value in state.items():
        old[name] = value
        if name.endswith('.bias') and 'conv2d' not in name:
            stem = name[:-len('.bias')]
            old[stem + '.running_mean'] = rng.standard_normal(value.shape).astype(np.float32)
            old[stem + '.running_var'] = rng.uniform(1, 2, value.shape).astype(np.float32)
    return old


# ---------------------------------------------------------------- an independent NumPy forward

def np_conv(x, weight, bias, stride=1):
    k = weight.shape[-1]
    p = k // 2
    x = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)), mode='reflect')
    windows = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(2, 3))
    windows = windows[:, :, ::stride, ::stride]             # N C Ho Wo k k
    return np.einsum('nchwij,ocij->nohw', windows, weight) + bias[None, :, None, None]


def np_instance_norm(x, scale, shift):
    mean = x.mean(axis=(2, 3), keepdims=True)
    var = x.var(axis=(2, 3), keepdims=True)                 # biased, as torch's
    return (x - mean) / np.sqrt(var + EPS) * scale[None, :, None, None] \
        + shift[None, :, None, None]


def np_upsample(x):
    return x.repeat(2, axis=2).repeat(2, axis=3)


def np_forward(state, x):
    s = {k: v.astype(np.float64) for k, v in state.items()}
    relu = lambda v: np.maximum(v, 0)                       # noqa: E731

    def conv(name, v, stride=1):
        return np_conv(v, s[name + '.conv2d.weight'], s[name + '.conv2d.bias'], stride)

    def norm(name, v):
        return np_instance_norm(v, s[name + '.weight'], s[name + '.bias'])

    y = relu(norm('in1', conv('conv1', x.astype(np.float64))))
    y = relu(norm('in2', conv('conv2', y, 2)))
    y = relu(norm('in3', conv('conv3', y, 2)))
    for r in range(1, 6):
        res = 'res%d' % r
        inner = relu(norm(res + '.in1', conv(res + '.conv1', y)))
        y = norm(res + '.in2', conv(res + '.conv2', inner)) + y
    y = relu(norm('in4', conv('deconv1', np_upsample(y))))
    y = relu(norm('in5', conv('deconv2', np_upsample(y))))
    return conv('deconv3', y)


def image(seed, n=1):
    return np.random.default_rng(seed).uniform(0, 255, (n, 3, H, W)).astype(np.float32)


def assert_close(got, expected, rel=1e-3):
    scale = np.abs(expected).max()
    assert scale > 1
    np.testing.assert_allclose(got, expected, rtol=rel, atol=rel * scale)


@pytest.fixture(scope='module')
def torch_state():
    return random_torch_state(1, out_bias=120.0, out_gain=200.0)


@pytest.fixture(scope='module')
def reference(torch_state):
    x = image(2)
    return x, np_forward(torch_state, x)


# -------------------------------------------------------------------- the reference itself

def test_numpy_helpers_by_hand():
    # reflection padding does not repeat the edge: [1 2 3] padded by 1 is [2 1 2 3 2]
    x = np.array([1.0, 2, 3]).reshape(1, 1, 1, 3).repeat(3, axis=2)
    weight = np.zeros((1, 1, 3, 3))
    weight[0, 0, 1, 0] = 1                              # picks the left neighbour
    np.testing.assert_array_equal(np_conv(x, weight, np.zeros(1))[0, 0, 0], [2, 1, 2])
    np.testing.assert_array_equal(np_upsample(np.array([[[[1, 2]]]])), [[[[1, 1, 2, 2]] * 2]])
    normed = np_instance_norm(np.array([[[[1.0, 3.0]]]]), np.array([2.0]), np.array([1.0]))
    np.testing.assert_allclose(normed, [[[[1 - 2 / np.sqrt(1 + EPS), 1 + 2 / np.sqrt(1 + EPS)]]]])


def test_our_names_are_the_pytorch_layout_by_a_fixed_map():
    layout = torch_layout()
    assert len(layout) == 4 * 3 + 8 * 5 + 4 * 2 + 2 == 62
    mapping = johnson.torch_name_map()
    assert list(mapping) == [name for name, _ in layout]        # same names, same order
    ours = johnson.expected_shapes(1)
    for name, shape in layout:
        target, is_row = mapping[name]
        assert ours[target] == ((1,) + shape if is_row else shape), name
    assert mapping['in4.weight'] == ('in4.gamma', True)
    assert mapping['res1.in1.bias'] == ('res1.in1.beta', True)
    assert mapping['deconv3.conv2d.weight'] == ('deconv3.conv2d.weight', False)
    assert johnson.expected_shapes(4)['res5.in2.gamma'] == (4, 128)


# ----------------------------------------------------------------- PyTorch files through zoo

@pytest.mark.parametrize('fmt', FORMATS)
def test_a_pytorch_file_loads_and_matches_the_numpy_forward(fmt, torch_state, reference,
                                                            tmp_path):
    path = write_pth(str(tmp_path / 'candy.pth'), state_dict(torch_state), fmt)
    net = zoo.get_net(path)
    assert (net.kind, net.n_styles, net.style_names, net.convention) == (
        'johnson', 1, ['candy'], 'rgb255')
    x, expected = reference
    got = net.block(nd.array(x), net.weights()).asnumpy()
    assert got.shape == (1, 3, H, W)
    assert_close(got, expected)
    # hybridised, as it runs for real
    net.block.hybridize(static_alloc=True, static_shape=True)
    assert_close(net.block(nd.array(x), net.weights()).asnumpy(), expected)


def test_the_pytorch_convention_is_0_to_255_in_and_clamped_out(torch_state, reference,
                                                               tmp_path):
    path = write_pth(str(tmp_path / 'mosaic.pth'), state_dict(torch_state), 'zip')
    net = zoo.get_net(path)
    x, expected = reference
    assert (expected < 0).mean() > 0.05 and (expected > 255).mean() > 0.05   # both clamps work
    got = net.stylise(nd.array(x)).asnumpy()
    assert_close(got, np.clip(expected, 0, 255))
    assert got.min() == 0 and got.max() == 255


def test_running_stats_of_old_files_are_dropped(torch_state, reference, tmp_path):
    old = with_running_stats(torch_state)
    assert sum(name.endswith('running_var') for name in old) == 15
    path = write_pth(str(tmp_path / 'udnie.pth'), state_dict(old), 'legacy')
    net = zoo.get_net(path)
    x, expected = reference
    assert_close(net.block(nd.array(x), net.weights()).asnumpy(), expected)
    names = net.block._collect_params_with_prefix()
    assert not [n for n in names if 'running' in n]


def test_a_malicious_pickle_is_refused_and_never_runs(torch_state, tmp_path):
    marker = tmp_path / 'ran'
    obj = state_dict(torch_state)
    obj['in1.bias'] = Call('os', 'system', 'touch %s' % marker)
    path = write_pth(str(tmp_path / 'evil.pth'), obj, 'zip')
    with pytest.raises(StyleTransferError, match=r'evil\.pth: refusing to load os\.system'):
        zoo.get_net(path)
    assert not marker.exists()


@pytest.mark.parametrize('change, message', [
    (lambda s: s.pop('res3.in2.bias'), r'not a fast_neural_style TransformerNet: missing '
                                       r'res3\.in2\.bias$'),
    (lambda s: s.__setitem__('in3.weight', np.ones(64, np.float32)),
     r'in3\.weight has shape \(64,\), expected \(128,\)$'),
    (lambda s: s.__setitem__('conv2.conv2d.weight', np.ones((64, 32, 5, 5), np.float32)),
     r'conv2\.conv2d\.weight has shape \(64, 32, 5, 5\), expected \(64, 32, 3, 3\)$'),
    (lambda s: s.__setitem__('fc.weight', np.ones(3, np.float32)),
     r'unexpected parameter fc\.weight$'),
])
def test_a_foreign_state_dict_names_its_first_wrong_parameter(torch_state, change, message,
                                                              tmp_path):
    state = collections.OrderedDict(torch_state)
    change(state)
    path = write_pth(str(tmp_path / 'foreign.pth'), state_dict(state), 'zip')
    with pytest.raises(StyleTransferError, match=message) as info:
        zoo.get_net(path)
    assert '\n' not in str(info.value) and 'foreign.pth' in str(info.value)


def test_a_vgg_file_is_not_a_transformer(tmp_path):
    state = {'features.0.weight': np.ones((64, 3, 3, 3), np.float32)}
    path = write_pth(str(tmp_path / 'vgg.pth'), state_dict(state), 'zip')
    with pytest.raises(StyleTransferError, match='missing conv1.conv2d.weight'):
        zoo.get_net(path)


@pytest.mark.parametrize('fmt', FORMATS)
def test_truncated_and_missing_files(fmt, torch_state, tmp_path):
    path = write_pth(str(tmp_path / 'rain_princess.pth'), state_dict(torch_state), fmt)
    with open(path, 'rb+') as f:
        f.truncate(os.path.getsize(path) // 2)
    with pytest.raises(StyleTransferError, match='rain_princess.pth: .*(truncat|damaged)') as e:
        zoo.get_net(path)
    assert '\n' not in str(e.value)
    with pytest.raises(StyleTransferError, match='nowhere.pth: no such file'):
        zoo.get_net(str(tmp_path / 'nowhere.pth'))


# ---------------------------------------------------------------- conditional instance norm

def cin_net(n_styles, seed=3, convention='imagenet'):
    net = johnson.TransformerNet(n_styles, convention)
    net.initialize_weights(seed=seed)
    rng = np.random.default_rng(seed)
    for norm in net.norms().values():
        c = norm.channels
        norm.gamma.set_data(nd.array(1 + 0.3 * rng.standard_normal((n_styles, c))))
        norm.beta.set_data(nd.array(0.3 * rng.standard_normal((n_styles, c))))
    return net


def single_style_copy(net, rows):
    """A one-style network with `net`'s convolutions and, in every norm, the given (scale,
    shift) row made from each norm's tables by `rows(scale_table, shift_table)`."""
    copy = johnson.TransformerNet(1)
    copy.initialize()
    ours = net.canonical_state()
    for name, param in copy._collect_params_with_prefix().items():
        owner, _, leaf = name.rpartition('.')
        if leaf in ('gamma', 'beta'):
            scale, shift = ours[owner + '.gamma'], ours[owner + '.beta']
            param.set_data(rows(scale, shift)[leaf == 'beta'].reshape((1, -1)))
        else:
            param.set_data(ours[name])
    return copy


def test_two_styles_differ_and_each_is_its_own_single_style_network():
    net = cin_net(2)
    x = nd.array(image(4) / 255 - 0.5)
    outs = [net(x, johnson.style_weights(2, i)).asnumpy() for i in (0, 1)]
    assert np.abs(outs[0] - outs[1]).mean() > 0.05 * np.abs(outs[0]).mean()
    for i in (0, 1):
        alone = single_style_copy(net, lambda s, b, i=i: (s[i], b[i]))
        np.testing.assert_allclose(alone(x, nd.ones((1, 1))).asnumpy(), outs[i], rtol=1e-4,
                                   atol=1e-4)


def test_a_mix_uses_the_mean_of_the_rows():
    net = cin_net(3)
    x = nd.array(image(5) / 255 - 0.5)
    weights = johnson.style_weights(3, {0: 2.0, 2: 2.0})     # normalised to 0.5 / 0.5
    np.testing.assert_array_equal(weights.asnumpy(), [[0.5, 0, 0.5]])
    mixed = net(x, weights).asnumpy()
    mean_rows = single_style_copy(net, lambda s, b: ((s[0] + s[2]) / 2, (b[0] + b[2]) / 2))
    np.testing.assert_allclose(mean_rows(x, nd.ones((1, 1))).asnumpy(), mixed, rtol=1e-4,
                               atol=1e-4)
    # a batch with a different style per sample is the samples run one by one
    batch = net(nd.concat(x, x, dim=0), nd.array([[1, 0, 0], [0.5, 0, 0.5]])).asnumpy()
    np.testing.assert_allclose(batch[0], net(x, johnson.style_weights(3, 0)).asnumpy()[0],
                               rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(batch[1], mixed[0], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize('mode', ['predict', 'train'])
def test_the_narrow_convolution_is_the_plain_one_forward_and_backward(mode):
    """NarrowConv2D (two fast convolutions for a 9x9 one with 3 outputs) against MXNet's
    plain convolution, in both modes (training mode is where slicing oneDNN's blocked layout at
    a channel offset crashed), values and gradients."""
    import mxnet as mx
    rng = np.random.default_rng(8)
    narrow = johnson.NarrowConv2D(3, 9, 1, 32)
    narrow.initialize()
    weight = nd.array(rng.normal(0, 0.05, (3, 32, 9, 9)))
    bias = nd.array([0.5, -1.0, 2.0])
    narrow.weight.set_data(weight)
    narrow.bias.set_data(bias)
    narrow.hybridize(static_alloc=True, static_shape=True)
    x = nd.array(rng.uniform(-1, 1, (2, 32, 21, 30)))
    x.attach_grad()
    upstream = nd.array(rng.standard_normal((2, 3, 13, 22)))
    with (autograd.train_mode() if mode == 'train' else autograd.predict_mode()):
        with autograd.record():
            got = narrow(x)
        got.backward(upstream)
    grads = x.grad.asnumpy(), narrow.weight.grad().asnumpy(), narrow.bias.grad().asnumpy()
    w, b = weight.copy(), bias.copy()
    for v in (x, w, b):
        v.attach_grad()
    with autograd.record():
        plain = nd.Convolution(x, w, b, kernel=(9, 9), num_filter=3)
    plain.backward(upstream)
    np.testing.assert_allclose(got.asnumpy(), plain.asnumpy(), rtol=1e-4, atol=1e-4)
    for ours, expected in zip(grads, (x.grad, w.grad, b.grad)):
        expected = expected.asnumpy()
        np.testing.assert_allclose(ours, expected, rtol=1e-4,
                                   atol=1e-4 * np.abs(expected).max())
    assert mx.cpu() == got.context


@pytest.mark.parametrize('ctx_id', [0, 1])
def test_one_picture_runs_the_network_with_batch_norms_and_the_same_numbers(ctx_id):
    """OnePicture (the norms as oneDNN's BatchNorm with fused ReLU, what FastStylizer runs)
    gives the network's own output for a mix of styles, on the network's device (cpu(1)
    stands in for another device), in any autograd mode, and refuses a batch."""
    import mxnet as mx
    ctx = mx.cpu(ctx_id)
    net = cin_net(3)
    net.collect_params().reset_ctx(ctx)
    x = nd.array(image(6) / 255 - 0.5, ctx=ctx)
    weights = johnson.style_weights(3, {0: 0.3, 2: 0.7}, ctx=ctx)
    expected = net(x, weights).asnumpy()
    one = johnson.OnePicture(net, ctx)
    one.hybridize(static_alloc=True, static_shape=True)
    for mode in (autograd.predict_mode, autograd.train_mode):
        with mode():
            got = one(x, weights)
        assert got.context == ctx
        np.testing.assert_allclose(got.asnumpy(), expected, rtol=1e-4,
                                   atol=1e-4 * np.abs(expected).max())
    assert all(p.list_ctx() == [ctx] for p in one.collect_params().values())
    assert net(x, weights).context == ctx       # the network itself still runs as before
    with pytest.raises(ValueError, match='one picture at a time'):
        one(nd.concat(x, x, dim=0), nd.concat(weights, weights, dim=0))


@pytest.mark.parametrize('choice, message', [(3, 'styles 0..2'), ({1: -1.0}, 'must be finite'),
                                             ({0: 0.0}, 'sum to 0')])
def test_bad_style_weights_are_refused(choice, message):
    with pytest.raises(StyleTransferError, match=message):
        johnson.style_weights(3, choice)


def test_export_and_imports_give_the_same_output(tmp_path):
    net = cin_net(2)
    net.hybridize(static_alloc=True)
    x, w = nd.array(image(6) / 255 - 0.5), nd.array([[0.25, 0.75]])
    expected = net(x, w).asnumpy()
    prefix = str(tmp_path / 'two')
    meta = zoo.export_net(net, prefix, style_names=['a', 'b'], loss_network='random VGG')
    assert sorted(os.listdir(tmp_path)) == ['two-0000.params', 'two-meta.json',
                                            'two-symbol.json']
    imported = gluon.SymbolBlock.imports(prefix + '-symbol.json', ['data0', 'data1'],
                                         prefix + '-0000.params')
    np.testing.assert_allclose(imported(x, w).asnumpy(), expected, rtol=1e-5, atol=1e-5)
    loaded = zoo.get_net(prefix + '-symbol.json')
    assert (loaded.n_styles, loaded.style_names, loaded.convention) == (2, ['a', 'b'],
                                                                        'imagenet')
    assert meta['loss_network'] == loaded.loss_network == 'random VGG'
    np.testing.assert_allclose(loaded.block(x, loaded.weights({'b': 3, 'a': 1})).asnumpy(),
                               expected, rtol=1e-5, atol=1e-5)
    assert zoo.get_net(prefix + '-0000.params').source == prefix + '-symbol.json'


def test_a_plain_gluon_export_needs_its_convention_said(tmp_path):
    net = cin_net(3)
    net.hybridize()
    x = nd.array(image(7) / 255)
    expected = net(x, johnson.style_weights(3, 1)).asnumpy()
    net.export(str(tmp_path / 'plain'))
    with pytest.raises(StyleTransferError, match='no plain-meta.json beside it'):
        zoo.get_net(str(tmp_path / 'plain-symbol.json'))
    loaded = zoo.get_net(str(tmp_path / 'plain-symbol.json'), convention='rgb01')
    assert (loaded.n_styles, loaded.convention) == (3, 'rgb01')
    np.testing.assert_allclose(loaded.block(x, loaded.weights(1)).asnumpy(), expected,
                               rtol=1e-5, atol=1e-5)
    with open(str(tmp_path / 'plain-symbol.json'), 'r+') as f:
        f.truncate(500)
    with pytest.raises(StyleTransferError, match='plain-symbol.json: damaged, truncated'):
        zoo.get_net(str(tmp_path / 'plain-symbol.json'), convention='rgb01')


def test_adding_a_style_trains_only_the_new_rows(torch_state, tmp_path):
    net = zoo.get_net(write_pth(str(tmp_path / 'candy.pth'), state_dict(torch_state), 'zip'))
    block = net.block
    block.hybridize()
    x = nd.array(image(8))
    before_add = block(x, nd.ones((1, 1))).asnumpy()
    old = {name: p.data().asnumpy().copy()
           for name, p in block._collect_params_with_prefix().items()}
    block.add_styles(1)
    assert block.n_styles == 2
    new = {name: p for name, p in block._collect_params_with_prefix().items() if name not in old}
    assert sorted(new) == sorted('%s.%s_added1' % (norm, leaf) for norm in block.norms()
                                 for leaf in ('gamma', 'beta'))
    # new rows start as the mean of the old ones (here the one row): the same picture
    np.testing.assert_allclose(block(x, nd.array([[0, 1]])).asnumpy(), before_add, rtol=1e-5,
                               atol=1e-3)
    # momentum and weight decay would move any parameter the trainer touched
    trainer = gluon.Trainer(block.collect_params(), 'sgd',
                            {'learning_rate': 0.1, 'momentum': 0.9, 'wd': 0.1})
    for _ in range(2):
        with autograd.record():
            loss = (block(x, nd.array([[0, 1]])) / 255).square().mean()
        loss.backward()
        trainer.step(1)
    for name, value in old.items():
        np.testing.assert_array_equal(block._collect_params_with_prefix()[name].data().asnumpy(),
                                      value, err_msg=name)
    moved = [name for name, p in new.items()
             if np.abs(p.data().asnumpy() - old[name.replace('_added1', '')]).max() > 1e-4]
    assert sorted(moved) == sorted(new)
    # style 0 still gives what it gave; saving joins the tables and loads as one group
    np.testing.assert_allclose(block(x, nd.array([[1, 0]])).asnumpy(), before_add, rtol=1e-5,
                               atol=1e-3)
    mixed = block(x, nd.array([[0.3, 0.7]])).asnumpy()
    path = str(tmp_path / 'grown.params')
    zoo.save_net(block, path, style_names=['candy', 'mine'], loss_network='VGG-16 + ours')
    again = zoo.get_net(path)
    assert (again.n_styles, again.style_names, again.convention) == (2, ['candy', 'mine'],
                                                                     'rgb255')
    assert [g[:2] for g in again.block.in1.groups] == [('gamma', 'beta')]
    np.testing.assert_allclose(again.block.in1.gamma.data().asnumpy(),
                               np.concatenate([old['in1.gamma'],
                                               new['in1.gamma_added1'].data().asnumpy()]))
    np.testing.assert_allclose(again.block(x, again.weights({'candy': 0.3, 'mine': 0.7}))
                               .asnumpy(), mixed, rtol=1e-5, atol=1e-3)


# ----------------------------------------------------------------------- our own .params

def test_own_params_round_trip_with_metadata(tmp_path):
    net = cin_net(2)
    x = nd.array(image(9) / 255 - 0.5)
    expected = net(x, nd.array([[0.5, 0.5]])).asnumpy()
    path = str(tmp_path / 'ours.params')
    zoo.save_net(net, path, style_names=['s', 't'], loss_network='VGG-19 zoo',
                 extra={'style_loss': 'mean-std'})
    assert [f for f in os.listdir(tmp_path)] == ['ours.params']    # no temporary left over
    stored = nd.load(path)
    meta = json.loads(stored[zoo.META_KEY].asnumpy().tobytes())
    assert meta == {'format': zoo.FORMAT, 'version': 1, 'kind': 'johnson', 'n_styles': 2,
                    'style_names': ['s', 't'], 'convention': 'imagenet',
                    'loss_network': 'VGG-19 zoo', 'extra': {'style_loss': 'mean-std'}}
    loaded = zoo.get_net(path)
    assert (loaded.kind, loaded.extra) == ('johnson', {'style_loss': 'mean-std'})
    np.testing.assert_allclose(loaded.block(x, loaded.weights({'s': 1, 't': 1})).asnumpy(),
                               expected, rtol=1e-6, atol=1e-6)
    # by name from a folder
    assert zoo.list_nets(str(tmp_path)) == {'ours': path}
    assert zoo.get_net('ours', root=str(tmp_path)).style_names == ['s', 't']
    with pytest.raises(StyleTransferError, match="no network named 'theirs'.*found: ours"):
        zoo.get_net('theirs', root=str(tmp_path))


def test_damaged_own_files_are_refused_in_one_line(tmp_path):
    net = cin_net(1)
    path = str(tmp_path / 'net.params')
    zoo.save_net(net, path)
    with open(path, 'rb+') as f:
        f.truncate(os.path.getsize(path) - 1000)
    with pytest.raises(StyleTransferError, match=r'net\.params: damaged, truncated') as e:
        zoo.get_net(path)
    assert '\n' not in str(e.value)
    # a Gluon .params without our metadata, and one of the wrong shapes
    plain = str(tmp_path / 'plain.params')
    net.save_parameters(plain)
    with pytest.raises(StyleTransferError, match='without __meta__'):
        zoo.get_net(plain)
    arrays = {k: v for k, v in nd.load(plain).items()}
    arrays['in2.gamma'] = nd.ones((1, 32))
    arrays[zoo.META_KEY] = nd.array(np.frombuffer(json.dumps(
        {'format': zoo.FORMAT, 'version': 1, 'kind': 'johnson', 'n_styles': 1,
         'style_names': ['x'], 'convention': 'imagenet'}).encode(), np.uint8), dtype='uint8')
    nd.save(plain, arrays)
    with pytest.raises(StyleTransferError, match=r'in2\.gamma has shape \(1, 32\), expected '
                                                 r'\(1, 64\)'):
        zoo.get_net(plain)


def test_conventions_map_pixels_both_ways():
    pixels = nd.array([[[[0.0]], [[127.5]], [[255.0]]]])
    for name in conventions.CONVENTIONS:
        back = conventions.from_output(conventions.to_input(pixels, name), name)
        np.testing.assert_allclose(back.asnumpy(), pixels.asnumpy(), atol=1e-3)
    np.testing.assert_allclose(conventions.to_input(pixels, 'rgb255').asnumpy().ravel(),
                               [0, 127.5, 255], rtol=1e-6)
    imagenet = conventions.to_input(pixels, 'imagenet').asnumpy().ravel()
    np.testing.assert_allclose(imagenet, [-0.485 / 0.229, (0.5 - 0.456) / 0.224,
                                          (1 - 0.406) / 0.225], rtol=1e-5)
    with pytest.raises(StyleTransferError, match='unknown pixel convention'):
        conventions.get('bgr')
