"""styletransfer train [CONTENT STYLE]: the book's coarse-to-fine style transfer from the command
line (also scripts/train.py).

This module only translates: options become the library's Network, Settings and Inputs (whose
own checks name the option at fault), the outputs are planned and checked, and cli.runner drives
the run. Everything the user can get wrong is checked before the network is loaded.
"""
import argparse
import sys

from styletransfer import device, resources
from styletransfer.cli import runner
from styletransfer.cli.common import guarded, option_name, parse_args
from styletransfer.cli.resume import resumed
from styletransfer.errors import StyleTransferError
from styletransfer.inputs import Inputs
from styletransfer.outputs import OutputPlan, default_name
from styletransfer.data import bundled
from styletransfer.settings import (BOOK_STAGES, OPTIMIZERS, PRESERVE_COLORS,
                                    STYLE_LOSS_NAMES, Settings)
from styletransfer.vgg import layers
from styletransfer.vgg.network import DTYPES, POOLINGS, Network

PROG = 'train.py'
# Presets expand to options placed before the user's own, so explicit options win.
PRESETS = {
    'fast': ('--optimizer', 'lbfgs', '--stop-rtol', '1e-3', '--stop-window', '10',
             '--stage', '225x150:150:1000', '--stage', '450x300:80:1000'),
}
# Options that become library fields: option dest -> (the objects it sets, field). Their argparse
# default is None, so that what the user gave can be told from what they left out.
FIELDS = {
    'stage': (('settings',), 'stages'), 'lr': (('settings',), 'lr'),
    'content_weight': (('settings',), 'content_weight'),
    'style_weight': (('settings',), 'style_weight'), 'tv_weight': (('settings',), 'tv_weight'),
    'style_loss': (('settings',), 'style_loss'),
    'optimizer': (('settings',), 'optimizer'), 'stop_rtol': (('settings',), 'stop_rtol'),
    'stop_window': (('settings',), 'stop_window'), 'style_scale': (('settings',), 'style_scale'),
    'style_layer_weights': (('settings',), 'style_layer_weights'),
    'preserve_colors': (('settings',), 'preserve_colors'),
    'noise_ratio': (('settings',), 'noise_ratio'), 'seed': (('settings', 'network'), 'seed'),
    'weights': (('network',), 'weights'), 'content_layers': (('network',), 'content_layers'),
    'style_layers': (('network',), 'style_layers'), 'pooling': (('network',), 'pooling'),
    'dtype': (('network',), 'dtype'),
    'style_blend': (('inputs',), 'style_blend'), 'init': (('inputs',), 'init'),
    'region': (('inputs',), 'region'),
}
LOG_EVERY = 50


def build_parser(prog=PROG):
    p = argparse.ArgumentParser(
        prog=prog,
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
    add_method_options(p)
    p.add_argument('--log-every', type=int, metavar='N',
                   help='print the book\'s loss line every N iterations (default: %d)'
                        % LOG_EVERY)
    p.add_argument('--log-file', metavar='PATH', help='also write the log lines to this file')
    p.add_argument('--trace', metavar='PATH',
                   help='write every logged iteration as JSON Lines to this file')
    add_device_options(p)
    p.add_argument('--no-progress', action='store_true',
                   help='no progress bar (it is shown only on a terminal anyway)')
    p.add_argument('--checkpoint', metavar='PATH',
                   help='checkpoint file (default: OUTPUT with .ckpt); written on Ctrl-C or '
                        'SIGTERM, and every --checkpoint-every iterations')
    p.add_argument('--checkpoint-every', type=int, default=0, metavar='N',
                   help='also save a checkpoint every N iterations (default: only on stop)')
    p.add_argument('--resume', metavar='CHECKPOINT',
                   help='continue a stopped run from its checkpoint (same images, configuration '
                        'and outputs; options given must agree with it)')
    p.add_argument('--debug', action='store_true', help='show tracebacks of errors')
    return p


def add_method_options(p, inputs=True):
    """The book's method's options (Settings and Network fields, and with `inputs` the picture
    options --style-blend, --init, --region): every command that runs the method takes them."""
    s, n = Settings(), Network()
    p.add_argument('--weights', metavar='zoo|random|PATH',
                   help='VGG-19 weights: "zoo" (Gluon model zoo, cached under $MXNET_HOME/models),'
                        ' a .params file saved from Gluon\'s vgg19, or "random" (seeded; a smoke '
                        'run, not a style transfer). Default: %s' % n.weights)
    p.add_argument('--stage', action='append', metavar='WxH:ITERS:DECAY[:LR]',
                   help='one stage: size, iterations, lr x0.1 every DECAY iterations, optional '
                        'learning rate; repeat for coarse-to-fine (default: the book\'s %s)'
                        % ' '.join(st.describe() for st in BOOK_STAGES))
    p.add_argument('--lr', type=float, metavar='LR',
                   help='learning rate of stages that do not give one (default: %g)' % s.lr)
    p.add_argument('--content-weight', type=float, metavar='W',
                   help='default: %g' % s.content_weight)
    p.add_argument('--style-weight', type=float, metavar='W',
                   help='weight of each style layer (default: %g)' % s.style_weight)
    p.add_argument('--tv-weight', type=float, metavar='W', help='default: %g' % s.tv_weight)
    p.add_argument('--style-loss', choices=STYLE_LOSS_NAMES,
                   help='the style term: the book\'s Gram loss, or statistics (Li et al. 2017): '
                        'mean-std of each channel, MMD with a linear, polynomial or Gaussian '
                        'kernel; each needs its own --style-weight (default: %s)' % s.style_loss)
    p.add_argument('--content-layers', metavar='LAYERS',
                   help='indices or names, e.g. conv4_2 (default: %s)'
                        % layers.describe(n.content_layers))
    p.add_argument('--style-layers', metavar='LAYERS',
                   help='indices or names (default: %s)' % layers.describe(n.style_layers))
    p.add_argument('--optimizer', choices=OPTIMIZERS,
                   help='adam (the book\'s) or lbfgs (fewer iterations, each may evaluate the '
                        'network more than once; keeps pixels in range). Default: %s'
                        % s.optimizer)
    p.add_argument('--stop-rtol', type=float, metavar='R',
                   help='end a stage early once its total loss fell by less than R (relative) '
                        'over --stop-window iterations (default: %g, never)' % s.stop_rtol)
    p.add_argument('--stop-window', type=int, metavar='N',
                   help='window of --stop-rtol, in iterations (default: %d)' % s.stop_window)
    p.add_argument('--preset', choices=sorted(PRESETS),
                   help='a named set of options, applied before the ones given explicitly: '
                        + '; '.join('%s = %s' % (k, ' '.join(v)) for k, v in PRESETS.items()))
    g = p.add_argument_group('beyond the book (defaults leave the book\'s run unchanged)')
    if inputs:
        g.add_argument('--style-blend', metavar='PATH:W,PATH:W',
                       help='several style images instead of STYLE, their Gram matrices mixed '
                            'with these weights (normalised to sum 1)')
    g.add_argument('--style-scale', type=float, metavar='S',
                   help='style image size relative to the stage size: larger S, smaller '
                        'strokes relative to the picture (default: %g, the book\'s)'
                        % s.style_scale)
    g.add_argument('--style-layer-weights', metavar='W,W,...',
                   help='one multiplier of --style-weight per style layer (default: all 1)')
    g.add_argument('--preserve-colors', choices=PRESERVE_COLORS,
                   help='keep the content\'s colours: "luminance" transfers on luminance only, '
                        '"histogram" gives the style image the content\'s colour mean and '
                        'covariance first (default: %s)' % s.preserve_colors)
    if inputs:
        g.add_argument('--region', action='append', metavar='MASK:STYLE',
                       help='spatial control: where MASK is white, use STYLE (or "none": no '
                            'style there); repeatable; the rest of the picture keeps the main '
                            'style')
        g.add_argument('--init', metavar='content|noise|PATH',
                       help='stage 1 starts from the content (the book), noise or this image')
    g.add_argument('--noise-ratio', type=float, metavar='R',
                   help='blend this much uniform noise (seeded by --seed) into the initial '
                        'image (default: %g)' % s.noise_ratio)
    p.add_argument('--dtype', choices=DTYPES,
                   help='precision of the VGG network: bfloat16 (CPU only, through MXNet AMP and '
                        'oneDNN; needs AVX-512) is faster on CPUs with AVX-512 BF16 and moves the '
                        'losses by under about 1%%%%; the losses themselves stay float32 (default: '
                        '%s, the book\'s)' % n.dtype)
    g.add_argument('--pooling', choices=POOLINGS,
                   help='VGG pooling; avg often gives smoother results (default: %s)' % n.pooling)
    p.add_argument('--seed', type=int, metavar='N',
                   help='seed of --weights random and of --init noise (default: %d)' % s.seed)


def add_device_options(p):
    p.add_argument('--ctx', default='auto', metavar='auto|cpu|cpu:N|gpu|gpu:N',
                   help='device; auto takes the first GPU if MXNet can use one, else the CPU')
    p.add_argument('--threads', type=int, metavar='N',
                   help='CPU threads for MXNet, at most %d per core (default: $OMP_NUM_THREADS, '
                        'else all cores)' % device.MAX_THREADS_PER_CORE)


def parse(argv, prog=PROG, parser=None):
    """(args, None), or (None, exit code) after argparse printed help or an error; --preset
    expands before the options given."""
    parser = parser or build_parser(prog)
    args, code = parse_args(parser, argv)
    if args is not None and args.preset:
        preset = list(PRESETS[args.preset])
        # --stage accumulates: the user's stages replace the preset's rather than add to them.
        if args.stage:
            preset = [a for k, a in enumerate(preset)
                      if a != '--stage' and (k == 0 or preset[k - 1] != '--stage')]
        args, code = parse_args(parser, preset + list(argv))
    return args, code


def main(argv=None, prog=PROG, command=None):
    """Run from `argv` (default sys.argv[1:]); `command` is how to run this tool again (the
    stop message's --resume command), by default `python -m styletransfer train`."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args, code = parse(argv, prog)
    if args is None:
        return code
    command = command or [sys.executable, '-m', 'styletransfer', 'train']
    # Ctrl-C while loading, before the run's own handler is in place: nothing to keep.
    return guarded(prog, args, lambda: _train(args, prog, command))


def given(args):
    """{(object, field): value} for every method option the user gave."""
    out = {}
    for dest, (objects, field) in FIELDS.items():
        value = getattr(args, dest, None)
        if value is not None:
            for obj in objects:
                out[obj, field] = value
    return out


def _train(args, prog, command):
    threads = device.set_threads(args.threads)
    if args.checkpoint_every < 0:
        raise StyleTransferError('--checkpoint-every must be 0 (off) or more')
    job = resumed(args) if args.resume else _new_job(args)
    network, settings, inputs = job.network, job.settings, job.inputs
    settings.check_network(network)
    loaded = inputs.load(network.min_side)
    job.plan = OutputPlan(args.output or job.output or default_name(
        inputs.content, [p for p, _ in inputs.styles], network.random_weights),
        len(settings.stages), args.log_file or job.log_file, args.trace or job.trace_file,
        args.resume or args.checkpoint)
    job.plan.check(args.overwrite, inputs.files(), job.own).check_space(settings.stages)
    ctx, remark = device.resolve_ctx(args.ctx)
    device.check_dtype(network.dtype, ctx)
    if ctx.device_type == 'cpu':   # a GPU's memory is the driver's to report
        resources.check_memory(settings)
    return runner.Session(prog, command, args, job, loaded, ctx, remark, threads).drive()


def _new_job(args):
    values = given(args)
    if values.get(('inputs', 'style_blend')) and args.style is not None:
        raise StyleTransferError('give STYLE or --style-blend, not both')
    if not values.get(('inputs', 'style_blend')) and (args.content is None) != (
            args.style is None):
        raise StyleTransferError('give both CONTENT and STYLE images, or neither for the book\'s')
    content, style = args.content, args.style
    if content is None:
        content = bundled('rainier.jpg')
        style = None if values.get(('inputs', 'style_blend')) else bundled('autumn-oak.jpg')

    network, settings, pictures = method_objects(args)
    return runner.Job(network, settings, Inputs(content, style, **pictures),
                      args.log_every if args.log_every is not None else LOG_EVERY)


def method_objects(args):
    """(Network, Settings, Inputs options) from the options `add_method_options` added."""
    values = given(args)

    def part(obj):
        return {field: value for (o, field), value in values.items() if o == obj}
    return Network(**part('network')), Settings(**part('settings')), part('inputs')


def check_agrees(args, settings, network, log_every):
    """--resume takes the run from the checkpoint; options given must say the same, and the
    first that does not is named."""
    for (obj, field), value in given(args).items():
        current = settings if obj == 'settings' else network if obj == 'network' else None
        if current is None:
            raise StyleTransferError('--resume continues the checkpoint\'s run with its own '
                                     'pictures; drop %s' % option_name(field))
        changed = type(current)(**dict(current.to_dict(), **{field: value}))
        if changed != current:
            raise StyleTransferError('--resume continues the checkpoint\'s run; %s differs '
                                     'from it (drop it to continue)' % _option_of(field))
    if args.log_every is not None and args.log_every != log_every:
        raise StyleTransferError('--resume continues the checkpoint\'s run; --log-every differs '
                                 'from it (drop it to continue)')


def _option_of(field):
    for dest, (_, f) in FIELDS.items():
        if f == field:
            return '--' + dest.replace('_', '-')
    return option_name(field)


if __name__ == '__main__':
    sys.exit(main())
