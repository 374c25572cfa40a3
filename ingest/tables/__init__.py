"""Read the monthly statistics table from a spreadsheet or Word file.

``read_tables`` is the one entry point; the modules beside it are its steps
(detect → spreadsheet/worddoc/text → header → layout → metadata).
"""

from .read import read_tables

__all__ = ["read_tables"]
