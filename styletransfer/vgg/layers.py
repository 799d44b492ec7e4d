"""VGG-19's feature layers by name and index, in one table.

Indices are positions in Gluon's `vgg19().features`; the names follow the paper's convention
(conv3_2 is the second convolution of block 3). The book's defaults are indices, which this table
names: style layers 0/5/10/19/28 are conv1_1..conv5_1 and the content layer 25 is conv4_4, all
taken after the convolution and before its ReLU.
"""
from ..errors import StyleTransferError

# Convolutions per block and their output channels, as in Gluon's vgg_spec[19].
BLOCKS = ((2, 64), (2, 128), (4, 256), (4, 512), (4, 512))


def _build_table():
    table, index, in_channels = [], 0, 3
    for block, (convs, channels) in enumerate(BLOCKS, start=1):
        for conv in range(1, convs + 1):
            table.append(('conv%d_%d' % (block, conv), index, (channels, in_channels, 3, 3)))
            table.append(('relu%d_%d' % (block, conv), index + 1, None))
            index, in_channels = index + 2, channels
        table.append(('pool%d' % block, index, None))
        index += 1
    return table


# (name, index, weight shape or None) for every layer of vgg19().features up to pool5.
TABLE = _build_table()
NAMES = {name: index for name, index, _ in TABLE}
INDEX_NAMES = {index: name for name, index, _ in TABLE}
CONV_SHAPES = {index: shape for _, index, shape in TABLE if shape}
# How much each layer shrinks the image: after four 2x2 poolings a 16-pixel side leaves
# conv5_1 one pixel.
DOWNSAMPLING = {index: 2 ** sum(1 for n, i, _ in TABLE if n.startswith('pool') and i <= index)
                for _, index, _ in TABLE}


def channels(index):
    """Channels of layer `index`'s output: its convolution's, or the last one's before it."""
    return CONV_SHAPES[max(i for i in CONV_SHAPES if i <= index)][0]


def feature_size(index, width, height):
    """(width, height) of layer `index`'s output for a WIDTHxHEIGHT image: each 2x2 pooling
    floors odd sides, so that is the image's size divided down."""
    factor = DOWNSAMPLING[index]
    return width // factor, height // factor


BOOK_CONTENT_LAYERS = (25,)
BOOK_STYLE_LAYERS = (0, 5, 10, 19, 28)


def resolve(spec):
    """Turn '0,5,conv3_1' or a sequence of names/indices into a tuple of layer indices."""
    items = spec.split(',') if isinstance(spec, str) else list(spec)
    indices = []
    for item in items:
        item = str(item).strip()
        if not item:
            continue
        if item.isdigit():
            index = int(item)
            if index not in INDEX_NAMES:
                raise StyleTransferError('layer index %d is outside VGG-19 features (0..%d)'
                                         % (index, len(TABLE) - 1))
        elif item.lower() in NAMES:
            index = NAMES[item.lower()]
        else:
            raise StyleTransferError('unknown layer %r: use an index 0..%d or a name like conv4_2'
                                     % (item, len(TABLE) - 1))
        indices.append(index)
    if not indices:
        raise StyleTransferError('no layers given')
    return tuple(indices)


def min_side(indices):
    """Smallest image side (pixels) for which every requested layer is at least 1x1."""
    return max(DOWNSAMPLING[i] for i in indices)


def describe(indices):
    return ', '.join('%s (%d)' % (INDEX_NAMES[i], i) for i in indices)
