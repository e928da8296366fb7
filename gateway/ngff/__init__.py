"""The zarr/OME tree of one dataset: its layout (which arrays, which chunk shapes),
the ``zarr.json`` and OME-Zarr 0.5 documents, chunk codecs, the key grammar, the
Zarr v2 / OME-Zarr 0.4 view and the RO-Crate document. No I/O, no HTTP.
"""
