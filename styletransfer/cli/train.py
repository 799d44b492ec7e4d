"""train.py [CONTENT STYLE]: the book's coarse-to-fine style transfer from the command line.

Everything the user can get wrong is checked before the network is built; the optimisation
itself lives in styletransfer.gatys.optimise and only reports progress, which this module prints,
logs, traces and saves.
"""
import argparse
import dataclasses
import json
import math
import os
import shlex
import shutil
import signal
import sys

import numpy as np
from PIL import Image

from styletransfer import booklog
from styletransfer.vgg import layers
from styletransfer.cli.common import refuse
from styletransfer.config import (BOOK_STAGES, DTYPES, INIT_KINDS, OPTIMIZERS, POOLINGS,
                                  PRESERVE_COLORS, Config, parse_floats, parse_region,
                                  parse_stage, parse_style_blend)
from styletransfer.errors import StyleTransferError
from styletransfer.files import is_regular_or_missing, sha256_of, write_text

PROG = 'train.py'
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(REPO, 'scripts', 'train.py')
BUNDLED = os.path.join(REPO, 'images')
BOOK_CONTENT = os.path.join(BUNDLED, 'rainier.jpg')
BOOK_STYLE = os.path.join(BUNDLED, 'autumn-oak.jpg')
EXIT_DIVERGED, EXIT_INTERRUPTED = 1, 130
# Presets expand to options placed before the user's own, so explicit options win.
PRESETS = {
    'fast': ('--optimizer', 'lbfgs', '--stop-rtol', '1e-3', '--stop-window', '10',
             '--stage', '225x150:150:1000', '--stage', '450x300:80:1000'),
}


def build_parser():
    d = Config()
    p = argparse.ArgumentParser(
        prog=PROG,
        description='Neural style transfer as in the d2l book (MXNet edition): a VGG-19 feeds a '
                    'generated image that Adam optimises, first at a small size, then from that '
                    'result at a larger one. With no images it runs the book\'s own run on the '
                    'bundled rainier.jpg and autumn-oak.jpg.')
    p.add_argument('content', nargs='?', help='content photo (default: bundled rainier.jpg)')
    p.add_argument('style', nargs='?', help='style painting (default: bundled autumn-oak.jpg)')
    p.add_argument('-o', '--output', metavar='PATH', help='final image, .png or .jpg (default: '
                   'CONTENT-STYLE.png in the current folder, with "-random-weights" added for '
                   '--weights random); stage images, loss curve and contact sheet go beside it')
    p.add_argument('--overwrite', action='store_true', help='replace existing output files')
    p.add_argument('--weights', default=d.weights, metavar='zoo|random|PATH',
                   help='VGG-19 weights: "zoo" (Gluon model zoo, cached under $MXNET_HOME/models),'
                        ' a .params file saved from Gluon\'s vgg19, or "random" (seeded; a smoke '
                        'run, not a style transfer). Default: %(default)s')
    p.add_argument('--stage', action='append', metavar='WxH:ITERS:DECAY[:LR]',
                   help='one stage: size, iterations, lr x0.1 every DECAY iterations, optional '
                        'learning rate; repeat for coarse-to-fine (default: the book\'s %s)'
                        % ' '.join(s.describe() for s in BOOK_STAGES))
    p.add_argument('--lr', type=float, default=BOOK_STAGES[0].lr, metavar='LR',
                   help='learning rate of stages that do not give one (default: %(default)s)')
    p.add_argument('--content-weight', type=float, default=d.content_weight, metavar='W',
                   help='default: %(default)g')
    p.add_argument('--style-weight', type=float, default=d.style_weight, metavar='W',
                   help='weight of each style layer (default: %(default)g)')
    p.add_argument('--tv-weight', type=float, default=d.tv_weight, metavar='W',
                   help='default: %(default)g')
    p.add_argument('--content-layers', default=','.join(map(str, d.content_layers)),
                   metavar='LAYERS',
                   help='indices or names, e.g. conv4_2 (default: '
                        + layers.describe(d.content_layers) + ')')
    p.add_argument('--style-layers', default=','.join(map(str, d.style_layers)),
                   metavar='LAYERS',
                   help='indices or names (default: ' + layers.describe(d.style_layers) + ')')
    p.add_argument('--optimizer', choices=OPTIMIZERS, default=d.optimizer,
                   help='adam (the book\'s) or lbfgs (fewer iterations, each may evaluate the '
                        'network more than once; keeps pixels in range). Default: %(default)s')
    p.add_argument('--stop-rtol', type=float, default=d.stop_rtol, metavar='R',
                   help='end a stage early once its total loss fell by less than R (relative) '
                        'over --stop-window iterations (default: %(default)g, never)')
    p.add_argument('--stop-window', type=int, default=d.stop_window, metavar='N',
                   help='window of --stop-rtol, in iterations (default: %(default)s)')
    p.add_argument('--preset', choices=sorted(PRESETS),
                   help='a named set of options, applied before the ones given explicitly: '
                        + '; '.join('%s = %s' % (k, ' '.join(v)) for k, v in PRESETS.items()))
    g = p.add_argument_group('beyond the book (defaults leave the book\'s run unchanged)')
    g.add_argument('--style-blend', metavar='PATH:W,PATH:W',
                   help='several style images instead of STYLE, their Gram matrices mixed with '
                        'these weights (normalised to sum 1)')
    g.add_argument('--style-scale', type=float, default=d.style_scale, metavar='S',
                   help='style image size relative to the stage size: larger S, smaller '
                        'strokes relative to the picture (default: %(default)g, the book\'s)')
    g.add_argument('--style-layer-weights', metavar='W,W,...',
                   help='one multiplier of --style-weight per style layer (default: all 1)')
    g.add_argument('--preserve-colors', choices=PRESERVE_COLORS, default=d.preserve_colors,
                   help='keep the content\'s colours: "luminance" transfers on luminance only, '
                        '"histogram" gives the style image the content\'s colour mean and '
                        'covariance first (default: %(default)s)')
    g.add_argument('--region', action='append', metavar='MASK:STYLE',
                   help='spatial control: where MASK is white, use STYLE (or "none": no '
                        'style there); repeatable; the rest of the picture keeps the main style')
    g.add_argument('--init', default=d.init, metavar='content|noise|PATH',
                   help='stage 1 starts from the content (the book), noise or this image')
    g.add_argument('--noise-ratio', type=float, default=d.noise_ratio, metavar='R',
                   help='blend this much uniform noise (seeded by --seed) into the initial '
                        'image (default: %(default)g)')
    p.add_argument('--dtype', choices=DTYPES, default=d.dtype,
                   help='precision of the VGG network: bfloat16 (CPU only, through MXNet AMP and '
                        'oneDNN) is faster on CPUs with AVX-512 BF16 and moves the losses by '
                        'under about 1%%; the losses themselves stay float32 (default: '
                        '%(default)s, the book\'s)')
    g.add_argument('--pooling', choices=POOLINGS, default=d.pooling,
                   help='VGG pooling; avg often gives smoother results (default: %(default)s)')
    p.add_argument('--log-every', type=int, default=d.log_every, metavar='N',
                   help='print the book\'s loss line every N iterations (default: %(default)s)')
    p.add_argument('--log-file', metavar='PATH', help='also write the log lines to this file')
    p.add_argument('--trace', metavar='PATH',
                   help='write every logged iteration as JSON Lines to this file')
    p.add_argument('--seed', type=int, default=d.seed, metavar='N',
                   help='seed of --weights random (default: %(default)s)')
    p.add_argument('--ctx', default='auto', metavar='auto|cpu|cpu:N|gpu|gpu:N',
                   help='device; auto takes the first GPU if MXNet can use one, else the CPU')
    p.add_argument('--threads', type=int, metavar='N',
                   help='CPU threads for MXNet, at most 4 per core (default: $OMP_NUM_THREADS, '
                        'else all cores)')
    p.add_argument('--no-progress', action='store_true',
                   help='no progress bar (it is shown only on a terminal anyway)')
    p.add_argument('--checkpoint', metavar='PATH',
                   help='checkpoint file (default: OUTPUT with .ckpt); written on Ctrl-C or '
                        'SIGTERM, and every --checkpoint-every iterations')
    p.add_argument('--checkpoint-every', type=int, default=0, metavar='N',
                   help='also save a checkpoint every N iterations (default: only on stop)')
    p.add_argument('--resume', metavar='CHECKPOINT',
                   help='continue a stopped run from its checkpoint (same images, configuration '
                        'and outputs)')
    p.add_argument('--debug', action='store_true', help='show tracebacks of errors')
    return p


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else list(argv))
    try:
        return _train(args)
    except StyleTransferError as e:
        if args.debug:
            raise
        return refuse(PROG, e)
    except KeyboardInterrupt:
        # Ctrl-C while loading, before the run's own handler is in place: nothing to keep.
        if args.debug:
            raise
        print('\n%s: interrupted' % PROG, file=sys.stderr)
        return EXIT_INTERRUPTED


def parse_args(argv):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.preset:
        preset = list(PRESETS[args.preset])
        # --stage accumulates: the user's stages replace the preset's rather than add to them.
        if args.stage:
            preset = [a for k, a in enumerate(preset)
                      if a != '--stage' and (k == 0 or preset[k - 1] != '--stage')]
        args = parser.parse_args(preset + argv)
    return args


# More threads than this per core only make them wait for each other (and thousands make
# OpenMP abort).
MAX_THREADS_PER_CORE = 4


def _set_threads(args):
    # MXNet's OpenMP pool reads this once, when mxnet is first imported.
    cores = len(os.sched_getaffinity(0))
    if args.threads is not None:
        if not 1 <= args.threads <= MAX_THREADS_PER_CORE * cores:
            raise StyleTransferError('--threads must be 1..%d (%d per core available), not %d'
                                     % (MAX_THREADS_PER_CORE * cores, MAX_THREADS_PER_CORE,
                                        args.threads))
        os.environ['OMP_NUM_THREADS'] = str(args.threads)
    elif not os.environ.get('OMP_NUM_THREADS', '').strip():
        os.environ['OMP_NUM_THREADS'] = str(cores)
    # MXNet reads one number (OpenMP's nested list, "4,2", makes it abort as it loads).
    value = os.environ['OMP_NUM_THREADS'].strip()
    if not value.isdigit() or int(value) < 1:
        raise StyleTransferError('OMP_NUM_THREADS=%r is not one number of threads, which MXNet '
                                 'needs; set one or pass --threads N'
                                 % os.environ['OMP_NUM_THREADS'])
    return int(value)


def _config(args):
    if args.stage:
        stages = tuple(parse_stage(s, args.lr) for s in args.stage)
    else:
        stages = tuple(s if args.lr == s.lr else s.__class__(s.width, s.height, s.iterations,
                                                            s.decay_every, args.lr)
                       for s in BOOK_STAGES)
    blend = parse_style_blend(args.style_blend) if args.style_blend else ()
    if blend and args.style is not None:
        raise StyleTransferError('give STYLE or --style-blend, not both')
    if not blend and (args.content is None) != (args.style is None):
        raise StyleTransferError('give both CONTENT and STYLE images, or neither for the book\'s')
    return Config(
        content=args.content or BOOK_CONTENT, style=args.style or BOOK_STYLE, stages=stages,
        content_layers=layers.resolve(args.content_layers),
        style_layers=layers.resolve(args.style_layers),
        content_weight=args.content_weight, style_weight=args.style_weight,
        tv_weight=args.tv_weight, weights=args.weights, seed=args.seed,
        log_every=args.log_every, optimizer=args.optimizer, stop_rtol=args.stop_rtol,
        stop_window=args.stop_window, style_blend=blend, style_scale=args.style_scale,
        style_layer_weights=(parse_floats(args.style_layer_weights, '--style-layer-weights')
                             if args.style_layer_weights else ()),
        preserve_colors=args.preserve_colors, init=args.init, noise_ratio=args.noise_ratio,
        pooling=args.pooling, dtype=args.dtype,
        regions=tuple(parse_region(r) for r in args.region or ())).validate()


class Outputs:
    """Every file a run writes, checked before the run starts.

    `own` are files an interrupted run of the same output wrote (on --resume): they may be
    replaced without --overwrite.
    """

    def __init__(self, output, config, log_file=None, trace=None, checkpoint=None,
                 overwrite=False, own=()):
        from styletransfer.images import check_output_format
        if not output:
            name = lambda p: os.path.splitext(os.path.basename(p))[0]  # noqa: E731
            stem = '%s-%s' % (name(config.content), '+'.join(name(p) for p, _ in config.styles))
            output = stem + ('-random-weights' if config.weights == 'random' else '') + '.png'
        check_output_format(output)
        self.final = output
        base, ext = os.path.splitext(output)
        self.stages = ['%s-stage%d%s' % (base, k, ext) for k in range(1, len(config.stages) + 1)]
        self.losses = base + '-losses.png'
        self.sheet = base + '-sheet.png'
        self.interrupted = base + '-interrupted' + ext
        self.diverged = base + '-diverged' + ext
        self.checkpoint = checkpoint or base + '.ckpt'
        self.log_file, self.trace = log_file, trace
        self._check(overwrite, config.input_files(), {os.path.realpath(p) for p in own})
        self._check_space(config)

    def all(self):
        return [p for p in [self.final, *self.stages, self.losses, self.sheet, self.interrupted,
                            self.diverged, self.checkpoint, self.log_file, self.trace] if p]

    def _check(self, overwrite, inputs, own):
        inputs = {os.path.realpath(p) for p in inputs}
        seen = set()
        for path in self.all():
            real = os.path.realpath(path)
            if real in inputs:
                raise StyleTransferError('%s: output would overwrite an input image' % path)
            if real in seen:
                raise StyleTransferError('%s: two outputs share this path' % path)
            seen.add(real)
            if os.path.isdir(path):
                raise StyleTransferError('%s: output path is a directory' % path)
            if not is_regular_or_missing(path):
                # A device or pipe (/dev/null, /dev/stdout) is written in place, nothing in it
                # to lose; only the text outputs can go there (pictures need an extension).
                if path not in (self.log_file, self.trace):
                    raise StyleTransferError('%s: not a regular file' % path)
                if not os.access(path, os.W_OK):
                    raise StyleTransferError('%s: not writable' % path)
                continue
            # A link's target is what gets replaced, in the target's folder.
            folder = os.path.dirname(real)
            if not os.path.isdir(folder):
                raise StyleTransferError('%s: output folder does not exist' % folder)
            if not os.access(folder, os.W_OK | os.X_OK):
                raise StyleTransferError('%s: output folder is not writable' % folder)
            if os.path.exists(real) and not overwrite and real not in own:
                raise StyleTransferError('%s: exists; pass --overwrite to replace it' % path)

    def _check_space(self, config):
        # Uncompressed sizes bound what PNGs, the sheet and a checkpoint (float32 image, its
        # best copy, Adam's two moments) take; the temporary copy of an atomic write doubles it.
        largest = max(s.width * s.height for s in config.stages)
        need = 2 * (sum(3 * s.width * s.height for s in config.stages) * 3
                    + largest * 3 * 4 * 4 + (8 << 20))
        folder = os.path.dirname(os.path.abspath(self.final))
        free = shutil.disk_usage(folder).free
        if free < need:
            raise StyleTransferError('%s: %.0f MB free, the outputs need about %.0f MB'
                                     % (folder, free / 1e6, need / 1e6))


def resolve_ctx(spec):
    """'auto', 'cpu', 'cpu:N', 'gpu', 'gpu:N' -> (mx.Context, remark)."""
    import mxnet as mx
    spec = spec.strip().lower()
    if spec == 'auto':
        import d2lzh as d2l
        ctx = d2l.try_gpu()
        why = 'a GPU answered' if ctx.device_type == 'gpu' else 'no GPU usable, using the CPU'
        return ctx, 'auto: %s' % why
    kind, _, number = spec.partition(':')
    if kind not in ('cpu', 'gpu') or (number and not number.isdigit()):
        raise StyleTransferError('--ctx %r: expected auto, cpu, cpu:N, gpu or gpu:N' % spec)
    index = int(number or 0)
    if kind == 'cpu':
        return mx.cpu(index), 'as asked'
    # An explicit GPU request never falls back to the CPU.
    count = mx.context.num_gpus()
    if index >= count:
        raise StyleTransferError('--ctx %s: MXNet sees %d GPU(s) here%s' % (
            spec, count, '' if count else ' (a CPU-only mxnet, or no driver); use --ctx cpu'))
    try:
        mx.nd.zeros((1,), ctx=mx.gpu(index)).wait_to_read()
    except mx.base.MXNetError as e:
        raise StyleTransferError('--ctx %s: MXNet cannot run on this GPU (%s)'
                                 % (spec, str(e).splitlines()[0])) from e
    return mx.gpu(index), 'as asked'


class Reporter:
    """Prints the book's lines, keeps the log file and trace, draws the progress bar."""

    def __init__(self, outputs, run_info, show_bar, restored=None):
        restored = restored or {}
        self.outputs = outputs
        self.lines = list(restored.get('log_lines', []))
        self.trace = list(restored.get('trace_lines', [])) or [json.dumps({'run': run_info})]
        self.history = [_progress_from(h) for h in restored.get('history', [])]
        self.bar = show_bar
        self._stage_seconds = []

    def state(self):
        """What a checkpoint keeps so that a resumed run's log, trace and curve are whole."""
        return {'log_lines': self.lines, 'trace_lines': self.trace,
                'history': [[getattr(p, f) for f in HISTORY_FIELDS] for p in self.history]}

    def line(self, text):
        self.clear_bar()
        print(text, flush=True)
        self.lines.append(text)
        if self.outputs.log_file:
            write_text(self.outputs.log_file, '\n'.join(self.lines) + '\n')

    def progress(self, p, config):
        self.history.append(p)
        if p.iteration == 0 or not self._stage_seconds:
            self._stage_seconds = []
        self._stage_seconds.append(p.seconds)
        if p.iteration % config.log_every == 0 and p.iteration != 0:
            self.line(booklog.format_epoch(p.iteration, p.content, p.style, p.tv, p.seconds))
            self.trace.append(json.dumps({
                'stage': p.stage, 'epoch': p.iteration, 'lr': p.lr, 'content': p.content,
                'style': p.style, 'tv': p.tv, 'total': p.total, 'seconds': p.seconds,
                'width': p.width, 'height': p.height}))
            if self.outputs.trace:
                write_text(self.outputs.trace, '\n'.join(self.trace) + '\n')
        if p.new_lr is not None:
            self.line(booklog.format_lr(p.new_lr))
        if self.bar:
            self._draw_bar(p, config)

    def _draw_bar(self, p, config):
        recent = sorted(self._stage_seconds[-20:])
        per_iter = recent[len(recent) // 2]
        pixels = p.width * p.height
        left = (p.iterations - p.iteration - 1) * per_iter + sum(
            s.iterations * per_iter * s.width * s.height / pixels for s in config.stages[p.stage:])
        width = 24
        done = int(width * (p.iteration + 1) / p.iterations)
        sys.stderr.write('\r\033[Kstage %d/%d [%s%s] %d/%d  content %.2f style %.2f TV %.2f  '
                         '%.2fs/it  %s left' % (
                             p.stage, p.stages, '#' * done, '.' * (width - done), p.iteration + 1,
                             p.iterations, p.content, p.style, p.tv, per_iter, _clock(left)))
        sys.stderr.flush()

    def clear_bar(self):
        if self.bar:
            sys.stderr.write('\r\033[K')
            sys.stderr.flush()


HISTORY_FIELDS = ('stage', 'stages', 'iteration', 'iterations', 'lr', 'content', 'style', 'tv',
                  'total', 'seconds', 'width', 'height')


def _progress_from(values):
    from styletransfer.progress import Progress
    return Progress(*values)


def _clock(seconds):
    seconds = int(seconds)
    return '%d:%02d:%02d' % (seconds // 3600, seconds // 60 % 60, seconds % 60)


class StopRequest:
    """Ctrl-C or SIGTERM asks the run to stop after the current iteration, with a checkpoint;
    a second Ctrl-C stops at once."""

    def __init__(self):
        self.requested = False
        self._previous = {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum, frame):
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True
        print('\n%s: stopping after this iteration to save a checkpoint (Ctrl-C again to stop '
              'at once)' % PROG, file=sys.stderr, flush=True)


def _resume_checks(args, parser):
    """--resume takes the configuration from the checkpoint: refuse options that would change
    it, rather than ignore them."""
    defaults = parser.parse_args([])
    for name in CONFIG_OPTIONS:
        if getattr(args, name) != getattr(defaults, name):
            raise StyleTransferError('--resume continues the checkpoint\'s run with its own '
                                     'configuration; drop --%s' % name.replace('_', '-'))
    if args.content or args.style:
        raise StyleTransferError('--resume continues the checkpoint\'s run with its own images; '
                                 'drop CONTENT and STYLE')


CONFIG_OPTIONS = ('stage', 'lr', 'content_weight', 'style_weight', 'tv_weight', 'content_layers',
                  'style_layers', 'log_every', 'weights', 'seed', 'optimizer', 'stop_rtol',
                  'stop_window', 'preset', 'style_blend', 'style_scale', 'style_layer_weights',
                  'preserve_colors', 'init', 'noise_ratio', 'pooling', 'region', 'dtype')


def _train(args):
    run = TrainingRun(args)
    run.start()
    return run.optimise()


class TrainingRun:
    """One run of the train script: everything the user gave is checked in the constructor,
    before anything slow; `start` loads the network; `optimise` runs, reports and saves."""

    def __init__(self, args):
        from styletransfer import checkpoint as ckpt_io
        self.args, self.threads = args, _set_threads(args)
        if args.checkpoint_every < 0:
            raise StyleTransferError('--checkpoint-every must be 0 (off) or more')
        self.resume = None
        if args.resume:
            _resume_checks(args, build_parser())
            self.ctx, self.ctx_remark = resolve_ctx(args.ctx)
            self.resume = _relocated(ckpt_io.load(args.resume, self.ctx), args.resume)
            self.config = config = self.resume.config.validate()
            _check_inputs_unchanged(args.resume, self.resume.extra.get('inputs', {}))
        else:
            self.config = config = _config(args)
        # What the pictures were when the run started: a resumed run must find the same.
        self.input_digests = {os.path.abspath(path): _digest(path)
                              for path in config.input_files()}
        self.content_img, self.notes = _load_input(config.content, config)
        self.styles = []
        for path, weight in config.styles:
            picture, more = _load_input(path, config)
            self.styles.append((picture, weight))
            self.notes += more
        self.init_img = None
        if config.init not in INIT_KINDS:
            self.init_img, more = _load_input(config.init, config)
            self.notes += more
        self.net_content, self.net_styles = _color_inputs(config, self.content_img, self.styles)
        self.regions = (_load_regions(config, self.content_img, self.net_styles, self.notes)
                        if config.regions else None)
        if self.resume is None:
            self.outputs = Outputs(args.output, config, args.log_file, args.trace,
                                   args.checkpoint, args.overwrite)
            self.ctx, self.ctx_remark = resolve_ctx(args.ctx)
        else:
            extra = self.resume.extra
            self.outputs = Outputs(args.output or extra.get('output'), config,
                                   args.log_file or extra.get('log_file'),
                                   args.trace or extra.get('trace_file'), args.resume,
                                   args.overwrite,
                                   own=extra.get('written', []) + [args.resume] + [
                                       extra[k] for k in ('log_file', 'trace_file')
                                       if extra.get(k)])
        if config.dtype == 'bfloat16' and self.ctx.device_type != 'cpu':
            raise StyleTransferError('--dtype bfloat16 runs on the CPU only (MXNet 1.9\'s '
                                     'bfloat16 kernels are oneDNN\'s); use --ctx cpu or float32')
        if self.ctx.device_type == 'cpu':   # a GPU's memory is the driver's to report
            from styletransfer.resources import check_memory
            check_memory(config)

    def start(self):
        """The slow parts: weights, network, the log's first lines."""
        import mxnet as mx
        from styletransfer.vgg import features, weights
        from styletransfer.images import Normalizer
        config, resume = self.config, self.resume
        self.vgg = weights.load(config.weights, config.deepest, config.seed)
        run_info = {'config': config.to_dict(), 'weights': self.vgg.description,
                    'context': str(self.ctx), 'threads': self.threads, 'mxnet': mx.__version__}
        self.reporter = reporter = Reporter(
            self.outputs, run_info, sys.stderr.isatty() and not self.args.no_progress,
            resume.extra if resume else None)
        if resume is None:
            for note in self.notes:
                reporter.line('# ' + note)
            reporter.line('# content %s, style %s' % (config.content, ', '.join(
                '%s (%.3g)' % sw if config.style_blend else sw[0] for sw in config.styles)))
            reporter.line('# weights: %s' % self.vgg.description)
            reporter.line('# content layers %s; style layers %s' % (
                layers.describe(config.content_layers), layers.describe(config.style_layers)))
        else:
            reporter.line('# resumed from %s at stage %d, iteration %d' % (
                self.args.resume, resume.stage, resume.next_iteration))
        reporter.line('# context: %s (%s), %d threads%s' % (
            self.ctx, self.ctx_remark, self.threads,
            ', VGG in bfloat16' if config.dtype == 'bfloat16' else ''))
        self.metadata = {'Software': 'styletransfer', 'weights': self.vgg.description,
                         'config': json.dumps(config.to_dict())}
        self.extractor = features.build_extractor(
            self.vgg, config.content_layers, config.style_layers, self.ctx, config.pooling,
            config.dtype)
        self.normalizer = Normalizer(self.ctx)
        self.results = list(resume.stage_pictures) if resume else []
        self.written = list(resume.extra.get('written', [])) if resume else []

    def optimise(self):
        """Run every stage; return the exit status."""
        from styletransfer.gatys.optimise import transfer
        last = None
        with StopRequest() as stop:
            try:
                for event in transfer(self.extractor, self.normalizer, self.net_content,
                                      self.net_styles, self.config, self.ctx, self.resume,
                                      self.init_img, self.regions):
                    if hasattr(event, 'picture'):
                        code = self._stage_end(event, stop)
                    else:
                        last = event
                        code = self._iteration(event, stop)
                    if code is not None:
                        return code
            except KeyboardInterrupt:
                self._keep_best_after_stop(last, 'stopped at once')
                print('%s: interrupted' % PROG, file=sys.stderr)
                return EXIT_INTERRUPTED
            except Exception:
                # A bug or a failure of MXNet's: keep what the run has made, then let the
                # traceback show what went wrong.
                self._keep_best_after_stop(last, 'stopped by the error below')
                raise
        self._finish()
        return 0

    def _keep_best_after_stop(self, last, how):
        self.reporter.clear_bar()
        if last is not None and last.best is not None:
            self._keep_best(last, self.outputs.interrupted)
            self.reporter.line('# %s in stage %d; best image so far: %s'
                               % (how, last.stage, self.outputs.interrupted))

    def _stage_end(self, event, stop):
        from styletransfer.colors import restore_colors
        from styletransfer.images import save_image, to_uint8
        picture = to_uint8(event.picture)
        if self.config.preserve_colors == 'luminance':
            picture = restore_colors(picture, self.content_img)
        self.results.append(picture)
        path = self.outputs.stages[event.stage - 1]
        save_image(picture, path, self.metadata)
        self.written.append(path)
        if event.stage < event.stages and (stop.requested or self.args.checkpoint_every):
            self._checkpoint(event.stage + 1, 0, event.image, None, float('inf'), None)
            if stop.requested:
                return _stopped(self.reporter, self.outputs, event.stage + 1, 0)
        return None

    def _iteration(self, event, stop):
        config, reporter = self.config, self.reporter
        if event.iteration == 0:
            s = config.stages[event.stage - 1]
            reporter.line(booklog.format_stage_header(
                event.stage, event.stages, s.width, s.height, s.iterations,
                s.lr if config.optimizer == 'adam' else None, s.decay_every,
                self.vgg.description, config.lr_decay))
        if not math.isfinite(event.total):
            return self._diverged(event)
        reporter.progress(event, config)
        every = self.args.checkpoint_every
        periodic = every and (event.iteration + 1) % every == 0
        if not event.last and (stop.requested or periodic):
            if stop.requested:
                self._keep_best(event, self.outputs.interrupted)
            self._checkpoint(event.stage, event.iteration + 1, event.image, event.best,
                             _best_total(reporter.history, event.stage), event.trainer)
            if stop.requested:
                return _stopped(reporter, self.outputs, event.stage, event.iteration + 1,
                                self.outputs.interrupted)
        return None

    def _diverged(self, event):
        outputs = self.outputs
        self.reporter.clear_bar()
        if event.best is not None:
            self._keep_best(event, outputs.diverged)
            kept = 'last finite image: %s' % outputs.diverged
        else:
            kept = 'no finite image in this stage' + (
                '; the previous stage\'s is in %s' % outputs.stages[event.stage - 2]
                if event.stage > 1 else '')
        self.reporter.line('# stage %d diverged at iteration %d (total loss %s); %s'
                           % (event.stage, event.iteration, event.total, kept))
        print('%s: error: the loss became %s in stage %d at iteration %d; try a smaller --lr'
              % (PROG, event.total, event.stage, event.iteration), file=sys.stderr)
        return EXIT_DIVERGED

    def _checkpoint(self, stage, next_iteration, image, best, best_total, trainer):
        from styletransfer import checkpoint as ckpt_io
        outputs = self.outputs

        def absolute(path):   # so that the run can be resumed from another folder
            return os.path.abspath(path) if path else path
        state = ckpt_io.Checkpoint(
            self.config.with_absolute_paths(), stage, next_iteration, image,
            best if best is not None else image, best_total,
            ckpt_io.trainer_states(trainer) if trainer is not None else b'', self.results,
            dict(self.reporter.state(), output=absolute(outputs.final),
                 log_file=absolute(outputs.log_file), trace_file=absolute(outputs.trace),
                 written=[absolute(p) for p in self.written], inputs=self.input_digests,
                 folder=os.path.dirname(os.path.abspath(outputs.checkpoint))))
        ckpt_io.save(outputs.checkpoint, state)

    def _keep_best(self, progress, path):
        from styletransfer.images import save_image, to_uint8
        save_image(to_uint8(self.normalizer.postprocess(progress.best)), path, self.metadata)
        self.written.append(path)

    def _finish(self):
        from styletransfer.images import save_image
        from styletransfer.report import contact_sheet, plot_losses
        outputs, config, caption = self.outputs, self.config, 'weights: %s' % self.vgg.description
        save_image(self.results[-1], outputs.final, self.metadata)
        plot_losses(self.reporter.history, outputs.losses, title=caption)
        panels = [('content', self.content_img)] + [
            ('style' if len(self.styles) == 1 else 'style %.2g' % w, p) for p, w in self.styles
        ] + [('stage %d: %dx%d' % (k, s.width, s.height), r)
             for k, (s, r) in enumerate(zip(config.stages, self.results), 1)]
        contact_sheet(panels, outputs.sheet, caption=caption)
        if os.path.exists(outputs.checkpoint) and (self.args.checkpoint_every or self.resume):
            os.remove(outputs.checkpoint)   # the run is complete: nothing left to resume
        for path in [outputs.final, *outputs.stages, outputs.losses, outputs.sheet,
                     outputs.log_file, outputs.trace]:
            if path:
                self.reporter.line('# wrote %s' % path)


def _best_total(history, stage):
    totals = [p.total for p in history if p.stage == stage and math.isfinite(p.total)]
    return min(totals) if totals else float('inf')


def _stopped(reporter, outputs, stage, next_iteration, best=None):
    reporter.line('# stopped before stage %d, iteration %d; checkpoint: %s%s'
                  % (stage, next_iteration, outputs.checkpoint,
                     '; best image so far: %s' % best if best else ''))
    command = ' '.join(shlex.quote(a) for a in _this_command() + ['--resume',
                                                                  outputs.checkpoint])
    print('%s: stopped; continue with: %s' % (PROG, command), file=sys.stderr)
    return EXIT_INTERRUPTED


def _digest(path):
    try:
        return sha256_of(path)
    except OSError:
        return None       # missing or unreadable: loading the picture says so, in one line


def _relocated(resume, checkpoint):
    """`resume` with its paths moved along with its folder: when the folder the checkpoint was
    written in is gone and the checkpoint is elsewhere, the run's folder was moved or renamed,
    and every path inside it (pictures, outputs) is taken to be at the same place in the new
    one. Paths outside it stay."""
    extra = resume.extra
    old, new = extra.get('folder'), os.path.dirname(os.path.abspath(checkpoint))
    if not old or old == new or os.path.isdir(old):
        return resume

    def move(path):
        inside = os.path.relpath(path, old)
        return path if inside.startswith(os.pardir) else os.path.join(new, inside)
    moved = {key: move(extra[key]) if extra.get(key) else extra.get(key)
             for key in ('output', 'log_file', 'trace_file')}
    moved['written'] = [move(p) for p in extra.get('written', [])]
    moved['inputs'] = {move(p): digest for p, digest in extra.get('inputs', {}).items()}
    return dataclasses.replace(resume, config=resume.config.map_paths(move),
                               extra=dict(extra, folder=new, **moved))


def _check_inputs_unchanged(checkpoint, digests):
    for path, digest in digests.items():
        if not os.path.isfile(path):
            raise StyleTransferError('%s: the checkpoint\'s run read this picture; it is gone '
                                     '(resume needs the same pictures)' % path)
        if _digest(path) != digest:
            raise StyleTransferError('%s: changed since %s was written; resume needs the same '
                                     'pictures' % (path, checkpoint))


def _this_command():
    """The train script as this process was started, to be run again from the same folder:
    the same interpreter and scripts/train.py as typed, or `-m styletransfer.cli.train`; when
    another script ran `main` (gallery.py), scripts/train.py by its full path."""
    def started_as(path):
        try:
            return os.path.samefile(sys.argv[0], path)
        except OSError:
            return False
    if started_as(__file__):
        script = ['-m', 'styletransfer.cli.train']
    elif started_as(SCRIPT):
        script = [sys.argv[0]]
    else:
        script = [SCRIPT]
    return [sys.executable] + script


def _color_inputs(config, content, styles):
    """The pictures the network sees, after the colour control asked for."""
    from styletransfer import colors
    if config.preserve_colors == 'luminance':
        return colors.luminance_inputs(content, styles)
    if config.preserve_colors == 'histogram':
        return content, [(colors.match_histogram(p, content), w) for p, w in styles]
    return content, styles


def _load_regions(config, content, main_styles, notes):
    """((mask, styles), ...) for optimise.transfer: each --region, then the rest of the
    picture with the main style. Masks are read as grey levels (white: inside)."""
    from styletransfer.colors import luminance
    regions, covered = [], 0.0
    for mask_path, style_path in config.regions:
        picture, more = _load_input(mask_path, config)
        notes += more
        mask = np.asarray(Image.fromarray(picture).resize(
            (content.shape[1], content.shape[0]), Image.Resampling.BILINEAR))
        mask = luminance(mask) / 255.0
        if style_path == 'none':
            styles = []
        else:
            style, more = _load_input(style_path, config)
            notes += more
            styles = _color_inputs(config, content, [(style, 1.0)])[1]
        regions.append((mask, styles))
        covered = covered + mask
    regions.append((np.clip(1.0 - covered, 0.0, 1.0), main_styles))
    return regions


def _load_input(path, config):
    from styletransfer.images import load_image
    image, notes = load_image(path)
    smallest = layers.min_side(config.content_layers + config.style_layers)
    if min(image.shape[:2]) < smallest:
        raise StyleTransferError('%s: %dx%d is too small: the layers used need at least %d '
                                 'pixels on each side' % (path, image.shape[1], image.shape[0],
                                                          smallest))
    return image, notes
