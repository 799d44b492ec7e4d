"""Batches: every content picture against every style picture (or listed pairs), each item run by
a stylizer on a Dask worker process (or in this process), outputs and a manifest in one folder.

- `items`: the plan (which pictures, which output names, their hashes);
- `manifest`: `OUTDIR/manifest.jsonl`, a line appended per item, and what a re-run may skip;
- `methods`: the stylizers a batch can run, by name;
- `worker`: what runs on a worker process (one loaded stylizer per process);
- `engine`: in this process or on Dask; the client writes every file;
- `bench`: throughput with 1 and 2 local workers against a plain loop.

Importing this package loads neither MXNet nor Dask.
"""
