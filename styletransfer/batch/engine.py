"""Running a batch: plan what to do against the manifest, hand the items to an executor (this
process, or Dask workers), and write every output, manifest line and log line here, in the
client, as results come back.

    with engine.local_cluster(workers=2, threads=1) as client:
        summary = engine.run(items, spec, settings, 'out/', engine.OnDask(client))
    summary.exit_code      # 0: every item done or up to date; 1: some failed

Executors get the pictures' bytes, not their paths: Dask workers may be other machines. On
Dask, each item is a task that carries its two pictures (no scattered data that a dying worker
would take with it); a worker that dies mid-item has the item run again on another, up to the
scheduler's `allowed-failures`, after which the item is reported failed (a poison item that
kills every worker it touches is not retried forever). Tasks go out one per worker thread at a
time: the scheduler counts a worker's death against every task it holds, so an innocent item
queued on a worker behind a poison one would be failed with it; and the client's and the
scheduler's memory hold a few items' pictures, not the whole batch's.
"""
import contextlib
import dataclasses
import json
import os
import time
import uuid
from dataclasses import dataclass, field
from typing import Optional

from .. import device
from ..errors import StyleTransferError
from ..files import atomic_path, check_input_file, sha256_of
from ..vgg.network import WEIGHT_KINDS
from . import manifest
from .items import sha256_bytes
from .worker import one_line, stylize_item

LOG_NAME = 'batch.log'
DEFAULT_RETRIES = 2          # deaths of a worker an item may cause before it is failed
# Dask's port, on this machine only (a local batch need not show its dashboard to the network);
# a busy port makes Dask pick another.
DEFAULT_DASHBOARD = '127.0.0.1:8787'


@dataclass
class Job:
    """An item and what the client knows of it before it runs."""
    item: object                # items.Item
    key: str = ''               # manifest.item_key of this item now
    content_sha: Optional[str] = None
    style_sha: Optional[str] = None
    reason: Optional[str] = None    # an input that cannot be read: the item fails here


@dataclass
class Summary:
    done: int = 0
    failed: int = 0
    skipped: int = 0
    records: list = field(default_factory=list)     # the manifest lines of this run, in order
    seconds: float = 0.0

    @property
    def total(self):
        return self.done + self.failed + self.skipped

    @property
    def exit_code(self):
        return 0 if self.failed == 0 else 1


# ---------------------------------------------------------------------------- the executors

class InProcess:
    """Items one after the other in this process: the baseline, and the batch without Dask."""
    name = 'in-process'

    def __init__(self, work=stylize_item):
        self.work = work

    def results(self, jobs, task_of, spec):
        for job in jobs:
            try:
                content, style = _read(job)
            except StyleTransferError as e:
                yield job, _failed(str(e))
                continue
            yield job, self.work(content, style, task_of(job), spec)


class OnDask:
    """Items as tasks of a Dask `client` (a LocalCluster's or an existing scheduler's).
    `retries`: reruns of a task that raised (the worker catches the items' own failures, so
    this is for what goes wrong around them); deaths of workers are the scheduler's
    `allowed-failures`. `window`: tasks in flight (default: the workers' threads, counted
    again as items finish, so workers that join or leave are followed)."""

    def __init__(self, client, retries=DEFAULT_RETRIES, window=None, work=stylize_item):
        self.client, self.retries, self.window, self.work = client, retries, window, work
        self.name = 'dask %s' % client.scheduler.address

    def results(self, jobs, task_of, spec):
        from distributed import as_completed
        pending = iter(jobs)
        running, early = {}, []
        futures = as_completed()

        def submit():
            for job in pending:
                try:
                    content, style = _read(job)
                except StyleTransferError as e:
                    early.append((job, _failed(str(e))))
                    continue
                future = self.client.submit(
                    self.work, content, style, task_of(job), spec, pure=False,
                    retries=self.retries, key='stylize-%s-%s' % (job.item.output,
                                                                 uuid.uuid4().hex[:8]))
                running[future] = job
                futures.add(future)
                return True
            return False

        def fill():
            window = self.window or max(1, sum(self.client.nthreads().values()))
            while len(running) < window and submit():
                pass

        fill()
        while early:
            yield early.pop(0)
        for future in futures:
            job = running.pop(future)
            try:
                outcome = future.result()
            except Exception as e:   # noqa: BLE001 - the item failed (a cancelled future
                outcome = _failed(_dask_reason(e))   # too); the batch goes on
            future.release()
            fill()
            while early:
                yield early.pop(0)
            yield job, outcome


def _dask_reason(error):
    from distributed.scheduler import KilledWorker
    if isinstance(error, KilledWorker):
        return ('%d workers died running it (the last %s); not retried again'
                % (error.allowed_failures + 1, error.last_worker.address))
    return one_line(error)


def _failed(reason):
    return {'status': 'failed', 'reason': reason, 'seconds': 0.0, 'load_seconds': 0.0,
            'weights': None, 'worker': None, 'threads': None}


def _read(job):
    """The job's two pictures' bytes, as hashed when the batch was planned."""
    out = []
    for path, sha in ((job.item.content, job.content_sha), (job.item.style, job.style_sha)):
        try:
            with open(path, 'rb') as f:
                data = f.read()
        except OSError as e:
            raise StyleTransferError('%s: cannot read it (%s)' % (path, e.strerror or e)) from e
        if sha256_bytes(data) != sha:
            raise StyleTransferError('%s: changed while the batch ran; run it again' % path)
        out.append(data)
    return out


@contextlib.contextmanager
def local_cluster(workers, threads=None, retries=DEFAULT_RETRIES, dashboard=DEFAULT_DASHBOARD):
    """A Client of a new LocalCluster: `workers` processes of one Dask thread each (MXNet 1.x
    is not thread-safe), each with `threads` MXNet threads (default: the cores shared out);
    an item may kill `retries` workers and still be run again on another."""
    import dask
    from distributed import Client, LocalCluster
    threads = threads or max(1, device.cores() // workers)
    # Dask sets OMP_NUM_THREADS=1 in its workers; env= is applied after that, before the
    # worker process imports anything of ours. Saturation 1: where the scheduler queues
    # tasks, a worker gets its next one only when free (see the module's docstring on why
    # OnDask also sends no more tasks than there are worker threads).
    with dask.config.set({'distributed.scheduler.allowed-failures': retries,
                          'distributed.scheduler.worker-saturation': 1.0}):
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               env={'OMP_NUM_THREADS': str(threads)},
                               dashboard_address=dashboard)
    try:
        with Client(cluster) as client:
            yield client
    finally:
        cluster.close()


# ------------------------------------------------------------------------------ the batch

def model_dict(spec):
    """The spec's model as plain data, with the SHA-256 of a weights file this machine has:
    new weights under the same name are a changed setting."""
    model = spec.model
    d = model.to_dict() if hasattr(model, 'to_dict') else dataclasses.asdict(model)
    weights = d.get('weights')
    if isinstance(weights, str) and weights not in WEIGHT_KINDS and os.path.isfile(weights):
        d['weights_sha256'] = sha256_of(weights)
    return d


def plan(items, spec, settings, outdir, force=False):
    """(jobs to run, [(job, last record)] up to date, jobs whose input cannot be read)."""
    hashes, reasons = {}, {}
    for path in dict.fromkeys(p for item in items for p in (item.content, item.style)):
        try:
            check_input_file(path, 'an image')
            hashes[path] = sha256_of(path)
        except StyleTransferError as e:
            reasons[path] = str(e)
        except OSError as e:
            reasons[path] = '%s: cannot read it (%s)' % (path, e.strerror or e)
    model, plain = model_dict(spec), settings.to_dict()
    last = manifest.read(os.path.join(outdir, manifest.NAME))
    run, skip, bad = [], [], []
    for item in items:
        job = Job(item, content_sha=hashes.get(item.content), style_sha=hashes.get(item.style))
        job.reason = reasons.get(item.content) or reasons.get(item.style)
        if job.reason:
            bad.append(job)
            continue
        job.key = manifest.item_key(spec.method, model, plain, job.content_sha, job.style_sha)
        record = last.get(item.output)
        if not force and manifest.up_to_date(record, job.key, os.path.join(outdir, item.output)):
            skip.append((job, record))
        else:
            run.append(job)
    return run, skip, bad


def run(items, spec, settings, outdir, executor, log_path=None, force=False, on_item=None,
        on_start=None):
    """Run `items` (items.Item) with the method `spec` (methods.Spec) and `settings` into
    `outdir`: outputs, `manifest.jsonl` and the log (default OUTDIR/batch.log). `on_start(run,
    skipped)` is called once planned, `on_item(record)` after each item's manifest line.
    Returns the Summary; Ctrl-C (KeyboardInterrupt) leaves every finished item recorded."""
    started = time.perf_counter()
    try:
        os.makedirs(outdir, exist_ok=True)
    except OSError as e:
        raise StyleTransferError('%s: cannot make the folder (%s)' % (outdir, e.strerror or e)) \
            from e
    todo, fresh, bad = plan(items, spec, settings, outdir, force)
    model, plain = model_dict(spec), settings.to_dict()
    summary = Summary()
    with manifest.append_file(os.path.join(outdir, manifest.NAME), lock=True) as lines, \
            manifest.append_file(log_path or os.path.join(outdir, LOG_NAME)) as log:
        def record(job, status, outcome, **extra):
            item = job.item
            line = {'output': item.output, 'status': status, 'reason': outcome.get('reason'),
                    'content': {'path': item.content, 'sha256': job.content_sha},
                    'style': {'path': item.style, 'sha256': job.style_sha},
                    'method': spec.method, 'model': model, 'settings': plain,
                    'weights': outcome.get('weights'),
                    'output_sha256': outcome.get('output_sha256'),
                    'seconds': round(outcome.get('seconds') or 0.0, 3),
                    'load_seconds': round(outcome.get('load_seconds') or 0.0, 3),
                    'width': outcome.get('width'), 'height': outcome.get('height'),
                    'worker': outcome.get('worker'), 'threads': outcome.get('threads'),
                    'key': job.key or None, 'time': manifest.now()}
            line.update(extra)
            lines.write(json.dumps(line))
            setattr(summary, status, getattr(summary, status) + 1)
            summary.records.append(line)
            log.write(_log_line(line))
            if on_item is not None:
                on_item(line)

        log.write('%s batch: %d items, %d up to date, %d to run; method %s; %s'
                  % (manifest.now(), len(items), len(fresh), len(todo) + len(bad), spec.method,
                     executor.name))
        if on_start is not None:
            on_start(len(todo) + len(bad), len(fresh))
        for job, previous in fresh:
            record(job, 'skipped', dict(previous, seconds=0.0, load_seconds=0.0))
        for job in bad:
            record(job, 'failed', _failed(job.reason))

        def task_of(job):
            return {'content': job.item.content, 'style': job.item.style, 'settings': settings}
        try:
            for job, outcome in executor.results(todo, task_of, spec):
                if outcome.get('status') == 'done':
                    try:
                        outcome['output_sha256'] = _write(outdir, job.item.output,
                                                          outcome.pop('png'))
                    except OSError as e:
                        outcome = dict(outcome, status='failed',
                                       reason='%s: cannot write it (%s)'
                                              % (job.item.output, e.strerror or e))
                record(job, outcome['status'], outcome)
        finally:
            summary.seconds = time.perf_counter() - started
            log.write('%s finished: %d done, %d failed, %d skipped in %.1f s'
                      % (manifest.now(), summary.done, summary.failed, summary.skipped,
                         summary.seconds))
    return summary


def _write(outdir, name, data):
    """Write an output atomically (never half-written); its SHA-256."""
    with atomic_path(os.path.join(outdir, name)) as tmp:
        with open(tmp, 'wb') as f:
            f.write(data)
    return sha256_bytes(data)


def _log_line(line):
    text = '%s %s %s' % (line['time'], line['status'], line['output'])
    if line['status'] == 'failed':
        return text + ': ' + (line['reason'] or '')
    if line['status'] == 'skipped':
        return text + ' (up to date)'
    return text + ' %.2f s%s on %s' % (line['seconds'], ' (+%.1f s loading)'
                                      % line['load_seconds'] if line['load_seconds'] else '',
                                      line['worker'])
