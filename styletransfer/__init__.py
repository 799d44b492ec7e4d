"""Neural style transfer on MXNet Gluon, after the d2l book (MXNet edition)."""
