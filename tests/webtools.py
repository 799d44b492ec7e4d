"""Helpers of the web page's tests: pictures as file bytes (good, damaged, a decompression bomb),
server-sent events parsed, a clock that tests move, the real server (uvicorn) in a thread, and
a --models folder of feed-forward networks with random values in their real layouts."""
import io
import json
import socket
import struct
import threading
import time
import warnings
import zlib

import numpy as np
from PIL import Image
from conftest import picture  # noqa: F401  (re-exported for the web tests)

with warnings.catch_warnings():
    # Starlette would rather have httpx2 carry its TestClient; httpx does the same work.
    warnings.simplefilter('ignore', DeprecationWarning)
    from fastapi.testclient import TestClient  # noqa: F401  (re-exported for the tests)




def encode(array, fmt='PNG'):
    buffer = io.BytesIO()
    Image.fromarray(array, 'RGB').save(buffer, format=fmt)
    return buffer.getvalue()


def decode(data):
    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(img.convert('RGB')), img.format, dict(getattr(img, 'text', {}))


def _chunk(kind, data):
    return (struct.pack('>I', len(data)) + kind + data
            + struct.pack('>I', zlib.crc32(kind + data) & 0xffffffff))


def png_bomb(width=20000, height=20000):
    """A real decompression bomb: a valid 1-bit PNG of width x height black pixels (400 million
    by default, over twice Pillow's limit) that compresses to about 50 kB."""
    row = b'\0' * (1 + (width + 7) // 8)        # filter byte + the row's bits
    packer = zlib.compressobj(9)
    data = b''.join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack('>IIBBBBB', width, height, 1, 0, 0, 0, 0)
    return (b'\x89PNG\r\n\x1a\n' + _chunk(b'IHDR', header) + _chunk(b'IDAT', data)
            + _chunk(b'IEND', b''))


def parse_events(lines):
    """[(id, kind, data)] from server-sent events text lines."""
    events, current = [], {}
    for line in lines:
        if not line:
            if 'data' in current:
                events.append((int(current['id']), current['event'], json.loads(current['data'])))
            current = {}
        elif not line.startswith(':'):
            key, _, value = line.partition(': ')
            current[key] = value
    return events


def read_events(client, job_id, headers=None, after=None):
    """Every event a stream sends, to its end (the job's `done`)."""
    url = '/api/jobs/%s/events' % job_id + ('' if after is None else '?after=%d' % after)
    with client.stream('GET', url, headers=headers or {}) as response:
        assert response.status_code == 200
        assert response.headers['content-type'].startswith('text/event-stream')
        return parse_events(list(response.iter_lines()) + [''])


def wait_for(check, timeout=60.0, every=0.05):
    """Poll `check()` until it returns something true; return it (fail after `timeout`)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError('timed out after %gs waiting for %s' % (timeout, check))


class Clock:
    """Real time plus an offset the test moves forward."""

    def __init__(self):
        self.offset = 0.0

    def __call__(self):
        return time.time() + self.offset


class ServerThread:
    """`app` served by uvicorn on 127.0.0.1 and a free port, in a thread; `url` is its address.
    Leaving stops the jobs first (so that event streams end), then the server."""

    def __init__(self, app):
        import uvicorn
        self.app = app
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(('127.0.0.1', 0))
        self.sock.listen(64)
        self.url = 'http://127.0.0.1:%d' % self.sock.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(app, log_level='warning',
                                                    timeout_graceful_shutdown=5))
        self.thread = threading.Thread(target=self.server.run, kwargs={'sockets': [self.sock]},
                                       daemon=True)

    def __enter__(self):
        self.thread.start()
        wait_for(lambda: self.server.started, timeout=30)
        return self

    def __exit__(self, *exc):
        self.app.state.jobs.close()
        self.server.should_exit = True
        self.thread.join(60)
        self.sock.close()


STYLE_NAMES = ['ink', 'oil']


def write_models(folder):
    """A --models folder, as `serve` would be given: 'two', a per-style TransformerNet saved
    by zoo.save_net with two styles (its norms' rows apart, so the styles differ), and
    'decoder', the AdaIN authors' decoder.pth with its vgg_normalised.pth (their PyTorch
    layout, written by torch_pickles). Returns {file name: path}."""
    import mxnet as mx
    from styletransfer.fast import johnson, zoo
    from test_adain import DECODER, ENCODER, as_state, random_conv
    from torch_pickles import state_dict, write_pth
    net = johnson.TransformerNet(2)
    net.initialize_weights(seed=5)
    rng = np.random.default_rng(5)
    for norm in net.norms().values():
        norm.gamma.set_data(mx.nd.array(1 + 0.5 * rng.standard_normal((2, norm.channels))))
        norm.beta.set_data(mx.nd.array(0.5 * rng.standard_normal((2, norm.channels))))
    paths = {'two.params': str(folder / 'two.params')}
    zoo.save_net(net, paths['two.params'], style_names=STYLE_NAMES,
                 loss_network='random (test), NOT pretrained')
    rng = np.random.default_rng(1)
    encoder = {i: random_conv(rng, *shape) for i, shape in ENCODER.items()}
    decoder = {i: random_conv(rng, out, c, 3) for i, (out, c) in DECODER.items()}
    for name, weights in (('vgg_normalised.pth', encoder), ('decoder.pth', decoder)):
        paths[name] = write_pth(str(folder / name), state_dict(as_state(weights)), 'zip')
    return paths
