"""Put the repository root on sys.path: the package is used from the clone, not installed."""
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

TRAIN_SCRIPT = os.path.join(REPO, 'scripts', 'train.py')


def train_script_main():
    """`main` of scripts/train.py itself, loaded from its file as a user's run would."""
    import importlib.util
    spec = importlib.util.spec_from_file_location('train_script', TRAIN_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main
