"""``cnnzoo serve``: the explorer, a local web page over a folder of runs and the JSON API behind
it.

``runs`` finds the run directories under RUNS_DIR and reads their files, refusing any name or link
that would lead outside it; ``limits`` holds the server's bounds (request size, pixels, concurrent
inference, timeouts) and the small ASGI middleware that enforces the body limit; ``models`` keeps
the loaded models in an LRU cache; ``explain`` turns one image into what the page draws, through
``cnnzoo.visualize``; ``app`` builds the FastAPI application and ``routes`` its endpoints. The page
itself is plain HTML, CSS and JavaScript in ``static/``. Importing this package imports neither
FastAPI nor torch.
"""
