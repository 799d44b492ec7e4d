"""One film on several machines: the frames split into chunks at scene cuts or every K frames,
each chunk stylised on a Dask worker with the temporal chain of the single-machine run.

A chunk that continues a shot starts `overlap` frames early: those frames only warm its chain
(the previous results that tie each frame to the last) and are thrown away, so the first frame
it keeps is tied to a stylised predecessor as in the single-machine run. A scene cut needs no
warm-up: the flow across a cut means nothing, and the chain starts again there anyway.

The frames go to the workers as PNG bytes with the task (no shared folder), the stylised frames
come back the same way, and the client keeps each in the run's FrameStore as it arrives, so a
stopped run keeps every finished chunk and a rerun sends only the rest.
"""
import io
import time
from dataclasses import dataclass

import numpy as np

# A cut: the mean absolute difference of two consecutive frames' grey levels above this (0..255).
# Motion within a shot rarely moves the whole picture's mean difference past 30 levels; a cut
# to another scene does.
SCENE_CUT = 30.0


@dataclass(frozen=True)
class Chunk:
    warm: int       # first frame stylised (warm-up frames: warm .. start - 1, not kept)
    start: int      # first frame kept
    end: int        # one past the last frame kept


def scene_cuts(frames, threshold=SCENE_CUT):
    """Indices i where frame i starts a new scene (frame 0 excluded)."""
    cuts, previous = [], None
    for i, frame in enumerate(frames):
        grey = np.asarray(frame, np.float32).mean(axis=2)
        if previous is not None and np.abs(grey - previous).mean() > threshold:
            cuts.append(i)
        previous = grey
    return cuts


def plan(count, chunk, overlap=0, cuts=()):
    """Chunks covering frames 0..count-1: a new chunk at every cut and after every `chunk`
    frames of a shot; within a shot, each chunk warms up on the `overlap` frames before it."""
    if chunk < 1 or overlap < 0:
        raise ValueError('chunk must be at least 1 and overlap 0 or more')
    bounds = sorted({0, count} | {c for c in cuts if 0 < c < count})
    chunks = []
    for shot_start, shot_end in zip(bounds, bounds[1:]):
        for start in range(shot_start, shot_end, chunk):
            chunks.append(Chunk(max(shot_start, start - overlap), start,
                                min(start + chunk, shot_end)))
    return chunks


def png(picture):
    from PIL import Image
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(picture), 'RGB').save(buffer, format='PNG',
                                                               compress_level=1)
    return buffer.getvalue()


def unpng(data):
    from PIL import Image
    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(img.convert('RGB'))


def stylize_chunk(frames, chunk, spec, settings, style, temporal_weight):
    """On a worker: the chunk's frames (PNG bytes, from chunk.warm on) stylised in order with
    the temporal chain; returns {'frames': PNG bytes of the kept ones, 'seconds', 'worker'}.
    The stylizer is loaded once per worker process and kept (batch.worker's cache)."""
    import os
    import socket
    from ..batch import worker
    from . import io as vio
    from . import stylize as vs
    started = time.perf_counter()
    with worker._LOCK:
        stylizer = worker._stylizer(spec, {})
        method = frames_method(spec.method, stylizer, settings,
                               None if style is None else unpng(style), temporal_weight)
        kept = []

        class Kept:         # a FrameStore that keeps the chunk's own frames in memory
            def done(self):
                return []

            def save(self, index, image):
                if index >= chunk.start:
                    kept.append(png(image))
        records = [vio.Frame(chunk.warm + k, 0.0, unpng(data)) for k, data in enumerate(frames)]
        for _ in vs.stylize_frames(records, method, Kept()):
            pass
    return {'frames': kept, 'seconds': time.perf_counter() - started,
            'worker': '%s:%d' % (socket.gethostname(), os.getpid())}


def frames_method(method, stylizer, settings, style, temporal_weight):
    """The per-frame method of `stylizer`: the optimisation (GatysFrames) or a one-pass
    network blended with its warped previous output (FeedForwardFrames)."""
    from . import stylize as vs
    if method == 'gatys':
        return vs.GatysFrames(stylizer, settings, {'style': style}, temporal_weight)
    styles = [] if style is None else [(style, 1.0)]
    return vs.FeedForwardFrames(lambda frame: stylizer.picture(frame, settings, styles),
                                temporal_weight)


def run_on_dask(client, frames, chunks, spec, settings, style, temporal_weight, store,
                on_chunk=None, stop=None, retries=2):
    """Stylise `chunks` of `frames` (HxWx3 pictures) on the cluster behind `client`; each
    chunk's frames are saved in `store` as it comes back; chunks the store already holds are
    not sent. At most one chunk per worker thread is in flight (a worker's death is counted
    against every task it holds). Returns the chunks' results in order of arrival."""
    from distributed import as_completed
    style_bytes = None if style is None else png(style)
    done = set(store.done())
    todo = [c for c in chunks if not all(i in done for i in range(c.start, c.end))]
    slots = max(1, sum(client.nthreads().values()))
    pending = iter(todo)
    futures, results = {}, []

    def submit():
        chunk = next(pending, None)
        if chunk is None:
            return False
        data = [png(frames[i]) for i in range(chunk.warm, chunk.end)]
        future = client.submit(stylize_chunk, data, chunk, spec, settings, style_bytes,
                               temporal_weight, pure=False, retries=retries)
        futures[future] = chunk
        return True
    queue = as_completed()
    for _ in range(slots):
        if submit():
            queue.add(list(futures)[-1])
    for future in queue:
        chunk = futures.pop(future)
        result = future.result()
        for index, data in zip(range(chunk.start, chunk.end), result['frames']):
            store.save(index, unpng(data))
        results.append((chunk, result))
        if on_chunk is not None:
            on_chunk(chunk, result)
        if stop is not None and stop():
            for other in futures:
                other.cancel()
            break
        if submit():
            queue.add(list(futures)[-1])
    return results
