"""Video: read, write and resume frames; optical flow, warps and temporal consistency."""
