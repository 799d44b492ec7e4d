"""Data shipped inside the package: the book's log and its spread, and the bundled pictures
(images/, with their sources and licences in images/README.md), found wherever the package is
installed."""
import os

from ..errors import StyleTransferError

FOLDER = os.path.dirname(os.path.abspath(__file__))
IMAGES = os.path.join(FOLDER, 'images')


def bundled(name):
    """Path of a bundled picture, e.g. bundled('rainier.jpg')."""
    path = os.path.join(IMAGES, name)
    if not os.path.isfile(path):
        raise StyleTransferError('%s: no such bundled picture (there are %s)'
                                 % (name, ', '.join(bundled_names())))
    return path


def bundled_names():
    return sorted(n for n in os.listdir(IMAGES) if n.endswith(('.jpg', '.png')))
