"""cnnzoo's version, in a module of its own that imports nothing: modules below the public API (the
run's recorded versions, ``cnnzoo list``'s cache key) read it here, never from the package root,
which imports the whole API lazily and so sits above them."""

__version__ = "0.1.0"
