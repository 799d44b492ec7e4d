"""What runs on a worker process (a Dask worker, or this process for `--workers 0`).

`stylize_item` gets the two pictures as file bytes (workers need not share a file system with
the client), decodes and checks them, runs the method's stylizer and returns the picture as
PNG bytes, with every outcome as plain data: a bad picture or a failed run is a value with the
usual one-line reason, never an exception, so the batch goes on and Dask's retries are kept
for workers that die.

Each process keeps ONE loaded stylizer, keyed by the hashable `methods.Spec`: every item of
the batch reuses it; a different spec replaces it (two VGG-19s would double the memory).
"""
import io
import os
import socket
import sys
import threading
import time

from ..errors import StyleTransferError

# MXNet 1.x is not thread-safe: a worker started with several threads still runs one item at a
# time (the others wait here).
_LOCK = threading.Lock()
_LOADED = {}        # {Spec: stylizer}, at most one entry
_BROKEN = {}        # {Spec: reason}: a spec whose stylizer could not be made (a user error)
_THREADS = []       # the MXNet threads this process started with, once it imported MXNet
REASON_LENGTH = 300  # a reason is one line; an MXNet error's first line is already the gist


def stylize_item(content, style, task, spec):
    """Stylize one item.

    content, style: the pictures' file bytes; task: {'content': name, 'style': name,
    'settings': the method's settings}, the names used only in messages; spec: methods.Spec.
    Returns {'status': 'done', 'png': bytes, 'width', 'height', 'seconds', 'load_seconds',
    'weights', 'notes', 'worker', 'threads'} or {'status': 'failed', 'reason': one line,
    'seconds', 'load_seconds', 'weights', 'worker', 'threads'}."""
    out = {'worker': '%s:%d' % (socket.gethostname(), os.getpid()), 'load_seconds': 0.0,
           'weights': None}
    started = time.perf_counter()
    with _LOCK:
        try:
            pictures, notes = _decode(content, style, task, spec)
            stylizer = _stylizer(spec, out)
            out['weights'] = stylizer.description
            started = time.perf_counter()
            picture = _run(stylizer, pictures, task['settings'])
            out.update(status='done', png=encode_png(picture, task, stylizer.description),
                       height=int(picture.shape[0]), width=int(picture.shape[1]), notes=notes)
        except Exception as e:    # noqa: BLE001 - every failure is the item's, as a value
            out.update(status='failed', reason=one_line(e))
    out['seconds'] = time.perf_counter() - started
    out['threads'] = _THREADS[0] if _THREADS else None
    return out


def _decode(content, style, task, spec):
    from ..images import load_image
    from ..inputs import check_side
    min_side = getattr(spec.model, 'min_side', 1)
    pictures, notes = [], []
    for name, data in ((task['content'], content), (task['style'], style)):
        picture, more = load_image(name, data=data)
        check_side(picture, name, min_side)
        pictures.append(picture)
        notes.extend(more)
    return pictures, notes


def _stylizer(spec, out):
    if spec in _LOADED:
        return _LOADED[spec]
    if spec in _BROKEN:
        raise StyleTransferError(_BROKEN[spec])
    if 'mxnet' not in sys.modules:
        from .. import device
        # Dask sets OMP_NUM_THREADS=1 in its workers; MXNet reads it once, at import.
        _THREADS.append(device.set_threads(spec.threads))
    from . import methods
    _LOADED.clear()
    started = time.perf_counter()
    try:
        stylizer = methods.get(spec.method).load(spec.model, spec.ctx)
    except StyleTransferError as e:
        # Missing weights or a bad device fail every item of this spec alike: say it at once.
        _BROKEN[spec] = str(e)
        raise
    out['load_seconds'] = time.perf_counter() - started
    _LOADED[spec] = stylizer
    return stylizer


def _run(stylizer, pictures, settings):
    from ..inputs import Inputs
    run = stylizer.start(Inputs(*pictures), settings)
    for _ in run:
        pass
    return run.result.picture


def encode_png(picture, task, weights):
    """The picture as PNG bytes, saying in its text chunks what made it."""
    from PIL import Image, PngImagePlugin
    import numpy as np
    info = PngImagePlugin.PngInfo()
    for key, value in (('Software', 'styletransfer batch'),
                       ('Content', os.path.basename(task['content'])),
                       ('Style', os.path.basename(task['style'])), ('Weights', weights)):
        info.add_text(key, str(value))
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(picture), 'RGB').save(buffer, format='PNG',
                                                               pnginfo=info)
    return buffer.getvalue()


def one_line(error):
    """The usual one-line reason: our errors' own text; others by type and their first
    paragraph (a message with a traceback in it, as MXNet's: its last line), on one line."""
    text = str(error).strip()
    if not isinstance(error, StyleTransferError):
        paragraph = text.split('\n\n')[0]
        if paragraph.startswith('Traceback'):
            paragraph = paragraph.strip().splitlines()[-1]
        text = '%s: %s' % (type(error).__name__, paragraph) if paragraph else \
            type(error).__name__
    text = ' '.join(text.split())
    return text if len(text) <= REASON_LENGTH else text[:REASON_LENGTH - 3] + '...'
