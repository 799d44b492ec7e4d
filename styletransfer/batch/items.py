"""A batch's plan: which pictures meet which, and the name of each output.

Items are every content against every style (`grid`) or listed pairs (`read_pairs`, then
`make_items`). Each output is `CONTENT--STYLE.png`, from the pictures' names made safe: only
letters, digits, '.', '_', '+' and single '-' (never leading or trailing), so '--' appears once,
between the two parts, and names never collide. Two inputs of one role with the same name
(photos/a.jpg, more/a.png) are told apart by their extension, then by as many parent folders
as it takes (a.jpg, a.png; photos_a.jpg, more_a.jpg), compared without case, which some file
systems ignore.
"""
import csv
import hashlib
import os
import re
from dataclasses import dataclass

from ..errors import StyleTransferError
from ..files import check_input_file

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.gif', '.tif', '.tiff', '.webp')
SEPARATOR = '--'
OUTPUT_EXTENSION = '.png'
# File names are limited to 255 bytes; two labels, the separator and .png stay well inside.
MAX_LABEL = 100


@dataclass(frozen=True)
class Item:
    content: str    # absolute path of the content picture
    style: str      # absolute path of the style picture
    output: str     # file name in the output folder: CONTENT--STYLE.png


def collect(paths, role):
    """Absolute paths of the pictures named by `paths` (files, or folders whose picture files,
    by extension, are taken in name order, not recursing), each real file once. `role` says
    what they are ('content', 'style') in messages."""
    found, seen = [], set()
    for given in paths:
        path = os.path.abspath(os.fspath(given))
        if os.path.isdir(path):
            inside = sorted(name for name in os.listdir(path) if not name.startswith('.')
                            and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS
                            and not os.path.isdir(os.path.join(path, name)))
            if not inside:
                raise StyleTransferError('%s folder %s: no pictures in it (%s)'
                                         % (role, given, ' '.join(IMAGE_EXTENSIONS)))
            candidates = [os.path.join(path, name) for name in inside]
        elif os.path.lexists(path):
            # Files named explicitly are taken whatever they hold: a bad one fails its items.
            candidates = [path]
        else:
            raise StyleTransferError('%s %s: no such file or folder' % (role, given))
        for candidate in candidates:
            real = os.path.realpath(candidate)
            if real not in seen:
                seen.add(real)
                found.append(candidate)
    return found


def grid(contents, styles):
    """Every content against every style, content by content."""
    return make_items([(c, s) for c in contents for s in styles])


def read_pairs(path):
    """[(content, style)] from a CSV file of CONTENT,STYLE rows (an optional first row
    `content,style`; blank rows and rows starting with '#' are skipped). Relative paths are
    relative to the CSV file's folder, so the list moves with the pictures."""
    check_input_file(path, 'a CSV file')
    folder = os.path.dirname(os.path.abspath(path))
    pairs = []
    try:
        with open(path, newline='', encoding='utf-8') as f:
            for number, row in enumerate(csv.reader(f), 1):
                cells = [cell.strip() for cell in row]
                if not any(cells) or cells[0].startswith('#'):
                    continue
                if len(cells) != 2 or not all(cells):
                    raise StyleTransferError('%s line %d: expected CONTENT,STYLE' % (path, number))
                if not pairs and [c.lower() for c in cells] == ['content', 'style']:
                    continue
                pairs.append(tuple(os.path.join(folder, os.path.expanduser(c)) for c in cells))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise StyleTransferError('%s: cannot read it as CSV (%s)' % (path, e)) from e
    if not pairs:
        raise StyleTransferError('%s: no CONTENT,STYLE rows' % path)
    for content, style in pairs:
        collect([content], 'content'), collect([style], 'style')   # refuse missing ones now
    return pairs


def make_items(pairs):
    """Items of (content, style) path pairs, in order; a pair given twice is run once."""
    pairs = [(os.path.abspath(c), os.path.abspath(s)) for c, s in pairs]
    content_labels = labels(dict.fromkeys(c for c, _ in pairs))
    style_labels = labels(dict.fromkeys(s for _, s in pairs))
    items, seen = [], set()
    for content, style in pairs:
        key = (os.path.realpath(content), os.path.realpath(style))
        if key not in seen:
            seen.add(key)
            items.append(Item(content, style, content_labels[content] + SEPARATOR
                              + style_labels[style] + OUTPUT_EXTENSION))
    return items


def safe(text):
    """`text` as a safe part of a file name (see the module's docstring)."""
    text = re.sub(r'[^\w.+-]', '_', text)
    text = re.sub(r'-{2,}', '-', text).strip('-').lstrip('.')
    if len(text) > MAX_LABEL:     # keep both ends, which usually tell pictures apart
        half = (MAX_LABEL - 1) // 2
        text = text[:half] + '_' + text[-half:]
    return text.strip('-') or 'picture'


def _label(path, depth):
    """depth 0: the stem; 1: the file name; k > 1: k - 1 parent folders and the file name."""
    folder, name = os.path.split(path)
    if depth == 0:
        return safe(os.path.splitext(name)[0])
    parents = [p for p in folder.split(os.sep) if p][-(depth - 1):] if depth > 1 else []
    return safe('_'.join(parents + [name]))


def labels(paths):
    """{path: label}, unique without regard to case, for distinct absolute paths."""
    paths = list(paths)
    depth = dict.fromkeys(paths, 0)
    deepest = {p: len([part for part in p.split(os.sep) if part]) for p in paths}
    while True:
        names = {p: _label(p, depth[p]) for p in paths}
        groups = {}
        for p in paths:
            groups.setdefault(names[p].casefold(), []).append(p)
        clashing = [p for group in groups.values() if len(group) > 1 for p in group
                    if depth[p] < deepest[p]]
        if not clashing:
            break
        for p in clashing:
            depth[p] += 1
    # Names that still clash (paths that differ only in case, or cut short): number them.
    taken, out = set(), {}
    for p in paths:
        name, n = names[p], 1
        while name.casefold() in taken:
            n += 1
            name = '%s_%d' % (names[p], n)
        taken.add(name.casefold())
        out[p] = name
    return out


def sha256_bytes(data):
    return hashlib.sha256(data).hexdigest()
