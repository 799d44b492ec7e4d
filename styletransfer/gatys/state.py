"""`RunState`: where a run of the book's method stands, as plain numbers and numpy arrays
(picklable, no device handles), enough to continue it exactly; and its checkpoint parts."""
import math
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from ..events import Progress, from_json, to_json
from ..settings import Settings
from ..vgg.network import Network


@dataclass(eq=False)
class RunState:
    settings: Settings
    network: Network
    stage: int                  # 1-based stage to continue (stages + 1: the run is complete)
    next_iteration: int         # first iteration still to run in that stage
    image: Optional[np.ndarray]  # 1x3xHxW float32 network input: the image to continue from
    best: Optional[np.ndarray]   # lowest-loss image of this stage so far
    best_total: float
    optimizer: dict = field(default_factory=dict)   # Adam: mean, var, count, lr; else empty
    stage_pictures: list = field(default_factory=list)   # HxWx3 uint8, finished stages
    history: list = field(default_factory=list)          # every Progress so far
    digests: list = field(default_factory=list)          # of the pictures the run read

    kind = 'gatys'

    @property
    def finished(self):
        return self.stage > len(self.settings.stages)

    def to_parts(self):
        """(JSON-able meta, {name: numpy array}) for a checkpoint file."""
        meta = {'settings': self.settings.to_dict(), 'network': self.network.to_dict(),
                'stage': self.stage, 'next_iteration': self.next_iteration,
                'best_total': self.best_total if math.isfinite(self.best_total) else None,
                'optimizer': {k: v for k, v in self.optimizer.items()
                              if not isinstance(v, np.ndarray)},
                'stages_done': len(self.stage_pictures),
                'history': [to_json(p) for p in self.history], 'digests': list(self.digests)}
        arrays = {'optimizer_' + k: v for k, v in self.optimizer.items()
                  if isinstance(v, np.ndarray)}
        for name in ('image', 'best'):
            if getattr(self, name) is not None:
                arrays[name] = getattr(self, name)
        for k, picture in enumerate(self.stage_pictures, 1):
            arrays['stage%d' % k] = picture
        return meta, arrays

    @classmethod
    def from_parts(cls, meta, arrays):
        optimizer = dict(meta['optimizer'])
        optimizer.update({k[len('optimizer_'):]: v for k, v in arrays.items()
                          if k.startswith('optimizer_')})
        best_total = meta['best_total']
        return cls(Settings.from_dict(meta['settings']), Network.from_dict(meta['network']),
                   int(meta['stage']), int(meta['next_iteration']), arrays.get('image'),
                   arrays.get('best'), math.inf if best_total is None else float(best_total),
                   optimizer,
                   [arrays['stage%d' % k] for k in range(1, int(meta['stages_done']) + 1)],
                   [p if isinstance(p, Progress) else from_json(p) for p in meta['history']],
                   list(meta['digests']))
