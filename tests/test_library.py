"""The library's public face: `stylize`, `Stylizer.start` and its `Run` (events, stop from another
thread, state and resume, divergence), on cpu(1) with the contexts of its arrays asserted, and
the same pictures as the command line for every control."""
import json
import os
import pickle
import subprocess
import sys
import threading

import mxnet as mx
import numpy as np
import pytest
from mxnet import image as mximage, nd
from PIL import Image

import styletransfer as st
from styletransfer import events
from styletransfer.cli import train
from styletransfer.gatys import optimise
from styletransfer.images import RGB_MEAN, RGB_STD
from conftest import picture

CTX = mx.cpu(1)
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TWO_STAGES = ['32x24:4:2', '48x36:3:1']




CONTENT, STYLE = picture(40, 30, 1), picture(30, 45, 2)


@pytest.fixture(scope='module')
def stylizer():
    return st.Stylizer(st.Network(weights='random'), ctx=CTX)


def test_importing_the_package_loads_no_mxnet():
    code = ('import sys, styletransfer as st; st.Settings(); st.Network(); st.Inputs("a", "b"); '
            'print("mxnet" in sys.modules)')
    done = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                          cwd=REPO, timeout=60)
    assert done.stdout.strip() == 'False', done.stderr


def test_a_bad_field_is_named_before_anything_slow():
    cases = [(dict(content_weight=-1), 'content_weight'), (dict(stages=['64x48:ten:5']), 'stages'),
             (dict(style_layers='conv9_9'), 'style_layers'), (dict(optimizer='sgd'), 'optimizer'),
             (dict(preserve_colors='sepia'), 'preserve_colors'), (dict(dtype='int8'), 'dtype'),
             (dict(lr='fast'), 'lr'), (dict(region='nomask'), 'region'),
             (dict(style_blend='a.jpg:heavy'), 'style_blend'), (dict(colour='red'), 'colour')]
    for options, field in cases:
        with pytest.raises(st.StyleTransferError) as e:
            st.stylize(CONTENT, STYLE, weights='random', ctx='cpu:1', **options)
        assert e.value.field == field and field in str(e.value), options
    with pytest.raises(st.StyleTransferError) as e:
        st.stylize(CONTENT, STYLE, weights='random', stages=['8x8:1:1'])
    assert e.value.field == 'stages' and 'conv5_1' in str(e.value)
    # Strings as the command line gives them, and typed values, make the same objects.
    assert st.Settings(stages=['225x150:500:200', '450x300:300:100']) == st.Settings()
    assert st.Settings(content_weight='2', style_layer_weights='1,2,1,1,1') == st.Settings(
        content_weight=2.0, style_layer_weights=(1, 2, 1, 1, 1))
    assert st.Network(style_layers='conv1_1,conv2_1') == st.Network(style_layers=(0, 5))
    assert st.Settings.from_dict(json.loads(json.dumps(st.Settings().to_dict()))) == \
        st.Settings()


def test_two_stages_through_stylize(stylizer):
    seen = []
    result = st.stylize(CONTENT, STYLE, weights='random', stages=TWO_STAGES, ctx=CTX,
                        callback=lambda run, event: seen.append((run, event)))
    assert isinstance(result, st.Result) and not result.stopped
    assert result.picture.shape == (36, 48, 3) and result.picture.dtype == np.uint8
    assert [p.shape for p in result.stage_pictures] == [(24, 32, 3), (36, 48, 3)]
    np.testing.assert_array_equal(result.picture, result.stage_pictures[-1])
    assert [(p.stage, p.iteration) for p in result.history] == [
        (1, 0), (1, 1), (1, 2), (1, 3), (2, 0), (2, 1), (2, 2)]
    assert 'NOT pretrained' in result.weights
    kinds = [type(e).__name__ for _, e in seen]
    assert kinds == ['Progress'] * 4 + ['StageDone'] + ['Progress'] * 3 + ['StageDone']
    assert all(isinstance(r, st.Run) for r, _ in seen)
    # The same run through a Stylizer built once gives the same picture.
    again = stylizer.stylize(st.Inputs(CONTENT, STYLE), st.Settings(stages=TWO_STAGES))
    np.testing.assert_array_equal(again.picture, result.picture)


def test_events_are_plain_data_that_pickle_and_serialise(stylizer):
    run = stylizer.start(st.Inputs(CONTENT, STYLE), st.Settings(stages=['32x24:3:1']))
    seen = list(run)
    progress, done = seen[1], seen[-1]
    assert isinstance(progress, st.Progress) and isinstance(done, st.StageDone)
    for event in seen + [run.result]:
        for value in vars(event).values():
            assert not isinstance(value, (nd.NDArray, mx.gluon.Trainer))
        copy = pickle.loads(pickle.dumps(event))
        text = json.dumps(events.to_json(event))
        back = events.from_json(json.loads(text))
        assert type(back) is type(event)
        if isinstance(event, st.Progress):
            assert copy == event and back == event
    np.testing.assert_array_equal(events.from_json(events.to_json(done)).picture, done.picture)
    assert progress.lr == 0.01 and progress.new_lr == pytest.approx(1e-3)
    assert set(progress.terms) == {'content', 'style', 'tv'}
    assert progress.total == pytest.approx(sum(progress.terms.values()), rel=1e-5)
    lbfgs = list(stylizer.start(st.Inputs(CONTENT, STYLE),
                                st.Settings(stages=['32x24:2:1'], optimizer='lbfgs')))
    assert [e.lr for e in lbfgs if isinstance(e, st.Progress)] == [None, None]


def test_the_pipeline_keeps_every_array_on_the_runs_context(stylizer):
    assert stylizer.ctx == CTX
    assert {p.list_ctx()[0] for p in stylizer.extractor.collect_params().values()} == {CTX}
    norm = stylizer.normalizer
    assert norm.mean.context == CTX and norm.std.context == CTX
    x = norm.preprocess(CONTENT, 32, 24)
    assert x.context == CTX and x.shape == (1, 3, 24, 32)
    resized = mximage.imresize(nd.array(CONTENT, dtype='uint8'), 32, 24).asnumpy() / 255.0
    expected = ((resized - np.array(RGB_MEAN)) / np.array(RGB_STD)).transpose(2, 0, 1)[None]
    np.testing.assert_allclose(x.asnumpy(), expected, rtol=1e-5, atol=1e-5)
    assert norm.postprocess(x).context == CTX
    content_x, contents, grams = optimise.targets(stylizer.extractor, norm, CONTENT, STYLE, 32,
                                                  24)
    assert content_x.context == CTX and [c.context for c in contents] == [CTX]
    assert [g.context for g in grams] == [CTX] * 5
    assert [g.shape for g in grams] == [(64, 64), (128, 128), (256, 256), (512, 512),
                                         (512, 512)]
    # During the run: the image, its gradient and Adam's moments live on the run's context
    # (NDArray arithmetic mixing cpu(0) and cpu(1) would pass silently).
    checked = []

    def check(run, event):
        if isinstance(event, st.Progress) and event.iteration > 0:
            steps = run._steps
            assert steps.x.context == CTX and steps.x.grad.context == CTX
            mean, var = steps.trainer._updaters[0].states[0]
            assert mean.context == CTX and var.context == CTX
            checked.append(event.iteration)
    settings = st.Settings(stages=['32x24:4:2', '48x36:3:1'])
    result = stylizer.stylize(st.Inputs(CONTENT, STYLE), settings, callback=check)
    assert checked == [1, 2, 3, 1, 2]
    history = result.history
    # the book's schedule: lr decays after iteration 2 (stage 1, every 2) and 1, 2 (every 1)
    assert [p.lr for p in history] == pytest.approx([1e-2, 1e-2, 1e-2, 1e-3, 1e-2, 1e-2, 1e-3])
    assert [p.new_lr for p in history] == [None, None, pytest.approx(1e-3), None, None,
                                           pytest.approx(1e-3), pytest.approx(1e-4)]
    # iteration 0 of stage 1 reports the content image itself: no content loss
    assert history[0].content == pytest.approx(0, abs=1e-5)
    assert history[4].content > 0
    # stage 2 starts from stage 1's result: postprocessed, times 255, resized, normalised; its
    # first picture before any step shows that (up to 8-bit rounding of the saved stage 1)
    run = stylizer.start(st.Inputs(CONTENT, STYLE), settings)
    for event in run:
        if isinstance(event, st.Progress) and (event.stage, event.iteration) == (2, 0):
            stage1 = run.stage_pictures[0].astype(np.float32) / 255
            up = mximage.imresize(nd.array(stage1 * 255), 48, 36).asnumpy() / 255.0
            start2 = ((up - np.array(RGB_MEAN)) / np.array(RGB_STD)).transpose(2, 0, 1)[None]
            np.testing.assert_allclose(run._best, start2, atol=0.02)


def _stop_after(run, iterations):
    """Iterate `run` in a worker thread while this one calls stop() once it got this far."""
    reached = threading.Event()

    def drive():
        for event in run:
            if len(run.history) >= iterations:
                reached.set()
    worker = threading.Thread(target=drive)
    worker.start()
    assert reached.wait(timeout=120)
    run.stop()                      # from another thread than the one iterating
    worker.join(timeout=120)
    assert not worker.is_alive()


def test_stop_from_another_thread_then_resume_ends_with_the_uninterrupted_picture(stylizer):
    inputs = st.Inputs(CONTENT, STYLE)
    settings = st.Settings(stages=['32x24:12:5', '48x36:6:3'], style_weight=1e6)
    full = stylizer.stylize(inputs, settings)
    run = stylizer.start(inputs, settings)
    _stop_after(run, 5)
    assert run.stopped and run.result.stopped
    stage, next_iteration = run.position
    assert stage == 1 and 5 <= next_iteration < 12
    assert len(run.history) == next_iteration
    best = run.picture(best=True)
    assert best.shape == (24, 32, 3) and np.array_equal(best, run.result.picture)
    state = pickle.loads(pickle.dumps(run.state()))     # plain data: numbers and numpy
    assert isinstance(state.image, np.ndarray) and state.next_iteration == next_iteration
    assert set(state.optimizer) == {'mean', 'var', 'count', 'lr'}
    assert state.optimizer['count'] == next_iteration
    resumed = stylizer.stylize(inputs, resume=state)
    np.testing.assert_array_equal(resumed.picture, full.picture)
    assert [p.total for p in resumed.history] == [p.total for p in full.history]
    # A state taken between stages resumes too.
    run = stylizer.start(inputs, settings)
    for event in run:
        if isinstance(event, st.StageDone):
            break
    between = run.state()
    assert (between.stage, between.next_iteration) == (2, 0) and not between.optimizer
    np.testing.assert_array_equal(stylizer.stylize(inputs, resume=between).picture,
                                  full.picture)


def test_resume_refuses_other_settings_network_or_pictures(stylizer):
    inputs, settings = st.Inputs(CONTENT, STYLE), st.Settings(stages=['32x24:6:3'])
    run = stylizer.start(inputs, settings)
    for event in run:
        if event.iteration == 2:
            break
    state = run.state()
    with pytest.raises(st.StyleTransferError, match='tv_weight'):
        stylizer.start(inputs, st.Settings(stages=['32x24:6:3'], tv_weight=1), resume=state)
    with pytest.raises(st.StyleTransferError, match='pictures differ'):
        stylizer.start(st.Inputs(STYLE, CONTENT), resume=state)
    state.network = st.Network(weights='random', seed=3)
    with pytest.raises(st.StyleTransferError, match='seed'):
        stylizer.start(inputs, resume=state)


def test_state_and_picture_from_other_threads():
    run_thread_state = []
    stylizer = st.Stylizer(st.Network(weights='random'), ctx=CTX)
    run = stylizer.start(st.Inputs(CONTENT, STYLE), st.Settings(stages=['32x24:30:10']))
    assert run.picture() is None
    started, release = threading.Event(), threading.Event()

    def drive():
        for event in run:
            if event.iteration == 1:
                run_thread_state.append(run.state())   # the iterating thread may ask
                started.set()
                release.wait(timeout=60)
    worker = threading.Thread(target=drive)
    worker.start()
    assert started.wait(timeout=120)
    # Another thread, while the run is iterating: pictures yes (numpy only), state no.
    assert run.picture().shape == (24, 32, 3)
    release.set()
    run.stop()
    worker.join(timeout=120)
    assert run_thread_state[0].next_iteration == 2
    assert run.state().next_iteration >= 2       # nobody iterates now: any thread may ask


def test_divergence_raises_with_the_last_finite_picture(stylizer, monkeypatch):
    real, calls = optimise._losses_and_gradient, []

    def poisoned(*args):
        losses = real(*args)
        calls.append(1)
        return losses[:-1] + [float('nan')] if len(calls) >= 4 else losses
    monkeypatch.setattr(optimise, '_losses_and_gradient', poisoned)
    seen = []
    with pytest.raises(st.Diverged) as e:
        for event in stylizer.start(st.Inputs(CONTENT, STYLE), st.Settings(stages=['32x24:9:3'])):
            seen.append(event)
    assert (e.value.stage, e.value.iteration) == (1, 3) and np.isnan(e.value.total)
    assert e.value.picture.shape == (24, 32, 3) and e.value.picture.std() > 1
    assert np.isnan(seen[-1].total)         # the event of the diverging iteration came first
    # A stage without any finite image has no picture to give.
    calls.extend([1] * 10)
    with pytest.raises(st.Diverged) as e:
        list(stylizer.start(st.Inputs(CONTENT, STYLE), st.Settings(stages=['32x24:9:3'])))
    assert e.value.iteration == 0 and e.value.picture is None


@pytest.mark.parametrize('controls', [
    dict(style_blend='a.png:3,b.png:1', preserve_colors='luminance', style_scale=1.5,
         style_layer_weights='1,1,2,2,1', pooling='avg', init='init.png', noise_ratio=0.1),
    dict(style='a.png', region='top.png:b.png', preserve_colors='histogram', optimizer='lbfgs',
         stop_rtol=0.01, stop_window=2),
])
def test_each_control_gives_the_command_lines_picture(tmp_path, monkeypatch, controls):
    monkeypatch.chdir(tmp_path)
    for name, seed, size in (('c.png', 10, (60, 40)), ('a.png', 11, (50, 50)),
                             ('b.png', 12, (64, 40)), ('init.png', 13, (60, 40))):
        Image.fromarray(picture(*size, seed)).save(name)
    mask = np.zeros((40, 60), np.uint8)
    mask[:20] = 255
    Image.fromarray(mask).save('top.png')
    stages = ['48x32:6:3', '64x48:4:2']
    argv = ['c.png'] + ([controls['style']] if 'style' in controls else [])
    for key, value in controls.items():
        if key != 'style':
            argv += ['--' + key.replace('_', '-'), str(value)]
    argv += ['--weights', 'random', '--ctx', 'cpu:1', '--no-progress', '-o', 'cli.png']
    assert train.main(argv + sum((['--stage', s] for s in stages), [])) == 0
    result = st.stylize('c.png', weights='random', ctx=CTX, stages=stages, **controls)
    np.testing.assert_array_equal(result.picture, np.asarray(Image.open('cli.png')))
    np.testing.assert_array_equal(result.stage_pictures[0],
                                  np.asarray(Image.open('cli-stage1.png')))


def test_an_extra_term_joins_the_graph_the_total_and_the_events(stylizer):
    from styletransfer.gatys.objective import Term
    target = picture(40, 30, 7)

    def constants(width, height, normalizer):
        return [normalizer.preprocess(target, width, height)]

    def pull(x, goal, F, size):
        d = x - goal
        return F.sum(d * d) / size
    term = Term('pull', 50.0, pull, constants)
    settings = st.Settings(stages=['32x24:30:1000:0.05'])
    run = stylizer.start(st.Inputs(CONTENT, STYLE), settings, extra_terms=[term])
    history = [e for e in run if isinstance(e, st.Progress)]
    first = history[0]
    assert list(first.terms) == ['content', 'style', 'tv', 'pull']
    assert first.total == pytest.approx(sum(first.terms.values()), rel=1e-5)
    # iteration 0 evaluates the content picture itself
    norm = stylizer.normalizer
    start = norm.preprocess(CONTENT, 32, 24).asnumpy()
    goal = norm.preprocess(target, 32, 24).asnumpy()
    assert first.terms['pull'] == pytest.approx(50 * ((start - goal) ** 2).mean(), rel=1e-4)
    # the term pulls the picture towards its target
    assert history[-1].terms['pull'] < 0.2 * first.terms['pull']
    plain = stylizer.stylize(st.Inputs(CONTENT, STYLE), settings)
    gap = lambda p: np.abs(p.astype(float) - np.asarray(   # noqa: E731
        Image.fromarray(target).resize((32, 24), Image.BILINEAR), float)).mean()
    assert gap(run.result.picture) < 0.5 * gap(plain.picture)
