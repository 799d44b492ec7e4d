"""The job queue behind the web page.

Jobs wait in the order they were accepted and ONE worker thread runs them, one at a time: MXNet
1.x is not thread-safe, so every MXNet call (building a stylizer, iterating a run) happens in
that thread. A stylizer is built once per method and network (the book's Network, or a
feed-forward model of the server's --models folder) and reused by the jobs after it; the
MAX_STYLIZERS used last are kept.

The book's method reports every iteration; a feed-forward job (fast, adain) is one pass: one
progress event, then its picture.

The web side never touches a run. It reads what the worker leaves on each `Job`: the history of
its events (kept whole, so that a tab coming back with the job's link, or a second tab, sees
everything from the start), its latest JPEG preview and, at the end, its result files. A web
thread only appends jobs to the queue and sets stop flags (`Run.stop` is safe from any thread).
"""
import asyncio
import collections
import contextlib
import io
import json
import logging
import math
import os
import re
import secrets
import shutil
import statistics
import threading
import time
from dataclasses import dataclass

from .. import booklog
from ..errors import Diverged, StyleTransferError
from ..events import Progress
from ..vgg import layers

log = logging.getLogger(__name__)

QUEUED, RUNNING, FINISHED, STOPPED, FAILED, CANCELLED = (
    'queued', 'running', 'finished', 'stopped', 'failed', 'cancelled')
DONE = (FINISHED, STOPPED, FAILED, CANCELLED)

# A job's result files: name in the API -> (file in the job's folder, media type).
FILES = {'picture': ('picture.png', 'image/png'), 'sheet': ('sheet.jpg', 'image/jpeg'),
         'log': ('log.txt', 'text/plain; charset=utf-8')}
PREVIEW_QUALITY = 85      # JPEG quality of the live preview: small, and plenty to watch
SWEEP_SECONDS = 60        # how often an idle worker removes results older than keep_hours
MAX_STYLIZERS = 2         # stylizers kept built (each holds its networks' weights on its device)
RECENT = 20               # iterations whose median time predicts the rest (as the CLI's bar)
ID_BYTES = 16             # a job's ID: 128 random bits as URL-safe text
JOB_ID = re.compile(r'[A-Za-z0-9_-]{22}')     # what secrets.token_urlsafe(ID_BYTES) makes


@dataclass(frozen=True)
class Method:
    name: str
    title: str
    build: object   # (network or Model, ctx) -> a stylizer whose start(inputs, settings) gives
                    # a run that yields Progress and StageDone, stops on stop(), has
                    # picture(best) and ends with run.result
    feed_forward: bool = False      # one pass (FastStylizer), its network a models.Model


def _book_method(network, ctx):
    from ..gatys.stylizer import Stylizer
    return Stylizer(network, ctx)


def _feed_forward(model, ctx):
    return model.build(ctx)


METHODS = {
    'gatys': Method('gatys', 'the book\'s optimisation (Gatys et al.)', _book_method),
    'fast': Method('fast', 'a network per style (Johnson et al.)', _feed_forward, True),
    'adain': Method('adain', 'any style, one pass (AdaIN)', _feed_forward, True),
}


_SWEEP = object()     # what the idle worker's wait gives when it is time to sweep


class QueueFull(Exception):
    """The queue holds --max-queue waiting jobs already, or the server is stopping."""


@dataclass(frozen=True)
class Event:
    id: int         # 0, 1, 2... within its job: what a reconnecting client sends back
    kind: str       # queue, start, network, log, progress, picture, stage, done
    data: dict

    def sse(self):
        """The event as server-sent events text."""
        return 'id: %d\nevent: %s\ndata: %s\n\n' % (self.id, self.kind,
                                                     json.dumps(self.data, allow_nan=False))


def _style_shares(settings, model):
    """[(style name, share)] of a per-style network's mix (FastSettings.style_mix, its first
    style when empty), shares summing to 1 as the network takes them."""
    mix = settings.style_mix or ((0, 1.0),)
    total = sum(weight for _, weight in mix)
    return [(model.styles[key] if isinstance(key, int) else key, weight / total)
            for key, weight in mix]


def _finite(value):
    """A float for JSON, or None: JSON has no NaN or infinity."""
    return value if value is not None and math.isfinite(value) else None


class Job:
    """One submitted run: what it asked for, and everything it has reported so far."""

    def __init__(self, method, network, settings, inputs, labels, log_every, notes=()):
        # The book's method: a Network, Settings and LoadedInputs. A feed-forward one: a
        # models.Model, FastSettings and Inputs of pictures already read (styles weighted).
        self.method, self.network, self.settings = method, network, settings
        self.inputs = inputs            # dropped when the job ends
        self.labels = dict(labels)      # {'content': 'rainier.jpg (bundled)', 'style': ...}
        self.log_every = log_every
        self.notes = list(notes)        # remarks on the pictures' conversions
        self.id = self.number = self.folder = None    # given by JobQueue.submit
        self.state, self.message, self.place = QUEUED, '', None
        self.created = self.started = self.ended = None
        self.position = None            # (stage, iterations done) last reported
        self.weights = None             # the stylizer's description of its weights
        self.files = {}                 # result name -> path, once written
        self.preview = None             # (number, JPEG bytes) of the latest picture
        self.log_lines = []
        self._events, self._done_id = [], None
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._waiters = set()           # (event loop, asyncio.Event) of streams waiting
        self._stop = False
        self._run = None

    # -------------------------------------------------------------------------- events

    def emit(self, kind, **data):
        with self._lock:
            event = Event(len(self._events), kind, data)
            self._events.append(event)
            if kind == 'done':
                self._done_id = event.id
            self._changed.notify_all()
            waiters = list(self._waiters)
        for loop, flag in waiters:
            with contextlib.suppress(RuntimeError):     # its loop has closed meanwhile
                loop.call_soon_threadsafe(flag.set)
        return event

    def events(self, after=-1):
        """The events with an ID above `after`, in order."""
        with self._lock:
            return self._events[max(after + 1, 0):]

    def over(self, after):
        """True once a reader who has seen events up to `after` has seen the last one."""
        with self._lock:
            return self._done_id is not None and after >= self._done_id

    def wait(self, after, timeout=None):
        """Block until there is an event above `after` (True) or `timeout` passed (False)."""
        with self._lock:
            return self._changed.wait_for(lambda: len(self._events) > after + 1, timeout)

    async def wait_async(self, after, timeout):
        """`wait` for an event loop: the worker wakes it, no polling."""
        loop, flag = asyncio.get_running_loop(), asyncio.Event()
        with self._lock:
            if len(self._events) > after + 1:
                return True
            self._waiters.add((loop, flag))
        try:
            await asyncio.wait_for(flag.wait(), timeout)
            return True
        except asyncio.TimeoutError:
            return False
        finally:
            with self._lock:
                self._waiters.discard((loop, flag))

    def line(self, text):
        """One line of the book's log (also kept for the log file)."""
        self.log_lines.append(text)
        self.emit('log', line=text)

    # ----------------------------------------------------------------- stop and status

    @property
    def done(self):
        return self.state in DONE

    @property
    def stop_requested(self):
        return self._stop

    def stop(self):
        """Ask the run to end after its current iteration, keeping the best picture so far."""
        with self._lock:
            self._stop, run = True, self._run
        if run is not None:
            run.stop()

    def attach(self, run):
        """The worker's run of this job (None when it ends); a stop asked for before it
        existed reaches it now."""
        with self._lock:
            self._run, stopping = run, self._stop
        if run is not None and stopping:
            run.stop()

    @property
    def feed_forward(self):
        return METHODS[self.method].feed_forward

    @property
    def stages(self):
        """The stages as text ('WxH:ITERS:DECAY:LR'); a feed-forward pass has none."""
        return [] if self.feed_forward else [s.describe() for s in self.settings.stages]

    def status(self):
        """What the API says of the job: plain JSON data."""
        if self.feed_forward:
            network, weights = self.network.to_dict(), self.network.name
        else:
            weights = self._weights_name()
            network = dict(self.network.to_dict(), weights=weights)
        return {'id': self.id, 'number': self.number, 'state': self.state, 'place': self.place,
                'method': self.method,
                'model': self.network.name if self.feed_forward else None,
                'content': self.labels.get('content'), 'style': self.labels.get('style'),
                'style2': self.labels.get('style2'),
                'stages': self.stages, 'settings': self.settings.to_dict(),
                'network': network, 'weights': self.weights or weights,
                'position': list(self.position) if self.position else None,
                'message': self.message, 'files': sorted(self.files),
                'events': len(self._events), 'created': self.created, 'started': self.started,
                'ended': self.ended}

    def _weights_name(self):
        weights = self.network.weights
        return weights if weights in ('zoo', 'random') else os.path.basename(weights)


class _TimeLeft:
    """The run's time left as the command line's bar estimates it: the median of the stage's
    recent iterations times the iterations left, later stages scaled by their pixels."""

    def __init__(self, stages):
        self.stages, self.stage, self.seconds = stages, None, []

    def __call__(self, p):
        if p.stage != self.stage:
            self.stage, self.seconds = p.stage, []
        self.seconds.append(p.seconds)
        per_iteration = statistics.median(self.seconds[-RECENT:])
        pixels = p.width * p.height
        return (p.iterations - p.iteration - 1) * per_iteration + sum(
            s.iterations * per_iteration * s.width * s.height / pixels
            for s in self.stages[p.stage:])


class JobQueue:
    """Accepts jobs, runs them in order in its one worker thread, and forgets old ones.

    `folder` holds one sub-folder of results per job; `ctx` is where runs happen; at most
    `max_queue` jobs wait behind the running one; a job's results are removed `keep_hours`
    after it ended; a preview is made once `preview_seconds` have passed since the last one (and
    at each stage's start and end); `clock` (seconds) dates jobs and is replaceable in tests.
    """

    def __init__(self, folder, ctx='cpu', max_queue=10, keep_hours=24.0, preview_seconds=1.0,
                 clock=time.time):
        self.folder, self.ctx = folder, ctx
        self.max_queue, self.keep_hours = max_queue, keep_hours
        self.preview_seconds, self.clock = preview_seconds, clock
        self.builds = 0                 # stylizers built so far
        self.running = None
        self._jobs, self._pending = {}, collections.deque()
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._closing, self._count = False, 0
        self._stylizers = collections.OrderedDict()
        self._thread = None

    # ------------------------------------------------------------ the web side's calls

    def start(self):
        self._forget_earlier_results()
        self._thread = threading.Thread(target=self._work, name='styletransfer-worker')
        self._thread.start()

    def _forget_earlier_results(self):
        """Remove the results an earlier server left in the folder once they are keep_hours
        old: this one does not know those jobs, and nobody can reach them any more."""
        limit = self.clock() - self.keep_hours * 3600
        for name in os.listdir(self.folder):
            path = os.path.join(self.folder, name)
            if (JOB_ID.fullmatch(name) and os.path.isdir(path)
                    and os.path.getmtime(path) < limit):
                shutil.rmtree(path, ignore_errors=True)

    def submit(self, job):
        """Queue `job` (giving it its ID and folder) and return its place, or raise QueueFull."""
        self.sweep()
        with self._lock:
            if self._closing:
                raise QueueFull('the server is stopping')
            # The running job counts too, so that whether the worker has taken a job yet does
            # not change what is accepted.
            if len(self._pending) + (self.running is not None) > self.max_queue:
                raise QueueFull('the queue is full: %d jobs are waiting (--max-queue %d); try '
                                'again later' % (len(self._pending), self.max_queue))
            job.id = secrets.token_urlsafe(ID_BYTES)
            job.number, self._count = self._count, self._count + 1
            job.folder = os.path.join(self.folder, job.id)
            os.makedirs(job.folder)
            job.created = self.clock()
            self._jobs[job.id] = job
            self._pending.append(job)
            job.place = len(self._pending)
            # Under the queue's lock: the worker cannot start the job before this is said.
            job.emit('queue', place=job.place)
            self._wake.notify_all()
        return job.place

    def get(self, job_id):
        with self._lock:
            return self._jobs.get(job_id)

    def counts(self):
        with self._lock:
            return {'running': self.running is not None, 'waiting': len(self._pending),
                    'max_queue': self.max_queue}

    def stop(self, job):
        """Stop `job`: a waiting one leaves the queue, a running one ends after its iteration
        (its best picture is kept)."""
        with self._lock:
            waiting = job in self._pending
            if waiting:
                self._pending.remove(job)
                self._renumber()
        if waiting:
            self._end(job, CANCELLED, 'stopped before it started')
        elif not job.done:
            job.stop()

    def close(self):
        """Begin shutting down without waiting: waiting jobs are cancelled, the running one is
        stopped and saves what it has; `join` waits for it. Any number of calls."""
        with self._lock:
            self._closing = True
            pending, running = list(self._pending), self.running
            self._pending.clear()
            self._wake.notify_all()
        for job in pending:
            self._end(job, CANCELLED, 'the server stopped before the job started')
        if running is not None:
            running.stop()

    @property
    def closing(self):
        return self._closing

    def join(self, timeout=None):
        if self._thread is not None:
            self._thread.join(timeout)
            return not self._thread.is_alive()
        return True

    def sweep(self):
        """Forget jobs that ended more than keep_hours ago and remove their files; return how
        many."""
        limit = self.clock() - self.keep_hours * 3600
        with self._lock:
            old = [job for job in self._jobs.values()
                   if job.done and job.ended is not None and job.ended < limit]
            for job in old:
                del self._jobs[job.id]
        for job in old:
            shutil.rmtree(job.folder, ignore_errors=True)
        return len(old)

    def _renumber(self):
        """Tell every waiting job its new place (under the queue's lock)."""
        for place, job in enumerate(self._pending, 1):
            if job.place != place:
                job.place = place
                job.emit('queue', place=place)

    # ------------------------------------------------------------------- the worker

    def _work(self):
        while True:
            job = self._next()
            if job is None:
                return
            if job is _SWEEP:
                self.sweep()
                continue
            try:
                self._run(job)
            except BaseException as e:      # a bug must not take the queue down with it
                log.exception('job %s failed', job.id)
                if not job.done:
                    self._end(job, FAILED, 'internal error (%s: %s); the server\'s console '
                              'has the details' % (type(e).__name__, e))
            finally:
                job.attach(None)
                with self._lock:
                    self.running = None
            self.sweep()

    def _next(self):
        with self._lock:
            while True:
                if self._closing:
                    return None
                if self._pending:
                    job = self._pending.popleft()
                    self.running, job.place = job, None
                    self._renumber()
                    return job
                if not self._wake.wait(SWEEP_SECONDS):
                    return _SWEEP

    def _stylizer(self, job):
        key = (job.method, job.network)
        if key in self._stylizers:
            self._stylizers.move_to_end(key)
            return self._stylizers[key]
        while len(self._stylizers) >= MAX_STYLIZERS:    # free the old one before building
            self._stylizers.popitem(last=False)
        stylizer = METHODS[job.method].build(job.network, self.ctx)
        self.builds += 1
        self._stylizers[key] = stylizer
        return stylizer

    def _run(self, job):
        job.state, job.started = RUNNING, self.clock()
        job.emit('start', method=job.method, stages=job.stages,
                 model=job.network.name if job.feed_forward else None)
        if job.stop_requested:
            return self._end(job, CANCELLED, 'stopped before it started')
        if job.feed_forward:
            return self._run_pass(job)
        try:
            stylizer = self._stylizer(job)
            job.weights = stylizer.description
            job.emit('network', weights=stylizer.description,
                     pretrained=not job.network.random_weights,
                     context='%s (%s)' % (stylizer.ctx, stylizer.ctx_remark))
            self._header(job, stylizer)
            run = stylizer.start(job.inputs, job.settings)
        except StyleTransferError as e:
            job.line('# error: %s' % e)
            self._write_log(job)
            return self._end(job, FAILED, str(e))
        job.attach(run)
        time_left, last_preview = _TimeLeft(job.settings.stages), -math.inf
        try:
            for event in run:
                if isinstance(event, Progress):
                    self._progress(job, event, time_left(event))
                    # The stage's end shows in its StageDone picture, a stop's in _save.
                    if (event.iteration == 0 or
                            time.monotonic() - last_preview >= self.preview_seconds):
                        self._preview(job, run.picture())
                        last_preview = time.monotonic()
                else:
                    job.emit('stage', stage=event.stage, stages=event.stages,
                             width=event.width, height=event.height)
                    self._preview(job, event.picture)
        except Diverged as d:
            job.line('# stage %d diverged at iteration %d (total loss %s)'
                     % (d.stage, d.iteration, d.total))
            self._save(job, stylizer, d.picture, list(run.stage_pictures), False)
            return self._end(job, FAILED, '%s; try a smaller learning rate' % d)
        result = run.result
        if result.stopped:
            stage, iteration = run.position
            job.line('# stopped before stage %d, iteration %d; the picture is the best so far'
                     % (stage, iteration))
        self._save(job, stylizer, result.picture, result.stage_pictures, result.stopped)
        self._end(job, STOPPED if result.stopped else FINISHED,
                  'stopped; the picture is the best so far' if result.stopped else 'finished')

    def _run_pass(self, job):
        """A feed-forward job: its network (built once, then reused), one pass, the picture."""
        model = job.network
        try:
            stylizer = self._stylizer(job)
            job.weights = '%s: %s' % (model.name, model.describe(stylizer.description))
            # Whether a network's own weights were trained is not recorded in its file.
            job.emit('network', weights=job.weights, pretrained=None, model=model.name,
                     context='%s (%s)' % (stylizer.ctx, stylizer.ctx_remark))
            self._pass_header(job, stylizer)
            run = stylizer.start(job.inputs, job.settings)
            job.attach(run)
            for event in run:
                if isinstance(event, Progress):
                    job.position = (1, 1)
                    job.emit('progress', stage=1, stages=1, iteration=0, iterations=1,
                             width=event.width, height=event.height, terms={}, total=None,
                             seconds=event.seconds, lr=None, seconds_left=0.0)
                    job.line('# one pass: %dx%d in %.3f s' % (event.width, event.height,
                                                              event.seconds))
                else:
                    self._preview(job, event.picture)
        except StyleTransferError as e:
            job.line('# error: %s' % e)
            self._write_log(job)
            return self._end(job, FAILED, str(e))
        result = run.result
        if result.stopped:          # stopped after it was taken, before its pass began
            job.line('# stopped before the pass')
            self._write_log(job)
            return self._end(job, STOPPED, 'stopped before the pass: there is no picture')
        self._save_pass(job, result.picture)
        self._end(job, FINISHED, 'finished')

    def _pass_header(self, job, stylizer):
        """A feed-forward job's log: its pictures, which network, its settings."""
        settings, model = job.settings, job.network
        for note in job.notes:
            job.line('# ' + note)
        job.line('# content %s' % job.labels.get('content'))
        if job.method == 'adain':
            styles = job.inputs.styles
            job.line('# style %s' % job.labels['style'] if len(styles) == 1 else
                     '# styles %s' % ', '.join('%s %.3g' % (job.labels[what], weight)
                                               for what, (_, weight) in
                                               zip(('style', 'style2'), styles)))
        else:
            job.line('# style of the network: %s' % ', '.join(
                '%s %.3g' % (name, weight) for name, weight in _style_shares(settings, model)))
        job.line('# network: %s' % job.weights)
        # The size the network is given: a network may round what it gives back.
        height, width = job.inputs.content.shape[:2]
        size = '%dx%d (%s)' % (settings.output_size(width, height) + (
            'the content\'s' if settings.size is None else 'asked for',))
        job.line('# input size %s%s; preserve colours %s' % (
            size, '; alpha %g' % settings.alpha if job.method == 'adain' else '',
            settings.preserve_colors))
        job.line('# context: %s (%s)' % (stylizer.ctx, stylizer.ctx_remark))

    def _save_pass(self, job, picture):
        """A feed-forward job's picture (PNG, its settings in the metadata), the contact sheet
        content | style(s) | result, and the log; each written atomically."""
        from ..images import save_image
        from ..report import contact_sheet
        config = dict(job.settings.to_dict(), method=job.method, model=job.network.name)
        if job.method == 'adain':
            config['style_weights'] = [weight for _, weight in job.inputs.styles]
        path = os.path.join(job.folder, FILES['picture'][0])
        save_image(picture, path, {'Software': 'styletransfer', 'network': job.weights,
                                   'config': json.dumps(config)})
        job.files['picture'] = path
        panels = [('content', job.inputs.content)]
        styles = job.inputs.styles
        for k, (style, weight) in enumerate(styles):
            panels.append(('style' if len(styles) == 1 else 'style %d: %.2f' % (k + 1, weight),
                           style))
        panels.append(('result %dx%d' % (picture.shape[1], picture.shape[0]), picture))
        path = os.path.join(job.folder, FILES['sheet'][0])
        contact_sheet(panels, path, caption='network: %s' % job.weights)
        job.files['sheet'] = path
        self._write_log(job)

    def _header(self, job, stylizer):
        """The command line's opening lines of a log."""
        for note in job.notes:
            job.line('# ' + note)
        job.line('# content %s, style %s' % (job.labels.get('content'), job.labels.get('style')))
        job.line('# weights: %s' % stylizer.description)
        job.line('# content layers %s; style layers %s' % (
            layers.describe(job.network.content_layers), layers.describe(job.network.style_layers)))
        job.line('# context: %s (%s)' % (stylizer.ctx, stylizer.ctx_remark))

    def _progress(self, job, p, seconds_left):
        settings = job.settings
        if p.iteration == 0:
            s = settings.stages[p.stage - 1]
            job.line(booklog.format_stage_header(
                p.stage, p.stages, s.width, s.height, s.iterations,
                s.lr if settings.optimizer == 'adam' else None, s.decay_every, job.weights,
                settings.lr_decay))
        if math.isfinite(p.total):
            if p.iteration % job.log_every == 0 and p.iteration != 0:
                job.line(booklog.format_epoch(p.iteration, p.content, p.style, p.tv, p.seconds))
            if p.new_lr is not None:
                job.line(booklog.format_lr(p.new_lr))
        job.position = (p.stage, p.iteration + 1)
        job.emit('progress', stage=p.stage, stages=p.stages, iteration=p.iteration,
                 iterations=p.iterations, width=p.width, height=p.height,
                 terms={name: _finite(v) for name, v in p.terms.items()},
                 total=_finite(p.total), seconds=p.seconds, lr=p.lr,
                 seconds_left=_finite(seconds_left))

    def _preview(self, job, picture):
        from PIL import Image
        if picture is None:
            return
        buffer = io.BytesIO()
        Image.fromarray(picture, 'RGB').save(buffer, format='JPEG', quality=PREVIEW_QUALITY)
        number = job.preview[0] + 1 if job.preview else 1
        job.preview = (number, buffer.getvalue())   # one assignment: readers see a whole pair
        job.emit('picture', number=number, width=picture.shape[1], height=picture.shape[0])

    def _save(self, job, stylizer, picture, stage_pictures, stopped):
        """The picture (PNG, with the run's settings in its metadata), the contact sheet and
        the log, each written atomically: a stop or a crash never leaves half a file."""
        from ..images import save_image
        from ..report import contact_sheet
        if picture is not None:
            config = dict(job.network.to_dict(), **job.settings.to_dict())
            metadata = {'Software': 'styletransfer', 'weights': stylizer.description,
                        'config': json.dumps(config)}
            path = os.path.join(job.folder, FILES['picture'][0])
            save_image(picture, path, metadata)
            job.files['picture'] = path
            inputs, stages = job.inputs, job.settings.stages
            panels = [('content', inputs.content), ('style', inputs.styles[0][0])] + [
                ('stage %d: %dx%d' % (k, s.width, s.height), p)
                for k, (s, p) in enumerate(zip(stages, stage_pictures), 1)]
            if stopped or not stage_pictures:
                panels.append(('best so far', picture))
            path = os.path.join(job.folder, FILES['sheet'][0])
            contact_sheet(panels, path, caption='weights: %s' % stylizer.description)
            job.files['sheet'] = path
            if not stage_pictures or picture is not stage_pictures[-1]:   # not shown yet
                self._preview(job, picture)
        self._write_log(job)

    def _write_log(self, job):
        from ..files import write_text
        path = os.path.join(job.folder, FILES['log'][0])
        write_text(path, ''.join(line + '\n' for line in job.log_lines))
        job.files['log'] = path

    def _end(self, job, state, message):
        """The job's last event; the pictures it no longer needs are let go."""
        job.state, job.message, job.ended, job.place = state, message, self.clock(), None
        job.inputs = None
        job.emit('done', state=state, message=message, files=sorted(job.files))
