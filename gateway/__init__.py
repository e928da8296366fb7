"""ome-zarr-gateway: microscopy files served in place as OME-Zarr 0.5 over HTTP."""

__version__ = "0.1.0"
