"""Every file a run writes, named and checked before the run starts: the final picture, one per
stage, the loss curve, the contact sheet, the pictures kept when a run is interrupted or
diverges, the checkpoint, the log and the trace.

Nothing is ever overwritten by surprise: an input, an existing file (without `overwrite`), two
outputs sharing a path, a missing or read-only folder and a full disk are refused up front.
"""
import os
import shutil

from .errors import StyleTransferError
from .files import is_regular_or_missing
from .images import check_output_format


def default_name(content, styles, random_weights):
    """CONTENT-STYLE.png (styles joined by '+'), '-random-weights' added for random weights."""
    def stem(path):
        return os.path.splitext(os.path.basename(os.fspath(path)))[0]
    return '%s-%s%s.png' % (stem(content), '+'.join(stem(p) for p in styles),
                            '-random-weights' if random_weights else '')


class OutputPlan:
    def __init__(self, final, stages, log_file=None, trace=None, checkpoint=None):
        check_output_format(final)
        self.final = final
        base, ext = os.path.splitext(final)
        self.stages = ['%s-stage%d%s' % (base, k, ext) for k in range(1, stages + 1)]
        self.losses = base + '-losses.png'
        self.sheet = base + '-sheet.png'
        self.interrupted = base + '-interrupted' + ext
        self.diverged = base + '-diverged' + ext
        self.checkpoint = checkpoint or base + '.ckpt'
        self.log_file, self.trace = log_file, trace

    def all(self):
        return [p for p in [self.final, *self.stages, self.losses, self.sheet, self.interrupted,
                            self.diverged, self.checkpoint, self.log_file, self.trace] if p]

    def check(self, overwrite=False, inputs=(), own=()):
        """Refuse paths that would destroy something or fail at the end. `own` are files an
        interrupted run of the same outputs wrote: they may be replaced without `overwrite`."""
        inputs = {os.path.realpath(p) for p in inputs}
        own = {os.path.realpath(p) for p in own}
        seen = set()
        for path in self.all():
            real = os.path.realpath(path)
            if real in inputs:
                raise StyleTransferError('%s: output would overwrite an input image' % path)
            if real in seen:
                raise StyleTransferError('%s: two outputs share this path' % path)
            seen.add(real)
            if os.path.isdir(path):
                raise StyleTransferError('%s: output path is a directory' % path)
            if not is_regular_or_missing(path):
                # A device or pipe (/dev/null, /dev/stdout) is written in place, nothing in it
                # to lose; only the text outputs can go there (pictures need an extension).
                if path not in (self.log_file, self.trace):
                    raise StyleTransferError('%s: not a regular file' % path)
                if not os.access(path, os.W_OK):
                    raise StyleTransferError('%s: not writable' % path)
                continue
            # A link's target is what gets replaced, in the target's folder.
            folder = os.path.dirname(real)
            if not os.path.isdir(folder):
                raise StyleTransferError('%s: output folder does not exist' % folder)
            if not os.access(folder, os.W_OK | os.X_OK):
                raise StyleTransferError('%s: output folder is not writable' % folder)
            if os.path.exists(real) and not overwrite and real not in own:
                raise StyleTransferError('%s: exists; pass --overwrite to replace it' % path)
        return self

    def check_space(self, stages):
        """Refuse a folder without room for the outputs of `stages` (Settings.stages)."""
        # Uncompressed sizes bound what PNGs, the sheet and a checkpoint (float32 image, its
        # best copy, Adam's two moments) take; the temporary copy of an atomic write doubles it.
        largest = max(s.width * s.height for s in stages)
        need = 2 * (sum(3 * s.width * s.height for s in stages) * 3
                    + largest * 3 * 4 * 4 + (8 << 20))
        folder = os.path.dirname(os.path.abspath(self.final))
        free = shutil.disk_usage(folder).free
        if free < need:
            raise StyleTransferError('%s: %.0f MB free, the outputs need about %.0f MB'
                                     % (folder, free / 1e6, need / 1e6))
        return self
