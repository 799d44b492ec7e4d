"""`OUTDIR/manifest.jsonl`: one JSON line per item and run, appended; what a re-run may skip.

A line says which pictures an item read (paths and SHA-256), the method, model and settings,
the status ('done', 'failed' with the one-line reason, 'skipped'), the seconds it took, the
weights the worker used and the SHA-256 of the output. The last line about an output decides a
re-run: the item is skipped when that line is done or skipped, its `key` (a hash of everything
that makes the picture: method, model, weights file, settings, both inputs' bytes) is the item's
key now, and the output file still has the hash the line gives. Anything else is redone.

Every line goes out in one write() on a descriptor opened for appending, so a crash never tears
a line or loses the ones before it, and the output is written (atomically) before its line:
an output without its line is simply redone.
"""
import hashlib
import json
import time

from .. import report
from ..errors import StyleTransferError
from ..files import sha256_of

NAME = 'manifest.jsonl'
REUSABLE = ('done', 'skipped')


def append_file(path, lock=False):
    """The manifest: appended a line at a time, kept across runs (see report.AppendFile)."""
    return report.AppendFile(path, lock, busy='another batch is writing this folder')


def read(path):
    """{output name: the last line about it (a dict)}; lines that are not JSON objects (a
    hand edit) are passed over."""
    last = {}
    try:
        with open(path, encoding='utf-8') as f:
            for line in f:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if isinstance(record, dict) and isinstance(record.get('output'), str):
                    last[record['output']] = record
    except FileNotFoundError:
        pass
    except (OSError, UnicodeDecodeError) as e:
        raise StyleTransferError('%s: cannot read the manifest (%s)' % (path, e)) from e
    return last


def item_key(method, model, settings, content_sha, style_sha):
    """A hash of everything that makes an item's picture: method name, model and settings as
    plain dicts, and both inputs' SHA-256."""
    text = json.dumps({'method': method, 'model': model, 'settings': settings,
                       'content': content_sha, 'style': style_sha}, sort_keys=True)
    return hashlib.sha256(text.encode('utf-8')).hexdigest()


def up_to_date(record, key, output_path):
    """Whether a re-run may skip the item whose last manifest line is `record`."""
    if not record or record.get('status') not in REUSABLE or record.get('key') != key:
        return False
    try:
        return sha256_of(output_path) == record.get('output_sha256')
    except OSError:
        return False


def now():
    """The time a line is written, UTC, to the second (ISO 8601)."""
    return time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())
