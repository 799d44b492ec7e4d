"""The `styletransfer` command: one program, a subcommand per tool (COMMANDS below; each is a
module of this package whose `main(argv, prog)` it calls). `styletransfer --help` lists them.
"""
import importlib
import os
import sys

# subcommand -> (module under styletransfer.cli, one line of help)
COMMANDS = {
    'train': ('train', 'the book\'s coarse-to-fine style transfer by optimisation'),
    'stylize': ('stylize', 'style in one forward pass: a trained network, or AdaIN for any style'),
    'video': ('video', 'a video stylised without flicker, audio kept'),
    'compare-logs': ('compare', 'compare a run\'s loss log with the book\'s'),
    'convert-weights': ('convert', 'torchvision\'s VGG-19 .pth as a Gluon .params file'),
    'train-net': ('train_net', 'train a feed-forward style network on a folder of pictures'),
    'serve': ('serve', 'a local web page: two pictures in, watch the run, take the picture'),
    'batch': ('batch', 'every content picture against every style, here or on Dask workers'),
}


def usage():
    width = max(map(len, COMMANDS))
    return 'usage: styletransfer COMMAND [options]\n\ncommands:\n' + ''.join(
        '  %s  %s\n' % (name.ljust(width), text) for name, (_, text) in COMMANDS.items()) + (
        '\n"styletransfer COMMAND --help" describes one command.')


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ('-h', '--help'):
        print(usage())
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print('styletransfer: error: unknown command %r\n\n%s' % (name, usage()),
              file=sys.stderr)
        return 2
    module = importlib.import_module('styletransfer.cli.' + COMMANDS[name][0])
    prog = 'styletransfer ' + name
    if name == 'train':
        return module.main(rest, prog=prog, command=_this_command() + [name])
    return module.main(rest, prog=prog)


def _this_command():
    """How this program was started, to be run again from the same folder: the installed
    `styletransfer` command, or `python -m styletransfer`."""
    started = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ''
    if started == '__main__.py':
        return [sys.executable, '-m', 'styletransfer']
    if started == 'styletransfer':
        return [sys.argv[0]]
    return [sys.executable, '-m', 'styletransfer']


if __name__ == '__main__':
    sys.exit(main())
