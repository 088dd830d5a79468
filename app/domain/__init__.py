"""The domain: what StyleDrop Studio does with styles, rounds, candidates, generations and evaluations, apart
from HTTP. The REST API (app/api/) and the pages (app/pages/) are thin layers over it; the worker (worker/)
writes through it.
"""
