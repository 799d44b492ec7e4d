"""styletransfer serve: the web page (styletransfer.web) on this machine.

    styletransfer serve [--host 127.0.0.1] [--port 8000] [--weights zoo] [--models DIR] ...

This module only translates: options become create_app's arguments, checked before anything
listens. It listens on loopback unless --host says otherwise (and then says so), prints the
address, and on Ctrl-C or SIGTERM stops the running job (its best picture is saved, whole),
cancels the waiting ones and waits for the worker before it returns.
"""
import argparse
import importlib.util
import os
import socket
import sys
import threading

from styletransfer import device
from styletransfer.cli.common import EXIT_BAD_INPUT, guarded, parse_args
from styletransfer.cli.train import add_device_options
from styletransfer.errors import StyleTransferError
from styletransfer.files import check_input_file
from styletransfer.vgg.network import Network

DEFAULT_HOST = '127.0.0.1'
DEFAULT_PORT = 8000
# After Ctrl-C, open connections (an event stream) get this long to end by themselves.
GRACE_SECONDS = 5
# The web extra (requirements-web.txt): package -> the modules it may install as.
WEB_PACKAGES = (('fastapi', ('fastapi',)), ('uvicorn', ('uvicorn',)),
                ('python-multipart', ('python_multipart', 'multipart')))
INSTALL = 'pip install "styletransfer[web]" (or pip install -r requirements-web.txt)'
MODELS_HELP = (
    'a folder of feed-forward networks the page offers by name (method fast and adain; '
    'default: none, the book\'s method only). Per-style networks: NAME.params (ours), NAME.pth '
    '(pytorch/examples fast_neural_style), NAME-symbol.json (an export), each the model NAME. '
    'AdaIN decoders: NAME.adain.pth (the authors\' layout) or NAME.adain.params (ours), the '
    'model NAME, and the authors\' decoder.pth, the model "decoder". A decoder trained with '
    'the authors\' encoder takes NAME.vgg_normalised.pth, else vgg_normalised.pth, from the '
    'folder; one trained with our VGG-19 takes --weights. Every network is loaded once at '
    'start: a file that does not load is named and the server does not start')


def build_parser(prog):
    p = argparse.ArgumentParser(
        prog=prog,
        description='A local web page for style transfer: choose or drop two pictures, watch '
                    'the picture form, its log and loss curves, stop when you like it, take it '
                    'home. Jobs run one at a time; the HTTP API behind the page is described '
                    'at /docs.')
    p.add_argument('--host', default=DEFAULT_HOST,
                   help='address to listen on (default: %(default)s, this machine only). '
                        'Another address, e.g. 0.0.0.0, lets anyone who reaches it run jobs')
    p.add_argument('--port', type=int, default=DEFAULT_PORT,
                   help='port (default: %(default)s; 0 picks a free one)')
    p.add_argument('--weights', default='zoo', metavar='zoo|random|PATH',
                   help='the jobs\' VGG-19 weights unless a job asks for zoo or random: "zoo" '
                        '(Gluon model zoo), "random" (NOT pretrained: a smoke test) or a .params '
                        'file (default: %(default)s)')
    p.add_argument('--models', metavar='DIR', help=MODELS_HELP)
    p.add_argument('--max-upload-mb', type=float, default=20.0, metavar='MB',
                   help='largest picture accepted (default: %(default)g)')
    p.add_argument('--max-queue', type=int, default=10, metavar='N',
                   help='jobs that may wait behind the running one; more are refused with '
                        'HTTP 429 (default: %(default)s)')
    p.add_argument('--keep-hours', type=float, default=24.0, metavar='H',
                   help='results are removed this long after their job ended (default: '
                        '%(default)g)')
    p.add_argument('--results', metavar='DIR',
                   help='folder of the jobs\' results (default: a temporary folder, removed '
                        'when the server stops)')
    p.add_argument('--preview-seconds', type=float, default=1.0, metavar='S',
                   help='a new preview of the picture at most this often (default: '
                        '%(default)g)')
    add_device_options(p)
    return p


def main(argv=None, prog='styletransfer serve'):
    argv = sys.argv[1:] if argv is None else list(argv)
    args, code = parse_args(build_parser(prog), argv)
    if args is None:
        return code
    return guarded(prog, args, lambda: serve(args, prog))


def check(args):
    """Refuse values that make no sense, naming the option."""
    if not 0 <= args.port <= 65535:
        raise StyleTransferError('--port must be 0..65535, not %d' % args.port)
    if not args.max_upload_mb > 0:
        raise StyleTransferError('--max-upload-mb must be above 0, not %g' % args.max_upload_mb)
    if args.max_queue < 0:
        raise StyleTransferError('--max-queue must be 0 or more, not %d' % args.max_queue)
    if not args.keep_hours > 0:
        raise StyleTransferError('--keep-hours must be above 0, not %g' % args.keep_hours)
    if not args.preview_seconds >= 0:
        raise StyleTransferError('--preview-seconds must be 0 or more, not %g'
                                 % args.preview_seconds)
    network = Network(weights=args.weights)
    if network.weights not in ('zoo', 'random'):
        check_input_file(network.weights, 'a .params file')
    if args.models is not None and not os.path.isdir(args.models):
        raise StyleTransferError('--models %s: no such folder' % args.models)
    return network


def describe_models(models, folder):
    """One line: the feed-forward models the page offers."""
    if folder is None:
        return 'no --models: the book\'s method only'
    if not models:
        return 'no networks in %s (see --help for their names)' % folder
    return 'models in %s: %s' % (folder, '; '.join(
        '%s %s' % (m.method, m.name) + (' (%s)' % ', '.join(m.styles) if m.styles else '')
        for m in models.values()))


def listen(host, port):
    """A listening socket on host:port; StyleTransferError if it cannot be had."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as e:
        raise StyleTransferError('cannot listen on %s port %d: %s'
                                 % (host, port, e.strerror or e)) from None
    return sock


def address(sock):
    host, port = sock.getsockname()[:2]
    return 'http://%s:%d/' % ('[%s]' % host if ':' in host else host, port)


def serve(args, prog):
    network = check(args)
    missing = [package for package, modules in WEB_PACKAGES
               if not any(importlib.util.find_spec(m) for m in modules)]
    if missing:
        raise StyleTransferError('the web page needs %s: %s' % (', '.join(missing), INSTALL))
    import uvicorn
    threads = device.set_threads(args.threads)      # before MXNet is imported
    from styletransfer.web.server import LOOPBACK_NAMES, create_app, is_loopback
    ctx, remark = device.resolve_ctx(args.ctx)
    loopback = is_loopback(args.host)
    # The app reads --models (a file that does not load is refused) before anything listens.
    app = create_app(args.results, weights=network.weights, ctx=ctx,
                     max_upload_mb=args.max_upload_mb, max_queue=args.max_queue,
                     keep_hours=args.keep_hours, preview_seconds=args.preview_seconds,
                     allowed_hosts=LOOPBACK_NAMES if loopback else None, models=args.models)
    try:
        sock = listen(args.host, args.port)
    except StyleTransferError:
        app.state.shut()        # removes a temporary results folder
        raise
    queue = app.state.jobs

    class Server(uvicorn.Server):
        def handle_exit(self, sig, frame):
            # Stop the runs first: the event streams end with their jobs, so uvicorn's wait
            # for open connections is short. From another thread: this handler interrupts the
            # main thread wherever it is, perhaps holding a lock that close() takes.
            threading.Thread(target=queue.close, name='styletransfer-close').start()
            super().handle_exit(sig, frame)

    server = Server(uvicorn.Config(app, log_level='warning',
                                   timeout_graceful_shutdown=GRACE_SECONDS))
    print('%s: %s' % (prog, address(sock)), flush=True)
    if not loopback:
        print('%s: listening on %s, not only this machine: anyone who can reach it can run '
              'jobs and see their pictures' % (prog, args.host), flush=True)
    print('%s: weights %s by default; %s (%s), %d threads; results in %s; Ctrl-C stops'
          % (prog, args.weights, ctx, remark, threads, app.state.folder), flush=True)
    print('%s: %s' % (prog, describe_models(app.state.models, args.models)), flush=True)
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass      # uvicorn raises the Ctrl-C it handled again once it has shut down
    except SystemExit:
        return EXIT_BAD_INPUT      # uvicorn could not start the app (it logged why)
    finally:
        queue.close()
        if not queue.join(timeout=0.5):
            print('%s: stopping: the running job saves its best picture first' % prog,
                  file=sys.stderr, flush=True)
        while True:
            try:
                app.state.shut()     # joins the worker; removes a temporary results folder
                break
            except KeyboardInterrupt:
                print('%s: the worker stops after its current iteration; waiting for it'
                      % prog, file=sys.stderr, flush=True)
        sock.close()
    print('%s: stopped' % prog, flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
