"""What a run reports: plain data only (numbers, text, numpy pictures), never an NDArray or a
Trainer, so that events pickle, serialise to JSON (`to_json`) and cross threads and processes:
a web page or a Dask worker can carry them.

- `Progress` after every iteration;
- `StageDone` after every stage, with the stage's picture (colours restored);
- `Result` at the end: the picture the command line saves, and everything that led to it;
- `Samples` from a network's training (fast.training): pictures the network makes so far.
"""
import base64
import dataclasses
import io
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

# The book's three terms, in its log's order; a run may report more (`Progress.terms`).
BOOK_TERMS = ('content', 'style', 'tv')


@dataclass(frozen=True)
class Progress:
    stage: int              # 1-based stage number
    stages: int             # how many stages the run has
    iteration: int          # 0-based iteration within the stage (the book's "epoch")
    iterations: int         # iterations in this stage
    width: int              # stage image size
    height: int
    lr: Optional[float]     # learning rate of this iteration's update; None for L-BFGS
    new_lr: Optional[float]  # learning rate set after this iteration, if it changed
    terms: dict             # weighted loss terms by name: content, style, tv (and any extra)
    total: float            # their sum
    seconds: float          # wall time of this iteration
    last: bool = False      # the stage's last iteration (its end, or the stop rule was met)

    @property
    def content(self):
        return self.terms.get('content', 0.0)

    @property
    def style(self):
        return self.terms.get('style', 0.0)

    @property
    def tv(self):
        return self.terms.get('tv', 0.0)


@dataclass(frozen=True, eq=False)
class StageDone:
    stage: int
    stages: int
    width: int
    height: int
    picture: np.ndarray     # HxWx3 uint8, colours restored: what the stage's file holds


@dataclass(eq=False)
class Result:
    picture: np.ndarray                 # HxWx3 uint8: the final picture (or the best so far)
    stage_pictures: list = field(default_factory=list)   # one per finished stage
    history: list = field(default_factory=list)          # every Progress
    stopped: bool = False               # stopped before its end
    weights: str = ''                   # which weights measured it (pretrained or not)


@dataclass(frozen=True, eq=False)
class Samples:
    iteration: int          # 0-based iteration after which the pictures were made
    labels: list            # one short text per picture ('rainier / style 1')
    pictures: list          # HxWx3 uint8 each


EVENT_TYPES = {cls.__name__: cls for cls in (Progress, StageDone, Result, Samples)}


def encode_picture(picture):
    """An HxWx3 uint8 array as a PNG data URL (what a browser can show directly)."""
    from PIL import Image
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(picture), 'RGB').save(buffer, format='PNG')
    return 'data:image/png;base64,' + base64.b64encode(buffer.getvalue()).decode('ascii')


def decode_picture(url):
    from PIL import Image
    data = base64.b64decode(url.split(',', 1)[1])
    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(img.convert('RGB'))


def _plain(value):
    if isinstance(value, np.ndarray):
        return encode_picture(value)
    if isinstance(value, Progress):
        return to_json(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def to_json(event):
    """A dict of JSON types with the event's type under 'event'; pictures become PNG data URLs."""
    d = {f.name: _plain(getattr(event, f.name)) for f in dataclasses.fields(event)}
    d['event'] = type(event).__name__
    return d


def from_json(d):
    """The event `to_json` made."""
    d = dict(d)
    cls = EVENT_TYPES[d.pop('event')]
    for f in dataclasses.fields(cls):
        value = d.get(f.name)
        if isinstance(value, str) and value.startswith('data:image/png;base64,'):
            d[f.name] = decode_picture(value)
        elif f.name in ('stage_pictures', 'pictures'):
            d[f.name] = [decode_picture(v) for v in value]
        elif f.name == 'history':
            d[f.name] = [from_json(v) for v in value]
    return cls(**d)
