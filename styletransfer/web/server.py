"""The web server: `create_app(...)` builds the FastAPI app of `styletransfer serve`: the page
(static/), its HTTP API (documented at /docs and /openapi.json) and the job queue's lifetime.

    POST /api/jobs                     submit a job (multipart: pictures and fields) -> 202
    GET  /api/jobs/{id}                its status
    GET  /api/jobs/{id}/events         its events as server-sent events, from the start or
                                       after Last-Event-ID (or ?after=N)
    GET  /api/jobs/{id}/picture        the latest picture (JPEG)
    POST /api/jobs/{id}/stop           stop it (a waiting job leaves the queue)
    GET  /api/jobs/{id}/files/{name}   picture (PNG), sheet (JPEG) or log (text), once it ended
    GET  /api/options                  methods, models, bundled pictures, defaults, limits
    GET  /api/bundled/{name}           a bundled picture
    GET  /api/queue                    how busy the server is

A job runs the book's optimisation (method gatys) or a feed-forward network of the server's
(method fast or adain, naming a model of `--models`: models.py); the fields each takes are
forms.METHOD_FIELDS.

Refusals are JSON, {"error": one line, "field": the field at fault or null}, with a 4xx status:
404 unknown job, 409 not ready yet, 413 too large, 422 a bad field or picture, 429 queue full.

A local server should stay local: `Guard` refuses requests for another host name (DNS
rebinding) when the server listens on a loopback address, refuses POSTs made by another site's
page (a page elsewhere must not start or stop jobs here), caps request bodies before they are
read, and adds security headers (the page runs only its own scripts).
"""
import contextlib
import os
import shutil
import tempfile
import time
from typing import Annotated, Optional
from urllib.parse import urlsplit

from ..data import bundled, bundled_names
from ..fast.stylizer import FastSettings
from ..settings import BOOK_STAGES, Settings
from ..vgg.network import WEIGHT_KINDS
from . import forms, jobs
from .models import find_models

STATIC = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'static')
HEARTBEAT_SECONDS = 15      # a comment line keeps idle event streams (and their proxies) open
RETRY_MS = 2000             # how soon a browser reconnects a dropped event stream
FORM_OVERHEAD = 1 << 20     # a request may hold its uploads and this much more (the fields)
UPLOADS = 3                 # content, style and AdaIN's second style
LOOPBACK_NAMES = ('localhost', '127.0.0.1', '::1')
PAGE_POLICY = ("default-src 'self'; img-src 'self' blob: data:; style-src 'self'; "
               "script-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
               "frame-ancestors 'none'; form-action 'self'")


def is_loopback(host):
    """Whether `host` (a name or address to bind) is reachable from this machine only."""
    import ipaddress
    host = host.strip('[]')
    if host == 'localhost':
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def create_app(results=None, *, weights='zoo', ctx='cpu', max_upload_mb=20.0, max_queue=10,
               keep_hours=24.0, preview_seconds=1.0, allowed_hosts=None, models=None,
               clock=time.time):
    """The app. `results` is the folder of the jobs' results (default: a temporary folder,
    removed when the app stops); `weights` the jobs' default VGG weights ('zoo', 'random' or
    a .params file: a client may only choose zoo or random); `ctx` where runs happen;
    `allowed_hosts` the Host names accepted (None: any; `serve` passes the loopback names
    when it listens on loopback); `models` the folder of feed-forward networks (models.py's
    naming rule; None: the book's method only), read here, before the worker starts, and
    refused with StyleTransferError naming a file that does not load. The other arguments are
    JobQueue's and Limits'.

    The job queue's worker starts and stops with the app (its lifespan): waiting jobs are
    cancelled and the running one is stopped and saved when the app stops."""
    from fastapi import FastAPI, File, Form, Query, Request, UploadFile
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
    from fastapi.staticfiles import StaticFiles
    from starlette.exceptions import HTTPException

    catalogue = {} if models is None else find_models(models, weights)
    temporary = results is None
    folder = tempfile.mkdtemp(prefix='styletransfer-web-') if temporary else os.path.abspath(
        results)
    os.makedirs(folder, exist_ok=True)
    uploads = os.path.join(folder, '.uploads')
    os.makedirs(uploads, exist_ok=True)
    queue = jobs.JobQueue(folder, ctx, max_queue, keep_hours, preview_seconds, clock)
    device = getattr(ctx, 'device_type', str(ctx).split(':')[0].strip().lower())
    limits = forms.Limits(max_upload_mb, weights, on_cpu=device == 'cpu', models=catalogue)

    def shut():
        """Cancel and stop the jobs, wait for the worker, remove a temporary folder; a second
        call does nothing more."""
        queue.close()
        queue.join()
        if temporary:
            shutil.rmtree(folder, ignore_errors=True)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        import anyio
        queue.start()
        try:
            yield
        finally:
            await anyio.to_thread.run_sync(shut)

    # FastAPI's own /docs pages load their scripts from a CDN; ours is drawn by the page itself
    # from /openapi.json, so the description works offline like the rest.
    app = FastAPI(title='styletransfer', lifespan=lifespan, docs_url=None, redoc_url=None,
                  description=(
        'Neural style transfer on MXNet Gluon, after the d2l book. Submit a job with two '
        'pictures, watch its events, stop it, take its results. One job runs at a time; the '
        'others wait their turn. Refusals are JSON: {"error": "...", "field": "..."}.'))
    app.state.jobs, app.state.folder, app.state.shut = queue, folder, shut
    app.state.models = catalogue
    app.add_middleware(Guard, max_body=UPLOADS * limits.upload_bytes + FORM_OVERHEAD,
                       allowed_hosts=allowed_hosts)
    app.mount('/static', StaticFiles(directory=STATIC), name='static')

    def refused(status, message, field=None):
        return JSONResponse({'error': message, 'field': field}, status_code=status)

    @app.exception_handler(forms.Refusal)
    async def on_refusal(request, e):
        return refused(e.status, e.message, e.field)

    @app.exception_handler(RequestValidationError)
    async def on_invalid(request, e):
        first = e.errors()[0]
        field = str(first['loc'][-1]) if first.get('loc') else None
        return refused(422, '%s: %s' % (field, first['msg']), field)

    @app.exception_handler(HTTPException)
    async def on_http(request, e):
        return refused(e.status_code, str(e.detail))

    def job_of(job_id):
        job = queue.get(job_id)
        if job is None:
            raise forms.Refusal(404, 'no job %r here: unknown, or its results were removed '
                                     '(they are kept %g hours)' % (job_id, keep_hours), 'job_id')
        return job

    async def known_fields(request: Request):
        forms.check_fields((await request.form()).keys())

    error_responses = {status: {'description': text, 'content': {'application/json': {
        'example': {'error': 'one line saying why', 'field': 'the field at fault, or null'}}}}
        for status, text in ((404, 'unknown job'), (409, 'not ready yet'), (413, 'too large'),
                             (422, 'a bad field or picture'), (429, 'the queue is full'))}

    @app.get('/', include_in_schema=False)
    def page():
        return FileResponse(os.path.join(STATIC, 'index.html'), media_type='text/html')

    @app.get('/docs', include_in_schema=False)
    def api_page():
        return FileResponse(os.path.join(STATIC, 'api.html'), media_type='text/html')

    @app.get('/api/options', summary='What a job can ask for')
    def options():
        """Methods (with the fields each takes, and whether this server can run it), the
        feed-forward models by name (per-style networks with their styles, AdaIN decoders
        with their encoder), bundled pictures, the defaults of every field, presets and
        limits."""
        defaults = dict(Settings().to_dict(), log_every=forms.LOG_EVERY,
                        weights=weights if weights in WEIGHT_KINDS else 'file')
        methods = []
        for m in jobs.METHODS.values():
            available = not m.feed_forward or bool(limits.models_of(m.name))
            methods.append({'name': m.name, 'title': m.title, 'available': available,
                            'fields': list(forms.METHOD_FIELDS[m.name]),
                            'note': '' if available else 'this server has no such networks: '
                            'they come from the folder of styletransfer serve --models'})
        return {'methods': methods,
                'models': [model.to_dict() for model in catalogue.values()],
                'fast_defaults': FastSettings().to_dict(),
                'bundled': bundled_names(), 'defaults': defaults,
                'book_stages': [s.describe() for s in BOOK_STAGES], 'presets': forms.PRESETS,
                'weights': list(WEIGHT_KINDS),
                'server_weights': weights if weights in WEIGHT_KINDS
                else os.path.basename(weights),
                'max_upload_mb': max_upload_mb, 'max_queue': max_queue, 'keep_hours': keep_hours,
                'fields': list(forms.FORM_FIELDS)}

    @app.get('/api/bundled/{name}', summary='A bundled picture', responses={
        200: {'content': {'image/jpeg': {}}}, 404: error_responses[404]})
    def bundled_picture(name: str):
        if name not in bundled_names():
            raise forms.Refusal(404, 'no bundled picture %r' % name, 'name')
        return FileResponse(bundled(name), headers={'Cache-Control': 'max-age=3600'})

    @app.get('/api/queue', summary='How busy the server is')
    def queue_counts():
        return queue.counts()

    @app.post('/api/jobs', status_code=202, summary='Submit a job',
              dependencies=[_depends(known_fields)],
              responses={k: error_responses[k] for k in (413, 422, 429)})
    def submit(form: Annotated[forms.JobForm, Form()],
               content: Optional[UploadFile] = File(None, description='the content picture'),
               style: Optional[UploadFile] = File(None, description='the style picture'),
               style2: Optional[UploadFile] = File(None, description='adain: a second style')):
        """Pictures come as uploads (`content`, `style`, `style2`) or by bundled name
        (`content_bundled`, ...). The book's method (gatys): every other field maps onto
        the library's Settings and Network and is checked by them. A feed-forward one (fast,
        adain) names a `model` of GET /api/options and takes `size`, `style_mix`, `alpha`
        (adain) and `preserve_colors` (FastSettings). A field of another method is refused.
        Returns the job's ID, its place in the queue and its links."""
        job = forms.build_job(form, content, style, limits, uploads, style2)
        try:
            place = queue.submit(job)
        except jobs.QueueFull as e:
            raise forms.Refusal(429, str(e)) from None
        return {'id': job.id, 'place': place, 'page': '/?job=%s' % job.id,
                'status': '/api/jobs/%s' % job.id, 'events': '/api/jobs/%s/events' % job.id}

    @app.get('/api/jobs/{job_id}', summary='A job\'s status', responses={
        404: error_responses[404]})
    def status(job_id: str):
        return job_of(job_id).status()

    @app.get('/api/jobs/{job_id}/events', summary='A job\'s events (server-sent events)',
             response_class=StreamingResponse, responses={
                 200: {'content': {'text/event-stream': {}}, 'description': (
                     'Every event of the job from the start, or after the one named by the '
                     'Last-Event-ID header or `after`, then live ones; the stream ends after '
                     'the `done` event. Kinds: queue {place}, start {method, stages, model}, '
                     'network {weights, pretrained, context}, log {line}, progress {stage, '
                     'stages, iteration, iterations, width, height, terms, total, seconds, lr, '
                     'seconds_left}, picture {number, width, height}, stage {stage, stages, '
                     'width, height}, done {state, message, files}. A feed-forward job '
                     '(fast, adain) is one pass: one progress, then its picture.')},
                 404: error_responses[404]})
    async def events(job_id: str, request: Request,
                     after: Optional[int] = Query(None, description='the last event ID seen')):
        job = job_of(job_id)
        last = request.headers.get('last-event-id', '').strip()
        seen = after if after is not None else int(last) if last.isdigit() else -1

        async def stream():
            nonlocal seen
            yield 'retry: %d\n\n' % RETRY_MS
            while not job.over(seen):
                for event in job.events(seen):
                    yield event.sse()
                    seen = event.id
                if not job.over(seen) and not await job.wait_async(seen, HEARTBEAT_SECONDS):
                    yield ': waiting\n\n'
        return StreamingResponse(stream(), media_type='text/event-stream', headers={
            'Cache-Control': 'no-store', 'X-Accel-Buffering': 'no'})

    @app.get('/api/jobs/{job_id}/picture', summary='The latest picture (JPEG)', responses={
        200: {'content': {'image/jpeg': {}}}, 404: error_responses[404],
        409: error_responses[409]})
    def picture(job_id: str):
        """The picture as it stands (while the job runs, updated every few iterations), then
        the final one. X-Picture-Number counts the pictures so far."""
        job = job_of(job_id)
        preview = job.preview
        if preview is None:
            raise forms.Refusal(409, 'no picture yet: the job is %s' % job.state)
        number, data = preview
        return Response(data, media_type='image/jpeg', headers={
            'Cache-Control': 'no-store', 'X-Picture-Number': str(number)})

    @app.post('/api/jobs/{job_id}/stop', summary='Stop a job', responses={
        404: error_responses[404]})
    def stop(job_id: str):
        """A running job ends after its current iteration and keeps its best picture so far
        (its `done` event follows); a waiting one leaves the queue. Stopping a job that has
        ended changes nothing."""
        job = job_of(job_id)
        queue.stop(job)
        return job.status()

    @app.get('/api/jobs/{job_id}/files/{name}', summary='A result file', responses={
        200: {'content': {'image/png': {}, 'image/jpeg': {}, 'text/plain': {}}},
        404: error_responses[404], 409: error_responses[409]})
    def result_file(job_id: str, name: str):
        """`picture` (PNG, the run's settings in its text chunks), `sheet` (JPEG: content,
        style and every stage) or `log` (the book's lines), downloaded as attachments."""
        job = job_of(job_id)
        if name not in jobs.FILES:
            raise forms.Refusal(404, 'no file %r: there are %s' % (name, ', '.join(jobs.FILES)),
                                'name')
        if not job.done:
            raise forms.Refusal(409, 'the job is %s: its files come when it ends' % job.state)
        if name not in job.files:
            raise forms.Refusal(404, 'the job left no %s (%s)' % (name, job.message), 'name')
        filename, media = jobs.FILES[name]
        return FileResponse(job.files[name], media_type=media,
                            filename='styletransfer-%s-%s' % (job.id[:8], filename))

    return app


def _depends(function):
    from fastapi import Depends
    return Depends(function)


class Guard:
    """ASGI middleware: host names, cross-site POSTs, body size, security headers (see the
    module's docstring)."""

    def __init__(self, app, max_body, allowed_hosts=None):
        self.app, self.max_body = app, max_body
        self.allowed = None if allowed_hosts is None else {h.lower() for h in allowed_hosts}

    async def __call__(self, scope, receive, send):
        if scope['type'] != 'http':
            return await self.app(scope, receive, send)
        headers = {k.decode('latin-1').lower(): v.decode('latin-1')
                   for k, v in scope['headers']}
        host = headers.get('host', '')
        refusal = None
        if self.allowed is not None and _hostname(host) not in self.allowed:
            refusal = (400, 'this server answers to %s only'
                       % ', '.join(sorted(self.allowed)), 'host')
        elif scope['method'] not in ('GET', 'HEAD', 'OPTIONS') and 'origin' in headers and (
                urlsplit(headers['origin']).netloc.lower() != host.lower()):
            refusal = (403, 'a page from %s may not send requests here' % headers['origin'],
                       'origin')
        elif headers.get('content-length', '0').isdigit() and int(
                headers.get('content-length', '0')) > self.max_body:
            refusal = self._too_large()
        if refusal is not None:
            return await self._refuse(scope, receive, send, *refusal)

        # A body without Content-Length (chunked) is counted as it arrives.
        received, exceeded, started = 0, False, False

        async def counted():
            nonlocal received, exceeded
            message = await receive()
            if message['type'] == 'http.request':
                received += len(message.get('body', b''))
                if received > self.max_body:
                    exceeded = True
                    raise _TooLarge()
            return message

        async def guarded(message):
            nonlocal started
            if exceeded:
                return          # whatever the app makes of the cut body, 413 is the answer
            if message['type'] == 'http.response.start':
                started = True
                message = dict(message, headers=list(message.get('headers', [])) + [
                    (k.encode(), v.encode()) for k, v in _security_headers(scope['path'])])
            await send(message)

        try:
            await self.app(scope, counted, guarded)
        except _TooLarge:
            pass
        if exceeded and not started:
            await self._refuse(scope, receive, send, *self._too_large())

    def _too_large(self):
        return (413, 'the request is larger than %.1f MB: %d uploads of --max-upload-mb and '
                'the fields' % (self.max_body / (1 << 20), UPLOADS), None)

    @staticmethod
    async def _refuse(scope, receive, send, status, message, field):
        from starlette.responses import JSONResponse
        response = JSONResponse({'error': message, 'field': field}, status_code=status,
                                headers=dict(_security_headers(scope['path'])))
        await response(scope, receive, send)


class _TooLarge(Exception):
    pass


def _hostname(host):
    """The name in a Host header, without its port: 'localhost:8000' -> 'localhost',
    '[::1]:8000' -> '::1'."""
    host = host.strip().lower()
    if host.startswith('['):
        return host[1:host.find(']')] if ']' in host else host
    return host.rsplit(':', 1)[0] if host.count(':') == 1 else host


def _security_headers(path):
    headers = [('X-Content-Type-Options', 'nosniff'), ('Referrer-Policy', 'no-referrer')]
    if not path.startswith(('/docs', '/redoc')):   # FastAPI's doc pages load their own scripts
        headers += [('Content-Security-Policy', PAGE_POLICY), ('X-Frame-Options', 'DENY')]
    return headers
