"""The HDF5 family: the file and its chunk index read without libhdf5 on the hot path
(``file``, ``chunks``, ``filters``), and the flavours: generic datasets (``generic``),
BigDataViewer (``bdv``) and Imaris (``imaris``), tried in that order by ``adapter``.
"""
