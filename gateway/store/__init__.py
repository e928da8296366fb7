"""The store side of the one data path: a per-dataset zarr Store (``dataset``), the
wrappers stacked on it (chunk cache, timing), the mount table from URL paths to
leased dataset stores (``catalog``, ``pool``), the byte caches and the work budget.
Nothing here imports Starlette: in-process zarr users get the same objects HTTP serves.
"""
