"""styletransfer train-net: train a feed-forward style network (Johnson et al.; several --style
make one conditional network) on a folder of pictures, or an AdaIN decoder for any style
(--method adain) on a folder of content pictures and one of style pictures.

The training is the library's (fast.training with fast.train_johnson or fast.train_adain;
cli/netjob.py maps each method's options onto them); this module runs it and keeps, beside
-o MODEL.params, MODEL.log, MODEL-losses.png, MODEL-samples-ITER.jpg and MODEL.ckpt (every
--checkpoint-every steps, on Ctrl-C/SIGTERM and at the end). --workers starts local workers
(cli/launch.py, whose docstring also gives the commands for several machines).
"""
import argparse
import os
import sys

from styletransfer import checkpoint, device
from styletransfer.cli import netjob
from styletransfer.cli.common import EXIT_INTERRUPTED, parse_args, refuse
from styletransfer.errors import Diverged, StyleTransferError

def build_parser(prog):
    from styletransfer.fast import train_adain as ta, train_johnson as tj
    from styletransfer.fast.training import TrainingSettings
    from styletransfer.losses import STYLE_LOSSES
    s, loss, a, a_loss = TrainingSettings(), tj.JohnsonLoss(), ta.SETTINGS, ta.AdaINLoss()
    from styletransfer.cli import launch

    def both(name, value):
        return 'default %g; adain %g' % (value, a[name] if name in a else getattr(a_loss, name))
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split('\n\n')[0],
                                epilog=launch.__doc__.split('\n\n', 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--method', choices=('johnson', 'adain'), help='johnson: a network for '
                   '--style (default); adain: a decoder for any style (--style-dir)')
    p.add_argument('--style', action='append', metavar='PATH',
                   help='style picture; repeat for a conditional network of several styles')
    p.add_argument('--content-dir', metavar='DIR', help='folder of training pictures (any depth)')
    p.add_argument('--style-dir', metavar='DIR', help='adain: folder of style pictures')
    p.add_argument('--encoder', metavar='vgg_normalised.pth', help='adain: the authors\' encoder '
                   '(default: our VGG-19, --weights)')
    p.add_argument('-o', '--output', metavar='MODEL.params', help='the trained network')
    p.add_argument('--add-styles-to', metavar='MODEL', help='a trained network (.params or '
                   '.pth): keep its styles, train only new rows for --style')
    p.add_argument('--resume', metavar='CKPT', help='continue a stopped training exactly')
    p.add_argument('--overwrite', action='store_true', help='replace existing outputs')
    for name, kind, text in (
            ('iterations', int, 'steps (%s)' % both('iterations', s.iterations)),
            ('batch_size', int, 'pictures per step and worker (%s)' % both('batch_size',
                                                                           s.batch_size)),
            ('image_size', int, 'side of the random square crops (%s)' % both('image_size',
                                                                              s.image_size)),
            ('load_size', int, 'shorter side the pictures are resized to before cropping '
                               '(default: the image size; adain %d)' % a['load_size']),
            ('lr', float, 'Adam\'s learning rate (%s)' % both('lr', s.lr)),
            ('lr_decay', float, 'iteration i runs at lr / (1 + DECAY i) (%s)'
                                % both('lr_decay', s.lr_decay)),
            ('seed', int, 'initialisation, data order, crops (default %d)' % s.seed),
            ('content_weight', float, both('content_weight', loss.content_weight)),
            ('style_weight', float, both('style_weight', loss.style_weight)),
            ('tv_weight', float, 'default %g' % loss.tv_weight),
            ('style_size', int, 'longer side of the style pictures, 0: as they are (default '
                                '%d)' % loss.style_size),
            ('log_every', int, 'a log line every N steps (default %d)' % netjob.OWN['log_every']),
            ('sample_every', int, 'a sample sheet every N steps, 0: none (default %d)'
                                  % netjob.OWN['sample_every']),
            ('samples', int, 'content pictures on the sheet, the folder\'s first ones, held '
                             'out of training when it has %dx more (default %d)'
                             % (netjob.HOLD_OUT_FACTOR, netjob.OWN['samples'])),
            ('checkpoint_every', int, 'a checkpoint every N steps, 0: only when stopped '
                                      '(default %d)' % netjob.OWN['checkpoint_every']),
            ('loader_workers', int, 'threads decoding pictures ahead (default 0)'),
            ('threads', int, 'CPU threads for MXNet (per worker)'),
            ('workers', int, 'start N local workers (data-parallel, dist_sync)'),
            ('servers', int, 'with --workers: parameter servers (default 1)')):
        p.add_argument('--' + name.replace('_', '-'), type=kind, metavar='N', help=text)
    p.add_argument('--style-loss', choices=sorted(STYLE_LOSSES), help='default %s'
                   % loss.style_loss)
    p.add_argument('--weights', metavar='zoo|random|PATH', help='VGG-19 of the loss, or '
                   'adain\'s encoder (default zoo; random is seeded and NOT pretrained: a '
                   'smoke run)')
    p.add_argument('--layer-scales', choices=ta.LAYER_SCALES, help='adain: divide the weights '
                   'by each layer\'s squared mean activation (default auto: for our VGG-19)')
    p.add_argument('--content-layers', metavar='LAYERS', help='default %s'
                   % ','.join(tj.CONTENT_LAYERS))
    p.add_argument('--style-layers', metavar='LAYERS', help='default %s'
                   % ','.join(tj.STYLE_LAYERS))
    p.add_argument('--ctx', metavar='cpu|gpu|gpu:N', help='device (default cpu)')
    p.add_argument('--debug', action='store_true', help=argparse.SUPPRESS)
    return p


def main(argv=None, prog='styletransfer train-net'):
    argv = sys.argv[1:] if argv is None else list(argv)
    args, code = parse_args(build_parser(prog), argv)
    if args is None:
        return code
    role = os.environ.get('DMLC_ROLE')
    if role in ('scheduler', 'server'):
        device.set_threads(1)
        import mxnet  # noqa: F401  MXNet serves on import in these roles, then exits
        return 0
    try:
        if args.workers is not None:
            return _launch(args, argv, prog, role)
        return _train(args, prog, distributed=role == 'worker')
    except StyleTransferError as e:
        if args.debug:
            raise
        return refuse(prog, e)
    except KeyboardInterrupt:       # a second Ctrl-C, or one before the training started
        print('\n%s: interrupted' % prog, file=sys.stderr)
        return EXIT_INTERRUPTED


def _launch(args, argv, prog, role):
    from styletransfer.cli.launch import launch, strip_options
    if role:
        raise StyleTransferError('--workers starts its own processes: drop it when DMLC_ROLE '
                                 'is set', 'workers')
    servers = 1 if args.servers is None else args.servers
    if args.workers < 1 or servers < 1:
        raise StyleTransferError('--workers and --servers must be at least 1', 'workers')
    netjob.job(args, check_outputs=True)      # refuse bad options here, not in every worker
    threads = args.threads or max(1, device.cores() // args.workers)
    command = [sys.executable, '-m', 'styletransfer', 'train-net'] + strip_options(
        argv, ('--workers', '--servers', '--threads')) + ['--threads', str(threads)]
    return launch(command, args.workers, servers, threads, prog)


def _training(opts, state, ctx, distributed):
    from styletransfer.fast.training import Training
    from styletransfer.fast.imagefolder import read_resized
    settings = netjob.settings(opts, state)
    recipe = netjob.recipe(opts) if state is None else None
    samples = [read_resized(p, settings.image_size) for p in opts['sample_files']]
    return Training(recipe, netjob.folders(opts), settings, ctx, samples, opts['held_out'],
                    opts['loader_workers'], 'dist_sync' if distributed else None,
                    resume=state)


def _train(args, prog, distributed):
    threads = device.set_threads(args.threads)
    # a worker checks its outputs once it knows it is worker 0, the one that writes: the
    # others would find worker 0's first files
    opts, state, extra, outputs = netjob.job(args, check_outputs=not distributed)
    from styletransfer.cli.console import StopRequest
    from styletransfer.events import Progress
    from styletransfer.report import LogWriter
    ctx, remark = device.resolve_ctx(args.ctx or 'cpu')
    training = _training(opts, state, ctx, distributed)
    writes = training.rank == 0
    if not writes:
        training.samples = []         # worker 0 shows them
    if distributed and writes:
        netjob.check(outputs, outputs['net'][:-len('.params')], args, extra)
    lines = list(extra.get('log_lines', []))
    log = LogWriter(outputs['log'], lines) if writes else None
    written = set(extra.get('written', []))
    if writes:
        written.add(os.path.abspath(outputs['log']))
    tag = 'worker %d/%d: ' % (training.rank, training.workers) if distributed else ''

    def say(text):
        if writes:
            print(text, flush=True)
            lines.append(text)
            log.write(text)

    def keep(path):
        written.add(os.path.abspath(path))

    def save_checkpoint():
        keep(outputs['checkpoint'])
        checkpoint.save(outputs['checkpoint'], training.state(), dict(
            options=opts, log_lines=lines, written=sorted(written)))

    s, recipe = training.settings, training.recipe
    if state is None:
        for name, images in training.images.items():
            held = [p for p in opts['held_out'] if p.startswith(images.folder + os.sep)]
            say('# %s %s: %d pictures%s' % (name, images.folder, len(images.files),
                                            '; held out for samples: %d' % len(held)
                                            if held else ''))
        for line in recipe.summary():
            say('# ' + line)
        say('# %d iterations of batch %d x %d worker(s), %dx%d crops%s, Adam lr %g%s' % (
            s.iterations, s.batch_size, training.workers, s.image_size, s.image_size,
            ' of pictures resized to %d' % s.load_size if s.load_size else '', s.lr,
            ' / (1 + %g i)' % s.lr_decay if s.lr_decay else ''))
    else:
        say('# resumed from %s at iteration %d' % (args.resume, training.iteration))
    say('# context %s (%s), %d threads' % (ctx, remark, threads))
    _whole_line('%sstart at iteration %d, parameters sha256 %s' % (tag, training.iteration,
                                                                    training.digest()))
    seconds, steps, broken = 0.0, 0, len(training.broken)
    try:
        with StopRequest(prog, training):
            for event in training:
                if not isinstance(event, Progress):
                    if writes:
                        _sheet(outputs['samples'] % (event.iteration + 1), training, event)
                        keep(outputs['samples'] % (event.iteration + 1))
                    continue
                seconds, steps = seconds + event.seconds, steps + 1
                for path, why in training.broken[broken:]:
                    say('# skipped broken file %s: %s' % (path, why))
                broken = len(training.broken)
                i = event.iteration + 1
                if i % opts['log_every'] == 0 or event.last:
                    terms = ', '.join('%s loss %.4g' % ('TV' if t == 'tv' else t,
                                                        event.terms[t])
                                      for t in recipe.terms[:-1])
                    say('iteration %6d, %s, %.2f sec, %.2f images/s%s' % (
                            i, terms, seconds,
                            steps * s.batch_size * training.workers / seconds,
                            ', %d broken files skipped' % broken if broken else ''))
                    seconds, steps = 0.0, 0
                if writes and opts['checkpoint_every'] and i % opts['checkpoint_every'] == 0 \
                        and not event.last:
                    save_checkpoint()
    except Diverged as d:
        say('# diverged at iteration %d (total %s); try a smaller --lr' % (d.iteration + 1,
                                                                          d.total))
        return 1
    finally:
        if log:
            log.close()
    _whole_line('%send at iteration %d, parameters sha256 %s' % (tag, training.iteration,
                                                                  training.digest()))
    if writes:
        _plot(outputs['losses'], training)
        keep(outputs['losses'])
        if not training.stopped:
            training.save(outputs['net'], {'iterations': training.iteration,
                                           'image_size': s.image_size})
            keep(outputs['net'])
        # also at the end: --resume --iterations MORE continues a finished training
        save_checkpoint()
    if training.stopped:
        if writes:
            print('%s: stopped at iteration %d; continue with: styletransfer train-net '
                  '--resume %s' % (prog, training.iteration, outputs['checkpoint']),
                  file=sys.stderr)
        return EXIT_INTERRUPTED
    if writes:
        print('%s: wrote %s' % (prog, outputs['net']), file=sys.stderr)
    return 0


def _whole_line(text):
    """One write per line: the workers share the launcher's standard output, and print()
    writes the text and its newline separately when Python runs unbuffered
    (PYTHONUNBUFFERED), so two workers' lines could interleave."""
    sys.stdout.write(text + '\n')
    sys.stdout.flush()


def _plot(path, training):
    from styletransfer.report import plot_losses
    plot_losses(training.history, path, title='%s: %s' % (
        training.recipe.title(), training.recipe.weights_description))


def _sheet(path, training, event):
    from styletransfer.report import contact_sheet
    panels = []
    per = len(event.pictures) // len(training.samples)
    for k, content in enumerate(training.samples):
        panels.append(('content %d' % (k + 1), content))
        panels.extend(zip(event.labels[k * per:(k + 1) * per],
                          event.pictures[k * per:(k + 1) * per]))
    contact_sheet(panels, path, height=min(256, training.settings.image_size),
                  caption='iteration %d' % (event.iteration + 1))
