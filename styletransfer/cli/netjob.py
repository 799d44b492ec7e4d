"""What one `styletransfer train-net` command trains and writes: its options, from the command
line or from the checkpoint it resumes (options given then must agree, but for CHANGEABLE ones),
the library objects they make for each --method (a recipe, its folders, TrainingSettings with
the recipe's defaults), and its output files, refused when they would replace something the
training did not write."""
import glob
import os

from styletransfer import checkpoint
from styletransfer.errors import StyleTransferError

# Options of the library's TrainingSettings and of each method's loss (JohnsonLoss, AdaINLoss;
# their defaults are the library's, and TrainingSettings' are the method's: see settings()).
TRAINING = ('iterations', 'batch_size', 'image_size', 'lr', 'seed', 'lr_decay', 'load_size')
LOSS = ('content_weight', 'style_weight', 'tv_weight', 'style_loss', 'style_size')
ADAIN_LOSS = ('content_weight', 'style_weight', 'layer_scales')
OWN = {'method': 'johnson', 'weights': 'zoo', 'content_layers': None, 'style_layers': None,
       'log_every': 100, 'sample_every': 1000, 'samples': 2, 'checkpoint_every': 1000,
       'loader_workers': 0}
# What each method needs, and the options only the other one takes.
NEEDED = {'johnson': ('style', 'content_dir', 'output'),
          'adain': ('content_dir', 'style_dir', 'output')}
ONLY = {'johnson': ('style', 'add_styles_to', 'tv_weight', 'style_loss', 'style_size',
                    'content_layers', 'style_layers'),
        'adain': ('style_dir', 'encoder', 'layer_scales')}
# What a resumed training may change; anything else given must match the checkpoint.
CHANGEABLE = ('iterations', 'log_every', 'sample_every', 'checkpoint_every', 'loader_workers')
# How this command runs, not what it trains: never stored.
RUNNING = ('resume', 'overwrite', 'debug', 'threads', 'ctx', 'workers', 'servers')
PATHS = ('content_dir', 'style_dir', 'output', 'add_styles_to', 'encoder')
HOLD_OUT_FACTOR = 8     # sample pictures are held out of training when the folder has 8x more


def job(args, check_outputs):
    """(options, TrainingState or None, checkpoint notes, {output: path}), checked."""
    given = {k: v for k, v in vars(args).items() if v is not None and k not in RUNNING}
    given.update({k: os.path.abspath(given[k]) for k in PATHS if k in given})
    if 'style' in given:
        given['style'] = [os.path.abspath(p) for p in given['style']]
    if given.get('weights', 'zoo').lower() not in ('zoo', 'random'):
        given['weights'] = os.path.abspath(given['weights'])
    state, extra = None, {}
    if args.resume:
        state, extra = checkpoint.load(args.resume)
        if state.kind != 'train-net':
            raise StyleTransferError('%s: a checkpoint of %s, not of train-net'
                                     % (args.resume, state.kind), 'resume')
        opts = dict(extra['options'])
        opts.setdefault('method', 'johnson')        # checkpoints from before --method
        for key, value in given.items():
            if key not in CHANGEABLE and value != opts.get(key):
                raise StyleTransferError('--resume: %s differs from the checkpoint\'s (%r)'
                                         % (key, opts.get(key)), key)
        opts.update({k: given[k] for k in CHANGEABLE if k in given})
    else:
        opts = dict(OWN, **given)
        method = opts['method']
        for name in NEEDED[method]:
            if not opts.get(name):
                raise StyleTransferError('--%s is needed' % name.replace('_', '-'), name)
        for other, names in ONLY.items():
            for name in names if other != method else ():
                if name in given:
                    raise StyleTransferError('--%s is for --method %s'
                                             % (name.replace('_', '-'), other), name)
        if method == 'adain' and 'encoder' in given and 'weights' in given:
            raise StyleTransferError('give --encoder (vgg_normalised.pth) or --weights (our '
                                     'VGG-19), not both', 'encoder')
        opts['held_out'], opts['sample_files'] = _held_out(opts['content_dir'],
                                                           opts['samples'], 'content_dir')
        if method == 'adain':
            # the samples' one style: the style folder's first picture
            held, (opts['sample_style'],) = _held_out(opts['style_dir'], 1, 'style_dir')
            opts['held_out'] += held
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


def _held_out(folder, count, field):
    """(pictures held out of training, the first `count` pictures of `folder`): they are held
    out when the folder has HOLD_OUT_FACTOR times more."""
    from styletransfer.fast import imagefolder
    files = imagefolder.list_images(folder, field=field)
    first = [os.path.join(folder, f) for f in files[:max(0, count)]]
    return (first if len(files) >= HOLD_OUT_FACTOR * len(first) else []), first


def settings(opts, state):
    """TrainingSettings: the checkpoint's (with the changes a resume may make), or the
    method's defaults (train_adain.SETTINGS for adain) changed by the options given."""
    import dataclasses
    from styletransfer.fast.train_adain import adain_settings
    from styletransfer.fast.training import TrainingSettings
    if state is not None:
        return dataclasses.replace(
            state.settings, iterations=opts.get('iterations', state.settings.iterations),
            sample_every=opts['sample_every'])
    make = adain_settings if opts['method'] == 'adain' else TrainingSettings
    return make(**{k: opts[k] for k in TRAINING if k in opts}, sample_every=opts['sample_every'])


def folders(opts):
    return {name: opts[name + '_dir'] for name in
            (('content', 'style') if opts['method'] == 'adain' else ('content',))}


def recipe(opts):
    """The method's recipe from the options (a fresh training's)."""
    if opts['method'] == 'adain':
        from styletransfer.fast import train_adain as ta
        loss = ta.AdaINLoss(**{k: opts[k] for k in ADAIN_LOSS if k in opts})
        # a random encoder keeps seed 0: the one `stylize --weights random` rebuilds
        return ta.AdaINRecipe(opts.get('encoder') or opts['weights'], loss,
                              opts['sample_style'])
    from styletransfer.fast import train_johnson as tj
    layers = {k: opts[k] for k in ('content_layers', 'style_layers') if opts.get(k)}
    network = tj.johnson_network(opts['weights'], opts.get('seed', 0), **layers)
    loss = tj.JohnsonLoss(**{k: opts[k] for k in LOSS if k in opts})
    return tj.JohnsonRecipe(opts['style'], network, loss, base=opts.get('add_styles_to'))


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
