"""Video: read, write and resume frames, optical flow, warping and the temporal-consistency tools."""
