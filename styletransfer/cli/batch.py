"""styletransfer batch: every content picture against every style picture (or the pairs of a CSV
file), each output OUTDIR/CONTENT--STYLE.png, a manifest line per item, in this process or on
Dask workers (a local cluster, or an existing scheduler).

This module only translates: the method's options become its model spec and settings through
cli.train (the same options as train), the pictures become batch items, and the engine runs
them; everything the user can get wrong on the command line is refused (exit 2) before any item
runs. Exit status: 0 when every item is done or up to date, 1 when some failed, 130 on Ctrl-C
(finished items are kept: the same command again does the rest).
"""
import argparse
import importlib.util
import os
import re
import sys

from styletransfer import device
from styletransfer.batch import engine, items as batch_items, methods
from styletransfer.cli.common import guarded
from styletransfer.cli.train import (add_device_options, add_method_options, method_objects,
                                     parse)
from styletransfer.errors import StyleTransferError
from styletransfer.vgg.network import WEIGHT_KINDS

PROG = 'styletransfer batch'
# --method -> (model spec, settings) from the options; a method that lands adds its entry here
# and in batch.methods.METHODS.
def _adain(args):
    import styletransfer as st
    if not args.decoder:
        raise StyleTransferError('--method adain needs a decoder: give --decoder')
    return (methods.AdaINModel(args.decoder, args.encoder or args.weights or 'zoo'),
            st.FastSettings(preserve_colors=args.preserve_colors or 'none', alpha=args.alpha))


OBJECTS = {'gatys': lambda args: method_objects(args)[:2], 'adain': _adain}
WAIT_FOR_WORKERS = 60   # seconds an existing scheduler has to show a worker


def build_parser(prog=PROG):
    p = argparse.ArgumentParser(
        prog=prog,
        description='Style transfer of many pictures: every --content picture against every '
                    '--style picture (or the rows of --pairs), each saved as '
                    'OUTDIR/CONTENT--STYLE.png with a line in OUTDIR/manifest.jsonl. Running '
                    'the same command again skips the items already done and redoes the rest.')
    p.add_argument('--content', nargs='+', action='extend', metavar='DIR_OR_FILE',
                   help='content pictures, or folders of them (.jpg, .png, ...; not recursive)')
    p.add_argument('--style', nargs='+', action='extend', metavar='DIR_OR_FILE',
                   help='style pictures, or folders of them')
    p.add_argument('--pairs', metavar='FILE.csv',
                   help='instead of the grid: CONTENT,STYLE rows (paths relative to the file)')
    p.add_argument('-o', '--output-dir', required=True, metavar='OUTDIR',
                   help='folder of the outputs, manifest.jsonl and batch.log (made if missing)')
    p.add_argument('--method', choices=list(methods.METHODS), default='gatys',
                   help='gatys: the book\'s optimisation (default); adain: any style in one '
                        'pass (--decoder, --encoder, --alpha)')
    add_method_options(p, inputs=False)
    a = p.add_argument_group('AdaIN (--method adain)')
    a.add_argument('--decoder', metavar='FILE', help='the decoder (decoder.pth or ours)')
    a.add_argument('--encoder', metavar='FILE', help='its encoder: the authors\' '
                   'vgg_normalised.pth; default: this project\'s VGG-19 (--weights)')
    a.add_argument('--alpha', type=float, default=1.0, metavar='A',
                   help='content/style trade-off in [0, 1] (default: 1)')
    add_device_options(p)
    g = p.add_argument_group('where the items run')
    g.add_argument('--workers', type=int, default=0, metavar='N',
                   help='start a local Dask cluster of N worker processes, one item at a time '
                        'each, with --threads MXNet threads each (default: the cores shared '
                        'out); 0 (the default) runs the items one by one in this process')
    g.add_argument('--scheduler', metavar='tcp://HOST:PORT',
                   help='send the items to this Dask scheduler\'s workers instead (start them '
                        'with --nthreads 1; give --threads for their MXNet threads)')
    g.add_argument('--retries', type=int, default=engine.DEFAULT_RETRIES, metavar='N',
                   help='a local cluster runs an item again after up to N of its workers died '
                        'running it, then reports it failed (an existing scheduler uses its '
                        'own distributed.scheduler.allowed-failures); default: %d'
                        % engine.DEFAULT_RETRIES)
    g.add_argument('--dashboard-address', default=engine.DEFAULT_DASHBOARD, metavar='[HOST]:PORT',
                   help='the local cluster\'s dashboard (default: %s)' % engine.DEFAULT_DASHBOARD)
    p.add_argument('--force', action='store_true', help='run every item, even those up to date')
    p.add_argument('--log-file', metavar='PATH',
                   help='per-item log lines, appended (default: OUTDIR/batch.log)')
    p.add_argument('--no-progress', action='store_true',
                   help='no progress bar (it is shown only on a terminal anyway)')
    p.add_argument('--debug', action='store_true', help='show tracebacks of errors')
    return p


def main(argv=None, prog=PROG):
    argv = sys.argv[1:] if argv is None else list(argv)
    args, code = parse(argv, prog, build_parser(prog))
    if args is None:
        return code
    # A cluster that cannot be reached or started is refused like a bad option.
    return guarded(prog, args, lambda: _run(args, prog, *_prepare(args, prog)),
                   'interrupted; finished items are kept: the same command does the rest')


def _prepare(args, prog):
    """(items, spec, settings, how to run), everything checked; StyleTransferError if not."""
    methods.get(args.method)
    if args.method == 'fast':
        raise StyleTransferError('--method fast: a per-style network has no style pictures to '
                                 'pair with the contents; use styletransfer stylize on a folder')
    if args.pairs and (args.content or args.style):
        raise StyleTransferError('give --pairs or --content and --style, not both')
    if not args.pairs and not (args.content and args.style):
        raise StyleTransferError('give --content and --style pictures (or --pairs FILE.csv)')
    if args.workers < 0 or args.retries < 0:
        raise StyleTransferError('--workers and --retries must be 0 or more')
    if args.workers and args.scheduler:
        raise StyleTransferError('give --workers (a local cluster) or --scheduler, not both')
    if not re.fullmatch(r'auto|(cpu|gpu)(:\d+)?', args.ctx.strip().lower()):
        raise StyleTransferError('--ctx %r: expected auto, cpu, cpu:N, gpu or gpu:N' % args.ctx)
    if os.path.exists(args.output_dir) and not os.path.isdir(args.output_dir):
        raise StyleTransferError('%s: exists and is not a folder' % args.output_dir)
    model, settings = OBJECTS[args.method](args)
    if hasattr(settings, 'check_network'):
        settings.check_network(model)
    weights = getattr(model, 'weights', None)
    if isinstance(weights, str) and weights not in WEIGHT_KINDS and not args.scheduler:
        if not os.path.isfile(weights):
            raise StyleTransferError('--weights %s: no such file' % weights)
        # Local workers may start in another folder.
        model = type(model)(**dict(model.to_dict(), weights=os.path.abspath(weights)))
    if isinstance(model, methods.AdaINModel) and not args.scheduler:
        files = {}
        for name in ('decoder', 'encoder'):
            path = getattr(model, name)
            if name == 'encoder' and path in WEIGHT_KINDS:
                continue
            if not os.path.isfile(path):
                raise StyleTransferError('--%s %s: no such file' % (name, path))
            files[name] = os.path.abspath(path)
        model = methods.AdaINModel(**dict(model.to_dict(), **files))
    if args.pairs:
        items = batch_items.make_items(batch_items.read_pairs(args.pairs))
    else:
        items = batch_items.grid(batch_items.collect(args.content, 'content'),
                                 batch_items.collect(args.style, 'style'))
    where = 'scheduler' if args.scheduler else 'local' if args.workers else 'here'
    if where != 'here' and not have_dask():
        if args.scheduler:
            raise StyleTransferError('--scheduler needs Dask: pip install "styletransfer[batch]"')
        print('%s: note: Dask is not installed (pip install "styletransfer[batch]"); running '
              'the items in this process' % prog, file=sys.stderr)
        where = 'here'
    threads = args.threads
    if where == 'local':
        threads = threads or max(1, device.cores() // args.workers)
    if where != 'scheduler' and threads is not None:
        device.set_threads(threads)    # checks the number against this machine's cores
    spec = methods.Spec(args.method, model, args.ctx, threads)
    return items, spec, settings, where


def have_dask():
    return importlib.util.find_spec('distributed') is not None


def _run(args, prog, items, spec, settings, where):
    if where == 'here':
        device.set_threads(spec.threads)   # before MXNet loads in this process
        return _batch(args, items, spec, settings, engine.InProcess())
    if where == 'local':
        cluster = engine.local_cluster(args.workers, spec.threads, args.retries,
                                       args.dashboard_address)
    else:
        cluster = _existing(args.scheduler)
    with cluster as client:
        print('dashboard: %s' % client.dashboard_link, flush=True)
        busy = {w: n for w, n in client.nthreads().items() if n > 1}
        if busy:
            print('%s: note: %d worker(s) have several threads; they run one item at a time '
                  '(MXNet 1.x is not thread-safe): start workers with --nthreads 1'
                  % (prog, len(busy)), file=sys.stderr)
        return _batch(args, items, spec, settings, engine.OnDask(client, args.retries))


def _existing(address):
    from distributed import Client
    try:
        client = Client(address, timeout=10)
    except (OSError, TimeoutError) as e:
        raise StyleTransferError('cannot reach the Dask scheduler at %s (%s)'
                                 % (address, e)) from e
    try:
        client.wait_for_workers(1, timeout=WAIT_FOR_WORKERS)
    except TimeoutError:
        client.close()
        raise StyleTransferError('the Dask scheduler at %s has had no worker for %d s'
                                 % (address, WAIT_FOR_WORKERS)) from None
    return client


def _batch(args, items, spec, settings, executor):
    bar, failed = None, [0]

    def on_start(to_run, skipped):
        nonlocal bar
        if not args.no_progress and sys.stderr.isatty():
            from tqdm import tqdm
            bar = tqdm(total=to_run + skipped, initial=skipped, unit='item', file=sys.stderr,
                       dynamic_ncols=True)
            bar.set_postfix(failed=0)

    def on_item(line):
        if line['status'] == 'failed':
            failed[0] += 1
            text = 'failed: %s: %s' % (line['output'], line['reason'])
            if bar is not None:
                bar.write(text, file=sys.stderr)
            else:
                print(text, file=sys.stderr)
        if bar is not None and line['status'] != 'skipped':
            bar.set_postfix(failed=failed[0], refresh=False)
            bar.update(1)

    try:
        summary = engine.run(items, spec, settings, args.output_dir, executor,
                             log_path=args.log_file, force=args.force, on_item=on_item,
                             on_start=on_start)
    finally:
        if bar is not None:
            bar.close()
    print('%d items: %d done, %d failed, %d up to date, in %.1f s; outputs and manifest.jsonl in '
          '%s' % (summary.total, summary.done, summary.failed, summary.skipped, summary.seconds,
                  args.output_dir))
    return summary.exit_code
