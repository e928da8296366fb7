"""The TIFF family: plain TIFF, OME-TIFF, ImageJ hyperstacks, SVS and other pyramids
(``adapter``), and the OME-XML they carry (``ome_xml``).
"""
