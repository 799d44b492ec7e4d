"""Shared test helpers. The package is imported from the checkout (pytest runs from it) or from
an installation; nothing here changes sys.path."""
import os

import numpy as np

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


def picture(width, height, seed):
    """A smooth picture with some noise (HxWx3 uint8): something for the losses to work on."""
    rng = np.random.RandomState(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([xx * 255.0 / width, yy * 255.0 / height,
                     128 + 100 * np.sin(xx / 3.0 + seed)], axis=-1)
    return np.clip(base + rng.randn(height, width, 3) * 25, 0, 255).astype(np.uint8)


def texture(rng, height, width):
    """A smooth colourful picture (HxWx3 uint8): three random plane waves per channel from
    `rng` (a numpy Generator), stretched to 0..255."""
    y, x = np.mgrid[0:height, 0:width]
    picture = np.zeros((height, width, 3))
    for c in range(3):
        for _ in range(3):
            fx, fy, phase = rng.uniform(0.05, 0.5), rng.uniform(0.05, 0.5), rng.uniform(0, 6.3)
            picture[..., c] += np.sin(fx * x + fy * y + phase)
    picture = (picture - picture.min()) / (picture.max() - picture.min())
    return (picture * 255).astype(np.uint8)
