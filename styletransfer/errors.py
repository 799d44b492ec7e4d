"""The one exception type the command-line tools turn into a one-line message and exit code 2."""


class StyleTransferError(Exception):
    """A problem with what the user gave us (files, options, weights, device): not a bug."""
