"""Checkpoint files: a run's state (see each method's `state()`) and a front-end's own notes,
in one zip written atomically.

Inside: `meta.json` (format, the state's kind, its plain fields, the caller's `extra`) and
`arrays.npz` (numpy arrays, read back with pickling disabled). Nothing in the file is a pickle,
so loading one never runs code.
"""
import importlib
import io
import json
import os
import zipfile

import numpy as np

from .errors import StyleTransferError
from .files import atomic_path

FORMAT = 'styletransfer-checkpoint-2'
# kind -> 'module:Class' of the state, whose `from_parts(meta, arrays)` rebuilds it.
KINDS = {'gatys': 'styletransfer.gatys.state:RunState',
         'train-net': 'styletransfer.fast.training:TrainingState'}


def save(path, state, extra=None):
    """Write `state` (anything with `kind` and `to_parts()`) and `extra` (JSON data)."""
    meta, arrays = state.to_parts()
    document = {'format': FORMAT, 'kind': state.kind, 'state': meta, 'extra': extra or {}}
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    with atomic_path(path) as tmp:
        with zipfile.ZipFile(tmp, 'w', zipfile.ZIP_STORED) as z:
            z.writestr('meta.json', json.dumps(document))
            z.writestr('arrays.npz', buffer.getvalue())


def load(path):
    """(state, extra) from a checkpoint; any problem is one StyleTransferError line."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise StyleTransferError('%s: checkpoint not found' % path)
    try:
        with zipfile.ZipFile(path) as z:
            document = json.loads(z.read('meta.json'))
            if not isinstance(document, dict) or document.get('format') != FORMAT:
                found = document.get('format') if isinstance(document, dict) else None
                raise StyleTransferError(
                    '%s: not a checkpoint of this version of styletransfer (format %r, expected '
                    '%r)' % (path, found, FORMAT))
            with np.load(io.BytesIO(z.read('arrays.npz')), allow_pickle=False) as stored:
                arrays = {key: stored[key] for key in stored.files}
        kind = document.get('kind')
        if kind not in KINDS:
            raise StyleTransferError('%s: a checkpoint of an unknown kind %r' % (path, kind))
        module, name = KINDS[kind].split(':')
        state = getattr(importlib.import_module(module), name).from_parts(document['state'],
                                                                         arrays)
    except StyleTransferError as e:
        if str(e).startswith(path):
            raise
        raise StyleTransferError('%s: damaged checkpoint (%s)' % (path, e)) from e
    except (zipfile.BadZipFile, KeyError, ValueError, TypeError, OSError, EOFError) as e:
        raise StyleTransferError('%s: damaged or not a checkpoint (%s)'
                                 % (path, str(e).splitlines()[0] if str(e) else type(e).__name__)
                                 ) from e
    return state, document.get('extra', {})
