"""The web page's HTTP API through FastAPI's TestClient: every endpoint, every refusal, the queue
(one run at a time, in order, nothing lost), old results removed, a stop of the server (the
app's end, and `styletransfer serve` given Ctrl-C) that saves whole files only, and the
feed-forward methods on networks of a --models folder the tests write (random values in the
real layouts): a job's picture is FastStylizer's for the same inputs and settings."""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

import styletransfer as st
from styletransfer import booklog
from styletransfer.cli import main as cli_main, serve, train
from styletransfer.data import bundled, bundled_names
from styletransfer.errors import StyleTransferError
from styletransfer.settings import Settings
from styletransfer.web import forms, server
from styletransfer.web.models import find_models
from styletransfer.web.server import LOOPBACK_NAMES, create_app
from webtools import (STYLE_NAMES, Clock, TestClient, decode, encode, png_bomb, picture,
                      read_events, wait_for, write_models)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MB = 1 << 20
TWO_STAGES = '32x24:3:1 40x30:2:1'
LONG = '32x24:5000:5000'     # runs until stopped
CONTENT, STYLE = picture(40, 30, 1), picture(30, 45, 2)
BUNDLED = {'content_bundled': 'rainier.jpg', 'style_bundled': 'autumn-oak.jpg'}
# Contact sheets: report.contact_sheet's layout, 256-pixel panels with 8-pixel gaps.
SHEET_HEIGHT = 8 + 256 + 22 + 22 + 8


def panel_width(width, height):
    return round(width * 256 / height)


def uploads(content=CONTENT, style=STYLE):
    return {'content': ('content.png', encode(content), 'image/png'),
            'style': ('style.png', encode(style), 'image/png')}


@pytest.fixture(scope='module')
def models(tmp_path_factory):
    """A --models folder: 'two' (a per-style network, styles ink and oil) and 'decoder' (the
    AdaIN authors' decoder.pth with vgg_normalised.pth)."""
    folder = tmp_path_factory.mktemp('models')
    return SimpleNamespace(folder=folder, paths=write_models(folder))


@pytest.fixture(scope='module')
def served(tmp_path_factory, models):
    """One app with its worker: random weights, previews at every iteration, 1 MB uploads,
    the networks of `models`."""
    clock, folder = Clock(), tmp_path_factory.mktemp('results')
    app = create_app(str(folder), weights='random', ctx='cpu', max_upload_mb=1, max_queue=25,
                     keep_hours=2, preview_seconds=0, models=str(models.folder), clock=clock)
    with TestClient(app) as client:
        yield SimpleNamespace(app=app, client=client, clock=clock, folder=folder,
                              queue=app.state.jobs)


@pytest.fixture
def idle(tmp_path):
    """An app whose worker never starts (no lifespan): jobs stay in the queue, where tests
    look at them."""
    app = create_app(str(tmp_path), weights='random', ctx='cpu', max_upload_mb=1, max_queue=1)
    yield SimpleNamespace(app=app, client=TestClient(app), queue=app.state.jobs)
    app.state.jobs.close()


def status(client, job_id):
    response = client.get('/api/jobs/%s' % job_id)
    assert response.status_code == 200, response.text
    return response.json()


def wait_done(client, job_id, timeout=60):
    return wait_for(lambda: (lambda s: s if s['state'] in ('finished', 'stopped', 'failed',
                                                           'cancelled') else None)(
        status(client, job_id)), timeout)


def job_folders(folder):
    return sorted(n for n in os.listdir(folder) if not n.startswith('.'))


# ------------------------------------------------------------------------------- a whole run

def test_a_run_from_uploads_to_results(served):
    client = served.client
    response = client.post('/api/jobs', data={'stages': TWO_STAGES, 'log_every': '1'},
                           files=uploads())
    assert response.status_code == 202, response.text
    answer = response.json()
    job_id = answer['id']
    assert re.fullmatch(r'[A-Za-z0-9_-]{22}', job_id)      # 128 random bits
    assert answer['page'] == '/?job=' + job_id and answer['place'] == 1
    events = read_events(client, job_id)

    assert [e[0] for e in events] == list(range(len(events)))     # IDs 0, 1, 2...
    kinds = [kind for _, kind, _ in events]
    assert kinds[0] == 'queue' and kinds[-1] == 'done' and kinds.count('done') == 1
    assert kinds.index('start') < kinds.index('network') < kinds.index('progress')
    assert kinds.count('stage') == 2
    network = events[kinds.index('network')][2]
    assert network['pretrained'] is False and 'NOT pretrained' in network['weights']
    progress = [d for _, kind, d in events if kind == 'progress']
    assert [(p['stage'], p['iteration'], p['width'], p['height']) for p in progress] == [
        (1, 0, 32, 24), (1, 1, 32, 24), (1, 2, 32, 24), (2, 0, 40, 30), (2, 1, 40, 30)]
    # Time left as the command line's bar says it: median iteration time so far times the
    # iterations left, the next stage's scaled by its pixels (40x30 against 32x24).
    s0, s1 = progress[0]['seconds'], progress[1]['seconds']
    assert progress[0]['seconds_left'] == pytest.approx(2 * s0 + 2 * s0 * 1200 / 768)
    assert progress[1]['seconds_left'] == pytest.approx(
        (s0 + s1) / 2 + 2 * (s0 + s1) / 2 * 1200 / 768)
    assert progress[-1]['seconds_left'] == 0
    for p in progress:
        assert p['total'] == pytest.approx(sum(p['terms'].values()), rel=1e-5)

    # The book's lines: a header per stage, an epoch line every iteration but the 0th
    # (log_every 1), a learning-rate line after each decay.
    lines = [d['line'] for _, kind, d in events if kind == 'log']
    assert lines[0] == '# content content.png, style style.png'
    assert [line for line in lines if line.startswith('epoch')] == [
        booklog.format_epoch(p['iteration'], p['terms']['content'], p['terms']['style'],
                             p['terms']['tv'], p['seconds'])
        for p in progress if p['iteration'] != 0]
    assert [line.split(',')[0] for line in lines if line.startswith('stage ')] == [
        'stage 1/2: 32x24', 'stage 2/2: 40x30']
    assert [line for line in lines if line.startswith('change lr')] == [
        'change lr to 1.0e-03', 'change lr to 1.0e-04', 'change lr to 1.0e-03']

    done = events[-1][2]
    assert done['state'] == 'finished' and done['files'] == ['log', 'picture', 'sheet']
    got = client.get('/api/jobs/%s/files/picture' % job_id)
    assert got.status_code == 200 and got.headers['content-type'] == 'image/png'
    assert got.headers['content-disposition'] == (
        'attachment; filename="styletransfer-%s-picture.png"' % job_id[:8])
    final, fmt, text = decode(got.content)
    assert fmt == 'PNG' and final.shape == (30, 40, 3)
    assert 'NOT pretrained' in text['weights']
    assert json.loads(text['config'])['stages'] == ['32x24:3:1:0.01', '40x30:2:1:0.01']
    sheet, fmt, _ = decode(client.get('/api/jobs/%s/files/sheet' % job_id).content)
    widths = [panel_width(40, 30), panel_width(30, 45), panel_width(32, 24),
              panel_width(40, 30)]       # content, style, stage 1, stage 2
    assert fmt == 'JPEG' and sheet.shape == (SHEET_HEIGHT, sum(widths) + 8 * 5, 3)
    log = client.get('/api/jobs/%s/files/log' % job_id)
    assert log.headers['content-type'].startswith('text/plain')
    assert log.text == ''.join(line + '\n' for line in lines)

    # The latest picture is the final one, as a JPEG numbered as the last picture event.
    latest = client.get('/api/jobs/%s/picture' % job_id)
    pictures = [d for _, kind, d in events if kind == 'picture']
    assert latest.headers['x-picture-number'] == str(pictures[-1]['number'])
    assert [d['number'] for d in pictures] == list(range(1, len(pictures) + 1))
    preview, fmt, _ = decode(latest.content)
    assert fmt == 'JPEG' and preview.shape == final.shape
    assert np.abs(preview.astype(int) - final).mean() < 8      # the same picture, JPEG'd

    state = status(client, job_id)
    assert state['state'] == 'finished' and state['position'] == [2, 2]
    assert state['content'] == 'content.png' and state['files'] == ['log', 'picture', 'sheet']
    assert state['network']['weights'] == 'random' and state['events'] == len(events)

    # A tab coming back replays everything; a reconnecting one goes on after Last-Event-ID.
    assert read_events(client, job_id) == events
    assert read_events(client, job_id, headers={'Last-Event-ID': '5'}) == events[6:]
    assert read_events(client, job_id, after=9) == events[10:]
    assert read_events(client, job_id, after=len(events) - 1) == []


def test_stop_keeps_the_best_picture_so_far(served):
    client = served.client
    job_id = client.post('/api/jobs', data=dict(BUNDLED, stages=LONG)).json()['id']
    wait_for(lambda: (status(client, job_id)['position'] or [0, 0])[1] >= 3)
    assert client.post('/api/jobs/%s/stop' % job_id).status_code == 200
    state = wait_done(client, job_id)
    assert state['state'] == 'stopped' and 'best so far' in state['message']
    events = read_events(client, job_id)
    done = sum(1 for _, kind, _ in events if kind == 'progress')
    assert 3 <= done < 5000
    lines = client.get('/api/jobs/%s/files/log' % job_id).text.splitlines()
    assert lines[-1] == ('# stopped before stage 1, iteration %d; the picture is the best so '
                         'far' % done)
    final, _, _ = decode(client.get('/api/jobs/%s/files/picture' % job_id).content)
    assert final.shape == (24, 32, 3)
    # content (rainier 600x400), style (autumn-oak), and the best picture so far
    with Image.open(bundled('rainier.jpg')) as a, Image.open(bundled('autumn-oak.jpg')) as b:
        widths = [panel_width(*a.size), panel_width(*b.size), panel_width(32, 24)]
    sheet, _, _ = decode(client.get('/api/jobs/%s/files/sheet' % job_id).content)
    assert sheet.shape == (SHEET_HEIGHT, sum(widths) + 8 * 4, 3)
    again = client.post('/api/jobs/%s/stop' % job_id)      # a stopped job stays as it is
    assert again.status_code == 200 and again.json()['state'] == 'stopped'


def test_a_diverging_run_fails_and_keeps_its_last_finite_picture(served, monkeypatch):
    from styletransfer.gatys import optimise
    real, calls = optimise._losses_and_gradient, []

    def poisoned(*args):        # the 4th evaluation's total is NaN, as a blown-up run's
        losses = real(*args)
        calls.append(1)
        return losses[:-1] + [float('nan')] if len(calls) >= 4 else losses
    monkeypatch.setattr(optimise, '_losses_and_gradient', poisoned)
    client = served.client
    job_id = client.post('/api/jobs', data={'stages': '32x24:9:3'}, files=uploads()).json()['id']
    events = read_events(client, job_id)
    done = events[-1][2]
    assert done['state'] == 'failed' and done['message'] == (
        'the loss became nan in stage 1 at iteration 3; try a smaller learning rate')
    progress = [d for _, kind, d in events if kind == 'progress']
    assert [p['iteration'] for p in progress] == [0, 1, 2, 3]
    assert progress[-1]['total'] is None        # JSON has no NaN: the event says null
    assert done['files'] == ['log', 'picture', 'sheet']
    lines = client.get('/api/jobs/%s/files/log' % job_id).text.splitlines()
    assert lines[-1] == '# stage 1 diverged at iteration 3 (total loss nan)'
    final, _, _ = decode(client.get('/api/jobs/%s/files/picture' % job_id).content)
    assert final.shape == (24, 32, 3) and final.std() > 1


def test_twenty_concurrent_jobs_run_one_at_a_time_in_order(served):
    client = served.client

    def submit(k):     # each job its own width: its picture shows whose it is
        return client.post('/api/jobs', data={'stages': '%dx24:2:1' % (32 + 2 * k)},
                           files=uploads())
    with ThreadPoolExecutor(20) as pool:
        responses = list(pool.map(submit, range(20)))
    assert [r.status_code for r in responses] == [202] * 20
    ids = [r.json()['id'] for r in responses]
    assert len(set(ids)) == 20
    states = [wait_done(client, job_id, timeout=120) for job_id in ids]
    assert [s['state'] for s in states] == ['finished'] * 20
    numbers = sorted(s['number'] for s in states)
    assert numbers == list(range(numbers[0], numbers[0] + 20))
    in_order = sorted(states, key=lambda s: s['number'])
    for before, after in zip(in_order, in_order[1:]):
        assert before['ended'] <= after['started']      # one at a time, first come first
    for k, job_id in enumerate(ids):
        final, _, _ = decode(client.get('/api/jobs/%s/files/picture' % job_id).content)
        assert final.shape == (24, 32 + 2 * k, 3)
        events = read_events(client, job_id)
        kinds = [kind for _, kind, _ in events]
        assert kinds.count('progress') == 2 and kinds[-1] == 'done'
        places = [d['place'] for _, kind, d in events if kind == 'queue']
        assert places == sorted(places, reverse=True) and len(set(places)) == len(places)
        assert events[-1][2]['files'] == ['log', 'picture', 'sheet']
    assert served.queue.builds == 1          # one stylizer, built once, for every job
    assert client.get('/api/queue').json() == {'running': False, 'waiting': 0,
                                               'max_queue': 25}


def test_results_are_removed_after_keep_hours(served):
    client = served.client
    old = client.post('/api/jobs', data=dict(BUNDLED, stages='32x24:1:1')).json()['id']
    wait_done(client, old)
    assert old in job_folders(served.folder)
    served.clock.offset += 1.5 * 3600        # within --keep-hours 2: kept
    fresh = client.post('/api/jobs', data=dict(BUNDLED, stages='32x24:1:1')).json()['id']
    assert status(client, old)['state'] == 'finished'
    wait_done(client, fresh)
    served.clock.offset += 1.0 * 3600        # 2.5 hours after it ended: a submission sweeps
    newest = client.post('/api/jobs', data=dict(BUNDLED, stages='32x24:1:1')).json()['id']
    for url in ('/api/jobs/%s', '/api/jobs/%s/files/picture', '/api/jobs/%s/picture'):
        assert client.get(url % old).status_code == 404
    assert old not in job_folders(served.folder)
    assert fresh in job_folders(served.folder)      # ended an hour later: 1.5 hours ago
    wait_done(client, newest)


def test_results_an_earlier_server_left_go_after_keep_hours(tmp_path):
    old, recent, mine = tmp_path / ('A' * 22), tmp_path / ('B' * 22), tmp_path / 'mine'
    for folder in (old, recent, mine):
        folder.mkdir()
        (folder / 'picture.png').write_bytes(b'')
    three_hours_ago = os.path.getmtime(recent) - 3 * 3600
    for folder in (old, mine):
        os.utime(folder, (three_hours_ago, three_hours_ago))
    app = create_app(str(tmp_path), weights='random', keep_hours=2)
    with TestClient(app):
        pass
    assert sorted(os.listdir(tmp_path)) == ['.uploads', 'B' * 22, 'mine']


# ---------------------------------------------------------------------------- the endpoints

def test_options_bundled_pictures_and_the_page(served):
    client = served.client
    options = client.get('/api/options').json()
    assert options['bundled'] == bundled_names()
    defaults = Settings().to_dict()
    assert {k: options['defaults'][k] for k in defaults} == defaults
    assert options['defaults']['log_every'] == 50 and options['server_weights'] == 'random'
    assert [(m['name'], m['available']) for m in options['methods']] == [
        ('gatys', True), ('fast', True), ('adain', True)]
    assert options['max_upload_mb'] == 1 and options['max_queue'] == 25
    for name in bundled_names():
        got = client.get('/api/bundled/' + name)
        with open(bundled(name), 'rb') as f:
            assert got.status_code == 200 and got.content == f.read()
    for name in ('nope.jpg', '..%2F__init__.py', '..%2F..%2Fsettings.py', 'README.md'):
        got = client.get('/api/bundled/' + name)
        assert got.status_code == 404 and 'error' in got.json()

    page = client.get('/')
    assert page.status_code == 200 and page.headers['content-type'].startswith('text/html')
    assert "script-src 'self'" in page.headers['content-security-policy']
    assert '/static/app.js' in page.text and '/static/style.css' in page.text
    for name in ('index.html', 'app.js', 'style.css', 'api.html', 'api.js'):
        text = client.get('/static/' + name).text
        assert not re.search(r'(https?:)?//[a-z0-9.-]+\.[a-z]{2,}', text), name   # offline


def test_the_api_is_documented(served):
    schema = served.client.get('/openapi.json').json()
    assert {(path, method) for path, item in schema['paths'].items() for method in item} == {
        ('/api/options', 'get'), ('/api/bundled/{name}', 'get'), ('/api/queue', 'get'),
        ('/api/jobs', 'post'), ('/api/jobs/{job_id}', 'get'),
        ('/api/jobs/{job_id}/events', 'get'), ('/api/jobs/{job_id}/picture', 'get'),
        ('/api/jobs/{job_id}/stop', 'post'), ('/api/jobs/{job_id}/files/{name}', 'get')}
    body = schema['paths']['/api/jobs']['post']['requestBody']['content']
    assert list(body) == ['multipart/form-data']
    ref = body['multipart/form-data']['schema']
    fields = set(schema['components']['schemas'][ref['$ref'].split('/')[-1]]['properties'])
    fields |= {k for part in schema['components']['schemas'][ref['$ref'].split('/')[-1]].get(
        'allOf', []) for k in schema['components']['schemas'][
        part['$ref'].split('/')[-1]]['properties']}
    assert fields == set(forms.FORM_FIELDS)
    page = served.client.get('/docs')
    assert page.status_code == 200 and '/static/api.js' in page.text   # drawn offline


def test_fields_become_the_librarys_settings(idle):
    data = dict(BUNDLED, stages='48x36:10:5, 64x48:4:2', content_weight='2', style_weight='500',
                tv_weight='0', preserve_colors='luminance', optimizer='lbfgs', seed='3',
                pooling='avg', weights='random', lr='0.05', init='noise')
    job_id = idle.client.post('/api/jobs', data=data).json()['id']
    state = status(idle.client, job_id)
    assert state['settings'] == Settings(
        stages=['48x36:10:5', '64x48:4:2'], content_weight=2, style_weight=500, tv_weight=0,
        preserve_colors='luminance', optimizer='lbfgs', seed=3, lr=0.05).to_dict()
    assert state['network']['pooling'] == 'avg' and state['network']['seed'] == 3
    assert state['content'] == 'rainier.jpg (bundled)'


def test_the_fast_preset_is_the_command_lines(idle):
    args, _ = train.parse(['--preset', 'fast'])
    _, expected, _ = train.method_objects(args)
    job_id = idle.client.post('/api/jobs', data=dict(BUNDLED, preset='fast')).json()['id']
    assert status(idle.client, job_id)['settings'] == expected.to_dict()
    idle.queue.stop(idle.queue.get(job_id))
    # Fields given win over the preset's, as options do on the command line.
    job_id = idle.client.post('/api/jobs', data=dict(BUNDLED, preset='fast',
                                                     stages='64x48:5:5')).json()['id']
    args, _ = train.parse(['--preset', 'fast', '--stage', '64x48:5:5'])
    assert status(idle.client, job_id)['settings'] == train.method_objects(args)[1].to_dict()


def test_the_queue_refuses_more_than_max_queue_and_tells_places(idle):
    client = idle.client
    first = client.post('/api/jobs', data=BUNDLED)
    second = client.post('/api/jobs', data=BUNDLED)
    assert (first.status_code, second.status_code) == (202, 202)
    assert (first.json()['place'], second.json()['place']) == (1, 2)
    third = client.post('/api/jobs', data=BUNDLED)
    assert third.status_code == 429
    assert 'queue is full' in third.json()['error'] and third.json()['field'] is None
    assert client.get('/api/queue').json() == {'running': False, 'waiting': 2, 'max_queue': 1}
    a, b = first.json()['id'], second.json()['id']
    picture = client.get('/api/jobs/%s/picture' % a)
    assert picture.status_code == 409 and 'no picture yet' in picture.json()['error']
    early = client.get('/api/jobs/%s/files/picture' % a)
    assert early.status_code == 409 and 'queued' in early.json()['error']
    assert client.get('/api/jobs/%s/files/weights' % a).status_code == 404

    # Stopping a waiting job takes it out of the queue; the ones behind it move up.
    assert client.post('/api/jobs/%s/stop' % a).json()['state'] == 'cancelled'
    assert read_events(client, a) == [
        (0, 'queue', {'place': 1}),
        (1, 'done', {'state': 'cancelled', 'message': 'stopped before it started',
                     'files': []})]
    assert [(e.kind, e.data) for e in idle.queue.get(b).events()] == [
        ('queue', {'place': 2}), ('queue', {'place': 1})]
    assert client.post('/api/jobs', data=BUNDLED).status_code == 202
    assert client.post('/api/jobs', data=BUNDLED).status_code == 429


def test_unknown_jobs_are_404(idle):
    client = idle.client
    for method, url in (('GET', '/api/jobs/%s'), ('GET', '/api/jobs/%s/events'),
                        ('GET', '/api/jobs/%s/picture'), ('POST', '/api/jobs/%s/stop'),
                        ('GET', '/api/jobs/%s/files/picture')):
        for job_id in ('nope', 'A' * 22, '..'):
            got = client.request(method, url % job_id)
            assert got.status_code == 404, (method, url, job_id)
            assert got.json()['error']
    assert client.get('/api/elsewhere').status_code == 404


# ------------------------------------------------------------------------------- refusals

def _refusal_cases():
    with_content = {'style_bundled': 'autumn-oak.jpg', 'stages': '32x24:3:1'}
    with_bundled = dict(BUNDLED, stages='32x24:3:1')
    good = encode(CONTENT)
    jpeg = encode(picture(64, 48, 3), 'JPEG')
    return [
        # (name, form fields, files, status, field, words of the reason)
        ('not an image', with_content, {'content': ('notes.png', b'plain words\n' * 20)},
         422, 'content', 'content notes.png: not an image file Pillow can read'),
        ('truncated PNG', with_content, {'content': ('cut.png', good[:len(good) // 2])},
         422, 'content', 'content cut.png: damaged or truncated image'),
        ('truncated JPEG', with_content, {'content': ('cut.jpg', jpeg[:len(jpeg) // 2])},
         422, 'content', 'content cut.jpg: damaged or truncated image'),
        ('decompression bomb', with_content, {'content': ('bomb.png', png_bomb())},
         422, 'content', 'content bomb.png: refused, too many pixels'),
        ('empty file', with_content, {'content': ('empty.png', b'')},
         422, 'content', 'content empty.png: file is empty'),
        ('too small for the layers', with_content,
         {'content': ('tiny.png', encode(picture(8, 8, 0)))}, 422, 'content', 'too small'),
        ('over --max-upload-mb', with_content,
         {'content': ('big.png', b'\x89PNG' + bytes(int(1.2 * MB)))}, 413, 'content',
         'content: big.png is larger than the upload limit of 1 MB'),
        ('no style', {'content_bundled': 'rainier.jpg'}, {}, 422, 'style',
         'a picture is needed'),
        ('upload and bundled', with_bundled, {'content': ('c.png', good)}, 422, 'content',
         'not both'),
        ('a path as a bundled name', dict(with_bundled, content_bundled='../../setup.py'), {},
         422, 'content_bundled', 'no bundled picture'),
        ('a path as weights', dict(with_bundled, weights='/etc/passwd'), {}, 422, 'weights',
         'weights must be one of zoo, random'),
        ('a bad number', dict(with_bundled, content_weight='heavy'), {}, 422,
         'content_weight', "content_weight must be a number, not 'heavy'"),
        ('a negative weight', dict(with_bundled, tv_weight='-1'), {}, 422, 'tv_weight',
         'tv_weight must be a number from 0'),
        ('a bad stage', dict(with_bundled, stages='64x48:ten:5'), {}, 422, 'stages',
         'expected WIDTHxHEIGHT:ITERATIONS:DECAY_EVERY'),
        ('a stage too small', dict(with_bundled, stages='8x8:3:1'), {}, 422, 'stages',
         'too small for layer conv5_1'),
        ('a stage beyond memory', dict(with_bundled, stages='16000x16000:1:1'), {}, 422,
         'stages', 'of memory'),
        ('optimizer', dict(with_bundled, optimizer='sgd'), {}, 422, 'optimizer',
         'optimizer must be one of adam, lbfgs'),
        ('colours', dict(with_bundled, preserve_colors='sepia'), {}, 422, 'preserve_colors',
         'preserve_colors must be one of'),
        ('layers', dict(with_bundled, style_layers='conv9_9'), {}, 422, 'style_layers',
         'conv9_9'),
        ('init', dict(with_bundled, init='/etc/hosts'), {}, 422, 'init',
         'init must be one of content, noise'),
        ('method', dict(with_bundled, method='slow'), {}, 422, 'method',
         "method must be one of gatys, fast, adain, not 'slow'"),
        ('preset', dict(with_bundled, preset='slow'), {}, 422, 'preset',
         'preset must be one of fast'),
        ('log_every', dict(with_bundled, log_every='0'), {}, 422, 'log_every',
         'log_every must be a whole number'),
        ('unknown field', dict(with_bundled, colour='red'), {}, 422, 'colour',
         "unknown field 'colour'"),
    ] + _feed_forward_refusals()


def _feed_forward_refusals():
    fast = {'model': 'two', 'content_bundled': 'rainier.jpg'}
    adain = {'method': 'adain', 'model': 'decoder', 'content_bundled': 'rainier.jpg',
             'style_bundled': 'autumn-oak.jpg'}
    return [
        ('fast without a model', {'method': 'fast', 'content_bundled': 'rainier.jpg'}, {}, 422,
         'model', 'model: name one; the fast networks here are two'),
        ('an unknown model', dict(fast, method='fast', model='../two.params'), {}, 422,
         'model', "no fast network '../two.params'; the fast networks here are two"),
        ('an unknown model alone', {'model': 'three', 'content_bundled': 'rainier.jpg'}, {},
         422, 'model', "model: no network 'three' here; the networks are two, decoder"),
        ('a model of the other method', dict(adain, model='two'), {}, 422, 'model',
         "no adain network 'two'; the adain networks here are decoder"),
        ('adain without a style', dict(adain, style_bundled=''), {}, 422, 'style',
         'style: a picture is needed'),
        ('a style picture for a per-style network', dict(fast, style_bundled='autumn-oak.jpg'),
         {}, 422, 'style_bundled', 'style_bundled is for gatys and adain jobs, not fast ones'),
        ('a style upload for a per-style network', fast,
         {'style': ('s.png', encode(STYLE))}, 422, 'style',
         'style is for gatys and adain jobs, not fast ones'),
        ('a book option for a network', dict(fast, stages='32x24:3:1'), {}, 422, 'stages',
         'stages is for gatys jobs, not fast ones'),
        ('alpha for the book', dict(BUNDLED, alpha='0.5'), {}, 422, 'alpha',
         'alpha is for adain jobs, not gatys ones'),
        ('alpha for a per-style network', dict(fast, alpha='0.5'), {}, 422, 'alpha',
         'alpha is for adain jobs, not fast ones'),
        ('a model for the book', dict(BUNDLED, method='gatys', model='two'), {}, 422, 'model',
         'model is for fast and adain jobs, not gatys ones'),
        ('a second style for the book', dict(BUNDLED, style2_bundled='tubingen.jpg'), {}, 422,
         'style2_bundled', 'style2_bundled is for adain jobs, not gatys ones'),
        ('alpha above 1', dict(adain, alpha='1.5'), {}, 422, 'alpha',
         'alpha must be in [0, 1], not 1.5'),
        ('alpha not a number', dict(adain, alpha='strong'), {}, 422, 'alpha',
         "alpha must be a number, not 'strong'"),
        ('a style the network lacks', dict(fast, style_mix='ink:1,gold:1'), {}, 422,
         'style_mix', "two has no style 'gold' (its styles: ink, oil, or 0..1)"),
        ('a style index past the network\'s', dict(fast, style_mix='2:1'), {}, 422,
         'style_mix', 'has no style 2'),
        ('a style twice', dict(fast, style_mix='ink:1,0:2'), {}, 422, 'style_mix',
         'names a style twice'),
        ('weights all 0', dict(fast, style_mix='ink:0,oil:0'), {}, 422, 'style_mix',
         'not all 0'),
        ('a mix of two styles with one given', dict(adain, style_mix='0:1,1:1'), {}, 422,
         'style_mix', 'give style2 to mix two'),
        ('a bad size', dict(fast, size='big'), {}, 422, 'size',
         "size 'big': expected WIDTHxHEIGHT or WIDTH"),
        ('a size too small for AdaIN', dict(adain, size='6'), {}, 422, 'size',
         'size 6x4 is too small'),
        ('a size beyond memory', dict(fast, size='16000x16000'), {}, 422, 'size', 'of memory'),
        ('a content too small for AdaIN', dict(adain, content_bundled=''),
         {'content': ('tiny.png', encode(picture(6, 6, 0)))}, 422, 'content',
         'tiny.png: 6x6 is too small'),
        ('colours', dict(fast, preserve_colors='sepia'), {}, 422, 'preserve_colors',
         'preserve_colors must be one of none, luminance, histogram'),
    ]


@pytest.mark.parametrize('case', _refusal_cases(), ids=lambda case: case[0])
def test_refusals_name_the_field_and_leave_nothing(served, case):
    name, data, files, code, field, words = case
    before = job_folders(served.folder)
    counts = served.client.get('/api/queue').json()
    response = served.client.post('/api/jobs', data=data, files=files or None)
    assert response.status_code == code, response.text
    assert response.json()['field'] == field
    assert words in response.json()['error']
    assert job_folders(served.folder) == before
    assert os.listdir(os.path.join(served.folder, '.uploads')) == []
    assert served.client.get('/api/queue').json() == counts


def test_bodies_over_the_limit_are_refused_before_they_are_read(served):
    client = served.client
    # Three uploads (content, style, AdaIN's second style) of --max-upload-mb and 1 MB of
    # fields: 4 MB here.
    big = {'content': ('a.png', bytes(2 * MB)), 'style': ('b.png', bytes(2 * MB))}
    response = client.post('/api/jobs', data=BUNDLED, files=big)
    assert response.status_code == 413 and 'larger than 4.0 MB' in response.json()['error']

    def chunks():       # no Content-Length: counted as it comes
        yield b'--x\r\nContent-Disposition: form-data; name="content"; filename="a.png"\r\n\r\n'
        for _ in range(4):
            yield bytes(MB)
    response = client.post('/api/jobs', content=chunks(),
                           headers={'content-type': 'multipart/form-data; boundary=x'})
    assert response.status_code == 413 and 'larger than 4.0 MB' in response.json()['error']
    assert os.listdir(os.path.join(served.folder, '.uploads')) == []


def test_a_loopback_server_answers_only_to_its_names_and_its_own_pages(tmp_path):
    app = create_app(str(tmp_path), weights='random', allowed_hosts=LOOPBACK_NAMES)
    for base in ('http://127.0.0.1:8000', 'http://localhost:8000', 'http://[::1]:8000'):
        assert TestClient(app, base_url=base).get('/api/queue').status_code == 200
    client = TestClient(app, base_url='http://127.0.0.1:8000')
    rebound = client.get('/api/queue', headers={'host': 'evil.example:8000'})
    assert rebound.status_code == 400 and rebound.json()['field'] == 'host'
    foreign = client.post('/api/jobs', data=BUNDLED, headers={'origin': 'http://evil.example'})
    assert foreign.status_code == 403 and foreign.json()['field'] == 'origin'
    assert client.post('/api/jobs/x/stop', headers={'origin': 'null'}).status_code == 403
    own = client.post('/api/jobs', data=dict(BUNDLED, stages='8x8:1:1'),
                      headers={'origin': 'http://127.0.0.1:8000'})
    assert own.status_code == 422      # past the guard, refused for its stage
    app.state.jobs.close()


def test_hosts_and_addresses():
    assert [server.is_loopback(h) for h in ('127.0.0.1', '127.9.9.9', 'localhost', '::1',
                                            '[::1]', '0.0.0.0', '::', '192.168.1.2',
                                            'example.com')] == [True] * 5 + [False] * 4
    assert [server._hostname(h) for h in ('localhost:8000', '127.0.0.1', '[::1]:8000',
                                          'Example.COM:80', '[::1]')] == [
        'localhost', '127.0.0.1', '::1', 'example.com', '::1']


# ------------------------------------------------------------------ the feed-forward methods

def one_pass(client, data, files=None):
    """Submit a feed-forward job, read its events to the end; (job ID, events, picture)."""
    response = client.post('/api/jobs', data=data, files=files)
    assert response.status_code == 202, response.text
    job_id = response.json()['id']
    events = read_events(client, job_id)
    kinds = [kind for _, kind, _ in events]
    # one pass: one progress, then its picture; no stages, no loss terms
    assert [k for k in kinds if k != 'log'] == ['queue', 'start', 'network', 'progress',
                                                'picture', 'done'], kinds
    assert events[-1][2] == {'state': 'finished', 'message': 'finished',
                             'files': ['log', 'picture', 'sheet']}
    got = client.get('/api/jobs/%s/files/picture' % job_id)
    assert got.headers['content-type'] == 'image/png'
    final, fmt, text = decode(got.content)
    assert fmt == 'PNG'
    progress = next(d for _, kind, d in events if kind == 'progress')
    assert (progress['iteration'], progress['iterations'], progress['terms'],
            progress['total']) == (0, 1, {}, None)
    assert (progress['width'], progress['height']) == (final.shape[1], final.shape[0])
    return job_id, events, final, text


def test_options_list_the_networks_by_name(served, models, idle):
    response = served.client.get('/api/options')
    options = response.json()
    assert options['models'] == [
        {'name': 'two', 'method': 'fast', 'file': 'two.params', 'styles': STYLE_NAMES,
         'kind': 'johnson'},
        {'name': 'decoder', 'method': 'adain', 'file': 'decoder.pth',
         'encoder': 'vgg_normalised.pth', 'encoder_kind': 'vgg_normalised'}]
    assert str(models.folder) not in response.text         # names, never where they are
    fields = {m['name']: m['fields'] for m in options['methods']}
    assert {'model', 'style_mix', 'size'} <= set(fields['fast'])
    assert 'style' not in fields['fast'] and 'alpha' not in fields['fast']
    assert {'style', 'style2', 'alpha', 'style_mix'} <= set(fields['adain'])
    assert 'alpha' not in fields['gatys'] and 'stages' in fields['gatys']
    assert options['fast_defaults'] == st.FastSettings().to_dict()
    # A server without --models offers the book's method only, and says where networks come
    # from.
    bare = idle.client.get('/api/options').json()
    assert bare['models'] == []
    assert [(m['name'], m['available']) for m in bare['methods']] == [
        ('gatys', True), ('fast', False), ('adain', False)]
    assert '--models' in bare['methods'][1]['note']
    refused = idle.client.post('/api/jobs', data={'method': 'adain', 'model': 'decoder',
                                                  **BUNDLED})
    assert refused.status_code == 422 and refused.json() == {
        'error': 'method adain: this server offers no AdaIN networks (they come from the '
                 'folder of styletransfer serve --models)', 'field': 'method'}


def test_a_per_style_network_job_is_fast_stylizers_picture(served, models):
    client, builds = served.client, served.queue.builds
    files = {'content': ('content.png', encode(CONTENT), 'image/png')}
    # A model named alone says its method; styles by name, a width alone keeps the aspect.
    job_id, events, mixed, text = one_pass(
        client, {'model': 'two', 'style_mix': 'ink:0.3,oil:0.7', 'size': '36'}, files)
    _, _, oil, _ = one_pass(client, {'method': 'fast', 'model': 'two', 'style_mix': '1'},
                            files)
    assert served.queue.builds == builds + 1        # the network was loaded once for both

    fast = st.FastStylizer(models.paths['two.params'], ctx='cpu')
    expected = fast.stylize(st.Inputs(CONTENT), st.FastSettings(
        style_mix='ink:0.3,oil:0.7', size='36')).picture
    assert expected.shape == (28, 36, 3)      # 36x27 asked; the network rounds up to 4s
    np.testing.assert_array_equal(mixed, expected)
    np.testing.assert_array_equal(oil, fast.stylize(st.Inputs(CONTENT), st.FastSettings(
        style_mix=((1, 1.0),))).picture)
    ink = fast.stylize(st.Inputs(CONTENT), st.FastSettings(size='36')).picture
    # the mix is honoured: neither style alone
    assert np.abs(mixed.astype(int) - ink).mean() > 1
    assert np.abs(mixed.astype(int) - fast.stylize(st.Inputs(CONTENT), st.FastSettings(
        style_mix='oil', size='36')).picture).mean() > 1

    config = json.loads(text['config'])
    assert (config['method'], config['model'], config['style_mix'], config['size']) == (
        'fast', 'two', [['ink', 0.3], ['oil', 0.7]], [36, None])
    assert text['network'].startswith('two: johnson network two.params (2 styles: ink, oil)')
    state = status(client, job_id)
    assert (state['method'], state['model'], state['stages'], state['position'],
            state['network']['file']) == ('fast', 'two', [], [1, 1], 'two.params')
    log = client.get('/api/jobs/%s/files/log' % job_id).text
    assert log.splitlines()[:3] == [
        '# content content.png', '# style of the network: ink 0.3, oil 0.7',
        '# network: two: johnson network two.params (2 styles: ink, oil), random (test), '
        'NOT pretrained']
    assert '# input size 36x27 (asked for); preserve colours none' in log
    assert log.splitlines()[-1].startswith('# one pass: 36x28 in ')
    assert str(models.folder) not in log + json.dumps([e[2] for e in events])
    # the contact sheet: content | result (the network carries its styles)
    sheet, _, _ = decode(client.get('/api/jobs/%s/files/sheet' % job_id).content)
    assert sheet.shape == (SHEET_HEIGHT, panel_width(40, 30) + panel_width(36, 28) + 8 * 3, 3)


def test_an_adain_job_honours_alpha_and_a_second_style(served, models):
    client = served.client
    other = picture(36, 44, 3)
    files = uploads()
    job_id, events, half, _ = one_pass(
        client, {'method': 'adain', 'model': 'decoder', 'alpha': '0.5'}, files)
    _, _, full, _ = one_pass(client, {'model': 'decoder'}, uploads())
    mixed_id, _, mixed, text = one_pass(
        client, {'model': 'decoder', 'alpha': '0.5', 'style_mix': '0:1,1:3'},
        dict(uploads(), style2=('other.png', encode(other), 'image/png')))

    fast = st.FastStylizer(ctx='cpu', decoder=models.paths['decoder.pth'],
                           encoder=models.paths['vgg_normalised.pth'])
    np.testing.assert_array_equal(half, fast.stylize(st.Inputs(CONTENT, STYLE),
                                                     st.FastSettings(alpha=0.5)).picture)
    np.testing.assert_array_equal(full, fast.stylize(st.Inputs(CONTENT, STYLE)).picture)
    np.testing.assert_array_equal(mixed, fast.stylize(
        st.Inputs(CONTENT, style_blend=[(STYLE, 1), (other, 3)]),
        st.FastSettings(alpha=0.5)).picture)
    assert half.shape == CONTENT.shape             # the authors' encoder: the content's size
    assert np.abs(half.astype(int) - full).mean() > 1       # alpha is honoured
    assert np.abs(half.astype(int) - mixed).mean() > 1      # and so is the second style

    config = json.loads(text['config'])
    assert (config['alpha'], config['style_weights']) == (0.5, [0.25, 0.75])
    log = client.get('/api/jobs/%s/files/log' % mixed_id).text.splitlines()
    assert log[:3] == ['# content content.png', '# styles style.png 0.25, other.png 0.75',
                       '# network: decoder: AdaIN decoder decoder.pth with encoder '
                       'vgg_normalised.pth (vgg_normalised)']
    assert "# input size 40x30 (the content's); alpha 0.5; preserve colours none" in log
    state = status(client, mixed_id)
    assert (state['style'], state['style2'], state['settings']['alpha']) == (
        'style.png', 'other.png', 0.5)
    # content | style 1 | style 2 | result
    sheet, _, _ = decode(client.get('/api/jobs/%s/files/sheet' % mixed_id).content)
    assert sheet.shape == (SHEET_HEIGHT, 2 * panel_width(40, 30) + panel_width(30, 45)
                           + panel_width(36, 44) + 8 * 5, 3)
    latest, fmt, _ = decode(client.get('/api/jobs/%s/picture' % job_id).content)
    assert fmt == 'JPEG' and np.abs(latest.astype(int) - half).mean() < 8


def test_the_models_folder_naming_rule(tmp_path, models):
    import shutil
    from styletransfer.fast import adain
    paths = models.paths
    for name, source in (('two.params', 'two.params'), ('decoder.pth', 'decoder.pth'),
                         ('vgg_normalised.pth', 'vgg_normalised.pth'),
                         ('paint.adain.pth', 'decoder.pth'),
                         ('paint.vgg_normalised.pth', 'vgg_normalised.pth')):
        shutil.copyfile(paths[source], tmp_path / name)
    ours = adain.Decoder('vgg19')       # trained on our VGG-19: takes the server's --weights
    ours.initialize()
    adain.save_decoder(ours, str(tmp_path / 'mine.adain.params'))
    (tmp_path / 'notes.txt').write_text('not a network')
    found = find_models(str(tmp_path), weights='random')
    assert [(m.name, m.method, os.path.basename(m.path), m.styles, m.kind,
             os.path.basename(m.encoder)) for m in found.values()] == [
        ('two', 'fast', 'two.params', ('ink', 'oil'), 'johnson', ''),
        ('decoder', 'adain', 'decoder.pth', (), 'vgg_normalised', 'vgg_normalised.pth'),
        ('mine', 'adain', 'mine.adain.params', (), 'vgg19', 'random'),
        ('paint', 'adain', 'paint.adain.pth', (), 'vgg_normalised',
         'paint.vgg_normalised.pth')]

    def refusal(folder):
        with pytest.raises(StyleTransferError) as e:
            find_models(str(folder), weights='random')
        return str(e.value)
    lonely = tmp_path / 'lonely'
    lonely.mkdir()
    shutil.copyfile(paths['decoder.pth'], lonely / 'ink.adain.pth')
    assert refusal(lonely) == (
        "--models %s: the AdaIN decoder ink.adain.pth was trained with the authors' encoder: "
        "put ink.vgg_normalised.pth or vgg_normalised.pth beside it" % lonely)
    shutil.copyfile(paths['vgg_normalised.pth'], lonely / 'vgg_normalised.pth')
    shutil.copyfile(paths['two.params'], lonely / 'ink.params')
    assert refusal(lonely) == ("--models %s: ink.params and ink.adain.pth both name the "
                               "model 'ink': rename one" % lonely)
    (lonely / 'ink.params').write_bytes(b'not a network at all')
    assert 'ink.params' in refusal(lonely)
    assert refusal(tmp_path / 'nowhere') == '--models %s: no such folder' % (
        tmp_path / 'nowhere')


# -------------------------------------------------------------------------- stopping the server

def test_the_app_stopping_saves_the_running_job_and_cancels_the_rest(tmp_path):
    app = create_app(str(tmp_path), weights='random', preview_seconds=0)
    with TestClient(app) as client:
        running = client.post('/api/jobs', data=dict(BUNDLED, stages=LONG)).json()['id']
        waiting = client.post('/api/jobs', data=dict(BUNDLED, stages=LONG)).json()['id']
        wait_for(lambda: (status(client, running)['position'] or [0, 0])[1] >= 2)
    queue = app.state.jobs
    assert queue.join(0)                               # the worker has ended
    assert queue.get(running).state == 'stopped'
    assert queue.get(waiting).state == 'cancelled'
    assert sorted(os.listdir(tmp_path / running)) == ['log.txt', 'picture.png', 'sheet.jpg']
    assert os.listdir(tmp_path / waiting) == []
    with Image.open(tmp_path / running / 'picture.png') as img:
        img.load()                                     # whole, not cut short
        assert img.size == (32, 24)
    assert not [name for _, _, names in os.walk(tmp_path) for name in names if '.part' in name]


def test_serve_stops_cleanly_on_ctrl_c(tmp_path):
    env = dict(os.environ, PYTHONPATH=REPO, OMP_NUM_THREADS='1')
    proc = subprocess.Popen(
        [sys.executable, '-m', 'styletransfer', 'serve', '--port', '0', '--weights', 'random',
         '--ctx', 'cpu', '--results', str(tmp_path), '--preview-seconds', '0'],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, env=env)
    try:
        first = proc.stdout.readline()
        address = re.fullmatch(r'styletransfer serve: (http://127\.0\.0\.1:\d+/)\n', first)
        assert address, first + proc.stderr.read() if proc.poll() is not None else first
        url = address.group(1)
        form = urllib.parse.urlencode(dict(BUNDLED, stages=LONG)).encode()
        with urllib.request.urlopen(url + 'api/jobs', data=form, timeout=30) as response:
            job_id = json.load(response)['id']

        def progressed():
            with urllib.request.urlopen(url + 'api/jobs/' + job_id, timeout=30) as response:
                return (json.load(response)['position'] or [0, 0])[1] >= 2
        wait_for(progressed, timeout=90, every=0.2)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert out.rstrip().endswith('styletransfer serve: stopped')
    assert sorted(os.listdir(tmp_path / job_id)) == ['log.txt', 'picture.png', 'sheet.jpg']
    with Image.open(tmp_path / job_id / 'picture.png') as img:
        img.load()
        assert img.size == (32, 24)
    log = (tmp_path / job_id / 'log.txt').read_text().splitlines()
    assert log[-1].startswith('# stopped before stage 1, iteration ')
    assert not [name for _, _, names in os.walk(tmp_path) for name in names if '.part' in name]


# ---------------------------------------------------------------------------- the command

def test_serve_is_a_command_and_refuses_bad_options(tmp_path, capsys):
    assert 'serve' in cli_main.COMMANDS
    assert cli_main.main(['serve', '--help']) == 0
    out = capsys.readouterr().out
    assert '--max-upload-mb' in out
    for rule in ('NAME.adain.pth', 'NAME.vgg_normalised.pth', 'decoder.pth', 'NAME.pth'):
        assert rule in out.replace('\n', ' ').replace('  ', ' ')
    cases = [(['--port', '70000'], '--port must be 0..65535'),
             (['--max-upload-mb', '0'], '--max-upload-mb must be above 0'),
             (['--keep-hours', '-1'], '--keep-hours must be above 0'),
             (['--max-queue', '-1'], '--max-queue must be 0 or more'),
             (['--weights', str(tmp_path / 'none.params')], 'none.params: no such file'),
             (['--weights', 'random', '--ctx', 'tpu'], "ctx 'tpu': expected auto, cpu"),
             (['--models', str(tmp_path / 'none')], '--models %s: no such folder'
              % (tmp_path / 'none'))]
    for argv, words in cases:
        assert serve.main(argv) == 2, argv
        assert words in capsys.readouterr().err, argv
    taken = socket.socket()
    taken.bind(('127.0.0.1', 0))
    taken.listen(1)
    try:
        port = taken.getsockname()[1]
        assert serve.main(['--port', str(port), '--weights', 'random', '--ctx', 'cpu']) == 2
        assert 'cannot listen on 127.0.0.1 port %d' % port in capsys.readouterr().err
    finally:
        taken.close()


def test_serve_refuses_a_models_folder_it_cannot_load_before_it_listens(tmp_path, models,
                                                                       capsys):
    import shutil
    shutil.copyfile(models.paths['decoder.pth'], tmp_path / 'ink.adain.pth')
    assert serve.main(['--models', str(tmp_path), '--weights', 'random', '--ctx', 'cpu',
                       '--port', '0']) == 2
    captured = capsys.readouterr()
    assert captured.out == ''           # no address printed: nothing listened
    assert ("styletransfer serve: error: --models %s: the AdaIN decoder ink.adain.pth was "
            "trained with the authors' encoder" % tmp_path) in captured.err


def test_serve_without_the_web_extra_says_how_to_install_it(monkeypatch, capsys):
    import importlib.util
    find = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, 'find_spec',
                        lambda name, *a: None if name in ('uvicorn', 'multipart',
                                                          'python_multipart') else find(name, *a))
    assert serve.main(['--weights', 'random']) == 2
    assert ('styletransfer serve: error: the web page needs uvicorn, python-multipart: pip '
            'install "styletransfer[web]"') in capsys.readouterr().err


def test_serve_says_when_it_is_open_to_the_network(monkeypatch, capsys):
    import uvicorn
    listened = []

    def listen(host, port):      # no socket on other addresses in tests: loopback stands in
        listened.append((host, port))
        sock = socket.socket()
        sock.bind(('127.0.0.1', 0))
        return sock
    monkeypatch.setattr(serve, 'listen', listen)
    monkeypatch.setattr(uvicorn.Server, 'run', lambda self, sockets=None: None)
    assert serve.main(['--host', '0.0.0.0', '--port', '8123', '--weights', 'random',
                       '--ctx', 'cpu']) == 0
    out = capsys.readouterr().out
    assert listened == [('0.0.0.0', 8123)]
    assert 'listening on 0.0.0.0, not only this machine' in out
    assert serve.main(['--weights', 'random', '--ctx', 'cpu']) == 0
    out = capsys.readouterr().out
    assert 'not only this machine' not in out
    assert "styletransfer serve: no --models: the book's method only" in out
