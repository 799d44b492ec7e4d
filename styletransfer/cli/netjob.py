"""What one `styletransfer train-net` command trains and writes: its options, from the command
line or from the checkpoint it resumes (options given then must agree, but for CHANGEABLE ones),
and its output files, refused when they would replace something the training did not write."""
import glob
import os

from styletransfer import checkpoint
from styletransfer.errors import StyleTransferError

# Options of the library's TrainingSettings and JohnsonLoss (their defaults are the library's).
TRAINING = ('iterations', 'batch_size', 'image_size', 'lr', 'seed')
LOSS = ('content_weight', 'style_weight', 'tv_weight', 'style_loss', 'style_size')
OWN = {'weights': 'zoo', 'content_layers': None, 'style_layers': None, 'log_every': 100,
       'sample_every': 1000, 'samples': 2, 'checkpoint_every': 1000, 'loader_workers': 0}
# What a resumed training may change; anything else given must match the checkpoint.
CHANGEABLE = ('iterations', 'log_every', 'sample_every', 'checkpoint_every', 'loader_workers')
# How this command runs, not what it trains: never stored.
RUNNING = ('resume', 'overwrite', 'debug', 'threads', 'ctx', 'workers', 'servers')
PATHS = ('content_dir', 'output', 'add_styles_to')
HOLD_OUT_FACTOR = 8     # sample pictures are held out of training when the folder has 8x more


def job(args, check_outputs):
    """(options, TrainingState or None, checkpoint notes, {output: path}), checked."""
    from styletransfer.fast import imagefolder
    given = {k: v for k, v in vars(args).items() if v is not None and k not in RUNNING}
    given.update({k: os.path.abspath(given[k]) for k in PATHS if k in given})
    if 'style' in given:
        given['style'] = [os.path.abspath(p) for p in given['style']]
    state, extra = None, {}
    if args.resume:
        state, extra = checkpoint.load(args.resume)
        if state.kind != 'train-net':
            raise StyleTransferError('%s: a checkpoint of %s, not of train-net'
                                     % (args.resume, state.kind), 'resume')
        opts = dict(extra['options'])
        for key, value in given.items():
            if key not in CHANGEABLE and value != opts.get(key):
                raise StyleTransferError('--resume: %s differs from the checkpoint\'s (%r)'
                                         % (key, opts.get(key)), key)
        opts.update({k: given[k] for k in CHANGEABLE if k in given})
    else:
        opts = dict(OWN, **given)
        for name in ('style', 'content_dir', 'output'):
            if not opts.get(name):
                raise StyleTransferError('--%s is needed' % name.replace('_', '-'), name)
        files = imagefolder.list_images(opts['content_dir'])
        first = [os.path.join(opts['content_dir'], f) for f in files[:max(0, opts['samples'])]]
        opts['held_out'] = first if len(files) >= HOLD_OUT_FACTOR * len(first) else []
        opts['sample_files'] = first
    if not opts['output'].endswith('.params'):
        raise StyleTransferError('%s: the network file must end in .params' % opts['output'],
                                 'output')
    for name in ('log_every', 'checkpoint_every', 'sample_every', 'samples'):
        if opts[name] < (1 if name == 'log_every' else 0):
            raise StyleTransferError('--%s must be at least %d' % (
                name.replace('_', '-'), name == 'log_every'), name)
    stem = opts['output'][:-len('.params')]
    outputs = {'net': opts['output'], 'log': stem + '.log', 'losses': stem + '-losses.png',
               'checkpoint': args.resume or stem + '.ckpt', 'samples': stem + '-samples-%06d.jpg'}
    if check_outputs:
        check(outputs, stem, args, extra)
    return opts, state, extra, outputs


def check(outputs, stem, args, extra):
    """Refuse to replace anything this training did not write, without --overwrite."""
    own = set(extra.get('written', [])) | {os.path.abspath(args.resume or '')}
    existing = [p for key, p in outputs.items() if key != 'samples' and os.path.exists(p)]
    existing += sorted(glob.glob(glob.escape(stem) + '-samples-*.jpg'))
    refused = [p for p in existing if os.path.abspath(p) not in own]
    if refused and not args.overwrite:
        raise StyleTransferError('%s: exists; pass --overwrite to replace it' % refused[0],
                                 'output')
    if not os.path.isdir(os.path.dirname(outputs['net'])):
        raise StyleTransferError('%s: output folder does not exist'
                                 % os.path.dirname(outputs['net']), 'output')
