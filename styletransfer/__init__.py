"""Neural style transfer on MXNet Gluon, after the d2l book (MXNet edition).

    import styletransfer as st
    result = st.stylize('photo.jpg', 'painting.jpg', weights='zoo')
    result.picture                      # HxWx3 uint8

    stylizer = st.Stylizer(st.Network(weights='zoo'), ctx='auto')   # built once
    run = stylizer.start(st.Inputs('photo.jpg', 'painting.jpg'), st.Settings())
    for event in run:                   # st.Progress, st.StageDone
        ...

    training = st.Training(st.JohnsonRecipe(['mosaic.jpg']), {'content': 'coco/'},
                           st.TrainingSettings())    # a feed-forward network for one style
    for event in training:              # st.Progress, st.Samples
        ...
    training.save('mosaic.params')
    decoder = st.Training(st.AdaINRecipe('zoo'), {'content': 'coco/', 'style': 'wikiart/'},
                          st.adain_settings())       # an AdaIN decoder for any style

Importing the package loads no MXNet: names are looked up when first used, so a front-end can
set MXNet's threads (`styletransfer.device.set_threads`) before MXNet starts.
"""
import importlib

_PUBLIC = {
    'stylize': 'gatys.stylizer', 'Stylizer': 'gatys.stylizer', 'Run': 'gatys.stylizer',
    'RunState': 'gatys.state', 'FastStylizer': 'fast.stylizer', 'FastSettings': 'fast.stylizer',
    'Settings': 'settings', 'Stage': 'settings', 'BOOK_STAGES': 'settings',
    'Network': 'vgg.network', 'Inputs': 'inputs',
    'Progress': 'events', 'StageDone': 'events', 'Result': 'events', 'Samples': 'events',
    'Training': 'fast.training', 'TrainingSettings': 'fast.training',
    'TrainingState': 'fast.training', 'JohnsonRecipe': 'fast.train_johnson',
    'JohnsonLoss': 'fast.train_johnson', 'johnson_network': 'fast.train_johnson',
    'AdaINRecipe': 'fast.train_adain', 'AdaINLoss': 'fast.train_adain',
    'adain_settings': 'fast.train_adain',
    'StyleTransferError': 'errors', 'Diverged': 'errors',
}

__all__ = sorted(_PUBLIC)


def __getattr__(name):
    if name not in _PUBLIC:
        raise AttributeError('module %r has no attribute %r' % (__name__, name))
    value = getattr(importlib.import_module('.' + _PUBLIC[name], __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_PUBLIC))
