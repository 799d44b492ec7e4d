"""Shared test helpers. The package is imported from the checkout (pytest runs from it) or from
an installation; nothing here changes sys.path."""
import os

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN_SCRIPT = os.path.join(REPO, 'scripts', 'train.py')


def load_script(path, name):
    """A script outside the package (e.g. docs/gallery.py), loaded from its file as a module."""
    import importlib.util
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def train_script_main():
    """`main` of scripts/train.py itself, loaded from its file as a user's run would."""
    return load_script(TRAIN_SCRIPT, 'train_script').main
