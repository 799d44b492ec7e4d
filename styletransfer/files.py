"""Files: checks on the ones the tool reads, their hashes, and atomic writes.

Every file the tool writes goes to a temporary sibling, then is renamed.

A crash, a full disk or Ctrl-C in the middle of a write therefore never leaves a half-written
image, log or trace, and never damages an existing file of the same name. A symbolic link stays
a link (the file it points to is replaced), and a device or pipe such as /dev/null is written
in place: renaming onto it would replace the device with a file.
"""
import contextlib
import hashlib
import os
import stat
import tempfile

from .errors import StyleTransferError


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside `path`; on success rename it onto `path`, else delete it.

    The temporary name keeps the extension, so writers that choose a format by extension
    (Pillow, matplotlib) behave as they would for `path`.
    """
    path = os.fspath(path)
    if not is_regular_or_missing(path):
        yield path
        return
    path = os.path.realpath(path)
    folder = os.path.dirname(path)
    base, ext = os.path.splitext(os.path.basename(path))
    fd, tmp = tempfile.mkstemp(prefix='.%s.' % base, suffix='.part' + ext, dir=folder)
    os.close(fd)
    try:
        yield tmp
        with open(tmp, 'rb+') as f:
            os.fsync(f.fileno())
        os.chmod(tmp, _mode_for(path))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


def is_regular_or_missing(path):
    """False for an existing device, pipe or socket (following links)."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except (FileNotFoundError, NotADirectoryError):
        return True


def _mode_for(path):
    """The mode a plain open() would give: the existing file's, else 0666 less the umask
    (mkstemp makes its files private, which outputs should not be)."""
    try:
        return os.stat(path).st_mode & 0o777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def write_text(path, text):
    """Write `text` (UTF-8) to `path` atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, 'w', encoding='utf-8') as f:
            f.write(text)


def sha256_of(path):
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def check_input_file(path, kind):
    """Raise StyleTransferError naming `path` unless it is a file this process can read;
    `kind` says what it should have been ('an image')."""
    if not os.path.exists(path):
        raise StyleTransferError('%s: no such file' % path)
    if os.path.isdir(path):
        raise StyleTransferError('%s: is a directory, not %s' % (path, kind))
    if not os.access(path, os.R_OK):
        raise StyleTransferError('%s: permission denied' % path)
