"""Shared reading code of every adapter family: contained positional file reads
(``files``), the chunk-grid reader with coalescing and a tile cache (``chunked``), and
bounded decoding of compressed frames (``frames``).
"""
