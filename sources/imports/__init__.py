"""Survey exports (CSV, Parquet) read through a mapping file into feedback events: ``boucle import``.

:mod:`.mapping` is the mapping file (column → field or question, times, "not rated" codes, scales
over time), :mod:`.reader` the file's rows with their numbers, :mod:`.convert` a row → an event or
a reason. The shipped layouts (``qualtrics``, ``generic``) and their example exports are in
``layouts/``.
"""

from boucle.sources.imports.convert import IMPORT_REASON_CODES, ImportStats, RowConverter, RowError, SiteInfo
from boucle.sources.imports.mapping import (
    LAYOUTS_DIR,
    SHIPPED_LAYOUTS,
    Mapping,
    MappingError,
    load_mapping,
    mapping_from_dict,
)
from boucle.sources.imports.reader import Row, Table, TableError, open_table

__all__ = [
    "IMPORT_REASON_CODES", "LAYOUTS_DIR", "SHIPPED_LAYOUTS", "ImportStats", "Mapping", "MappingError", "Row",
    "RowConverter", "RowError", "SiteInfo", "Table", "TableError", "load_mapping", "mapping_from_dict", "open_table",
]
