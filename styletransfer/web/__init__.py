"""`styletransfer serve`: a local web page over the library, on FastAPI and uvicorn.

- jobs.py: the job queue. One worker thread runs every job (MXNet 1.x is not thread-safe), with
  a stylizer built once per network and reused; each job keeps the history of its events, its
  latest preview and its result files, which the web side only reads. Jobs run the book's
  optimisation (gatys) or a feed-forward network in one pass (fast, adain).
- models.py: the server's feed-forward networks, read from `serve --models DIR` by a naming
  rule into named models; a job names one, never a file.
- forms.py: an HTTP form and its uploads as the library's Network and Settings (or a model and
  FastSettings) and Inputs, checked by their own rules (a bad field is refused naming it).
- server.py: the FastAPI app (`create_app`): the page, the HTTP API, server-sent events, and the
  guards that keep a local server local.
- static/: the page itself, plain HTML, CSS and JavaScript (no build step, nothing fetched from
  elsewhere).

Nothing here is imported by `import styletransfer`: FastAPI is an optional dependency (the `web`
extra, requirements-web.txt).
"""
