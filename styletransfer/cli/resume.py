"""--resume on the command line: the checkpoint's run, with what the command line keeps beside
the library's state (its pictures' paths and file hashes, its outputs, its log), moved along
with the run's folder when that was moved."""
import os

from styletransfer import checkpoint
from styletransfer.errors import StyleTransferError
from styletransfer.files import sha256_of
from styletransfer.inputs import INIT_KINDS, NO_STYLE, Inputs
from styletransfer.vgg.network import Network


def digest(path):
    try:
        return sha256_of(path)
    except OSError:
        return None       # missing or unreadable: loading the picture says so, in one line


def inputs_to_json(inputs):
    def path(p):
        return p if p in INIT_KINDS or p == NO_STYLE else os.path.abspath(p)
    return {'content': path(inputs.content),
            'style': path(inputs.style) if inputs.style is not None else None,
            'style_blend': [[path(p), w] for p, w in inputs.style_blend],
            'init': path(inputs.init), 'region': [[path(m), path(s)] for m, s in inputs.region]}


def inputs_from_json(d, move=lambda p: p):
    def path(p):
        return p if p is None or p in INIT_KINDS or p == NO_STYLE else move(p)
    return Inputs(path(d['content']), path(d['style']),
                  style_blend=[(path(p), w) for p, w in d['style_blend']], init=path(d['init']),
                  region=[(path(m), path(s)) for m, s in d['region']])


def resumed(args):
    """The Job of `--resume CHECKPOINT`: the checkpoint's network, settings and pictures, with
    its paths moved along if the run's folder was moved; options given must agree with it."""
    from styletransfer.cli.runner import Job
    from styletransfer.cli.train import check_agrees
    state, extra = checkpoint.load(args.resume)
    if not {'inputs', 'files'} <= set(extra):
        raise StyleTransferError('%s: a checkpoint without the command line\'s notes (made '
                                 'through the library?); resume it with Stylizer.start'
                                 % args.resume)
    move = _mover(extra.get('folder'), os.path.dirname(os.path.abspath(args.resume)))
    network = state.network
    if network.weights not in ('zoo', 'random'):
        network = Network(**dict(network.to_dict(), weights=move(network.weights)))
        state.network = network
    inputs = inputs_from_json(extra['inputs'], move)
    check_agrees(args, state.settings, network, extra.get('log_every'))
    if args.content is not None or args.style is not None:
        given = [os.path.abspath(p) for p in (args.content, args.style) if p is not None]
        if given != [os.fspath(p) for p in (inputs.content, inputs.style)][:len(given)]:
            raise StyleTransferError('--resume continues the checkpoint\'s run with its own '
                                     'images; drop CONTENT and STYLE')
    files = {move(p): sha for p, sha in extra['files'].items()}
    for path, sha in files.items():
        if not os.path.isfile(path):
            raise StyleTransferError('%s: the checkpoint\'s run read this picture; it is gone '
                                     '(resume needs the same pictures)' % path)
        if digest(path) != sha:
            raise StyleTransferError('%s: changed since %s was written; resume needs the same '
                                     'pictures' % (path, args.resume))

    def moved(key):
        return move(extra[key]) if extra.get(key) else None
    written = [move(p) for p in extra.get('written', [])]
    own = written + [args.resume] + [p for p in (moved('log_file'), moved('trace_file')) if p]
    return Job(network, state.settings, inputs, extra['log_every'], moved('output'),
               moved('log_file'), moved('trace_file'), own, state,
               dict(extra, written=written, files=files))


def _mover(old, new):
    """`path` moved along with the run's folder: when the folder the checkpoint was written in
    is gone and the checkpoint is elsewhere, the folder was moved or renamed, and every path
    inside it is taken to be at the same place in the new one. Paths outside it stay."""
    if not old or old == new or os.path.isdir(old):
        return lambda path: path

    def move(path):
        inside = os.path.relpath(path, old)
        return path if inside.startswith(os.pardir) else os.path.join(new, inside)
    return move

