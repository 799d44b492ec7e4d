"""Video stylisation tied frame to frame: the temporal term in the optimisation's graph, the
feed-forward blend, the warping error they bring down, and a run that resumes from its stored
frames. Random VGG weights (nothing pretrained exists here), on a panned textured clip."""
import mxnet as mx
import numpy as np
import pytest

import styletransfer as st
from styletransfer.video import flow as fl
from styletransfer.video import io as vio
from styletransfer.video import stylize as vs
from styletransfer.video import synthetic as syn

CTX = mx.cpu(1)
SIZE = (64, 48)
# Random features carry little style; these weights make the style term move the picture (as
# the README's gallery does), so that frames stylised one by one disagree.
SETTINGS = st.Settings(stages=['64x48:25:1000:0.05'], style_weight=1e9, tv_weight=1.0)


@pytest.fixture(scope='module')
def clip():
    return syn.panning_frames(5, SIZE, texture='noise', pan=(2.0, 1.0), seed=3)


@pytest.fixture(scope='module')
def stylizer():
    return st.Stylizer(st.Network(weights='random'), ctx=CTX)


def style_picture():
    rng = np.random.RandomState(9)
    return np.kron(rng.randint(0, 256, (12, 16, 3)), np.ones((4, 4, 1))).astype(np.uint8)


def frames_of(pictures):
    return [vio.Frame(i, i / 25.0, p) for i, p in enumerate(pictures)]


def test_the_temporal_term_is_the_masked_difference_from_the_warped_previous_result(stylizer,
                                                                                   clip):
    previous = stylizer.stylize(st.Inputs(clip[0], style_picture()), SETTINGS).picture
    backward, mask = fl.motion(clip[0], clip[1])
    assert mask.mean() > 0.5
    term = vs.temporal_term(previous, backward, mask, 100.0)
    # Starting from the content, the first iteration measures the content against the warped
    # previous result; the same number in numpy (cv2's warp rounds its weights to 1/32 pixel).
    run = stylizer.start(st.Inputs(clip[1], style_picture()), SETTINGS, extra_terms=[term])
    first = next(iter(run))
    norm = stylizer.normalizer
    x = norm.preprocess(clip[1], *SIZE).asnumpy()[0].transpose(1, 2, 0)
    warped = norm.preprocess(fl.warp(previous, backward), *SIZE).asnumpy()[0].transpose(1, 2, 0)
    expected = 100.0 * ((x - warped) ** 2 * mask[..., None]).mean()
    assert first.terms['temporal'] == pytest.approx(expected, rel=0.02)
    assert first.total == pytest.approx(sum(first.terms.values()), rel=1e-5)
    # Starting from the warped previous result instead, the term starts near zero.
    run = stylizer.start(st.Inputs(clip[1], style_picture(), init=fl.warp(previous, backward)),
                         SETTINGS, extra_terms=[term])
    assert next(iter(run)).terms['temporal'] < 0.01 * expected


def test_the_temporal_term_halves_the_warping_error_of_the_optimisation(stylizer, clip,
                                                                         tmp_path):
    errors = {}
    for weight in (0.0, 200.0):
        method = vs.GatysFrames(stylizer, SETTINGS, {'style': style_picture()}, weight)
        store = vio.FrameStore(tmp_path / ('w%g' % weight))
        events = list(vs.stylize_frames(frames_of(clip), method, store, len(clip)))
        assert [e.index for e in events] == list(range(len(clip)))
        out = [store.load(i) for i in range(len(clip))]
        errors[weight] = fl.warping_error(out, clip)
    assert errors[200.0] <= 0.5 * errors[0.0], errors


def test_the_feed_forward_blend_brings_flicker_down_and_weight_0_is_frame_by_frame(clip,
                                                                                  tmp_path):
    rng = np.random.RandomState(0)

    def flickering(frame):          # a network whose output jitters from frame to frame
        noise = rng.normal(0, 20, frame.shape)
        return np.clip(frame.astype(float) + noise, 0, 255).astype(np.uint8)
    errors, outputs = {}, {}
    for weight in (0.0, 0.8):
        store = vio.FrameStore(tmp_path / ('f%g' % weight))
        list(vs.stylize_frames(frames_of(clip), vs.FeedForwardFrames(flickering, weight), store))
        outputs[weight] = [store.load(i) for i in range(len(clip))]
        errors[weight] = fl.warping_error(outputs[weight], clip)
    assert errors[0.8] < 0.3 * errors[0.0], errors
    with pytest.raises(st.StyleTransferError, match='temporal_weight'):
        vs.FeedForwardFrames(flickering, 1.5)


def test_an_interrupted_run_keeps_its_frames_and_resumes_the_chain(clip, tmp_path):
    calls = []

    def method_stylize(frame):
        calls.append(1)
        return 255 - frame           # deterministic
    method = vs.FeedForwardFrames(method_stylize, 0.5)
    full = vio.FrameStore(tmp_path / 'full')
    list(vs.stylize_frames(frames_of(clip), method, full))
    calls.clear()
    part = vio.FrameStore(tmp_path / 'part')
    stopped = list(vs.stylize_frames(frames_of(clip), method, part,
                                     stop=lambda: len(calls) >= 2))
    assert [e.index for e in stopped] == [0, 1] and part.done() == [0, 1]
    calls.clear()
    again = list(vs.stylize_frames(frames_of(clip), method, part))
    assert [e.kept for e in again] == [True, True, False, False, False] and len(calls) == 3
    for i in range(len(clip)):
        np.testing.assert_array_equal(part.load(i), full.load(i))


# ---------------------------------------------------------------- chunks for several machines

def test_chunks_split_at_cuts_and_every_k_frames_warming_up_inside_a_shot():
    from styletransfer.video import chunks
    assert chunks.plan(10, 4, 1) == [chunks.Chunk(0, 0, 4), chunks.Chunk(3, 4, 8),
                                     chunks.Chunk(7, 8, 10)]
    # a cut at 6: no warm-up across it, and a new chunk starts there
    assert chunks.plan(10, 4, 2, cuts=[6]) == [chunks.Chunk(0, 0, 4), chunks.Chunk(2, 4, 6),
                                               chunks.Chunk(6, 6, 10)]
    a = syn.panning_frames(3, SIZE, texture='noise', seed=1)
    b = syn.panning_frames(3, SIZE, texture='noise', seed=2)
    assert chunks.scene_cuts(a + b) == [3]


def test_a_chunk_keeps_what_a_run_started_at_its_warm_up_frame_makes(clip):
    from styletransfer.batch import methods
    from styletransfer.fast import johnson, zoo
    from styletransfer.video import chunks
    import tempfile
    net = johnson.TransformerNet(1)
    net.initialize_weights(seed=2)
    net(mx.nd.zeros((1, 3, 16, 16)), johnson.style_weights(1, 0))
    with tempfile.TemporaryDirectory() as folder:
        model = folder + '/net.params'
        zoo.save_net(net, model, style_names=['test'], loss_network='random (test)')
        spec = methods.Spec('fast', methods.NetworkModel(model), 'cpu', None)
        chunk = chunks.Chunk(1, 3, 5)
        out = chunks.stylize_chunk([chunks.png(f) for f in clip[1:5]], chunk, spec,
                                   st.FastSettings(), None, 0.6)
        fast = st.FastStylizer(model, ctx='cpu')
        method = vs.FeedForwardFrames(lambda f: fast.picture(f, st.FastSettings()), 0.6)
        store = vio.FrameStore(folder + '/run')
        list(vs.stylize_frames(frames_of(clip[1:5]), method, store))
        expected = [store.load(2), store.load(3)]      # frames 3 and 4 of the clip
    assert len(out['frames']) == 2
    for data, picture in zip(out['frames'], expected):
        np.testing.assert_array_equal(chunks.unpng(data), picture)
