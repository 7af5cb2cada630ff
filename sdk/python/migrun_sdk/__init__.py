"""migrun-sdk for Python: write migrun migration plugins (contract 0.2.0) in idiomatic Python.

```
import migrun_sdk as migrun
from migrun_sdk import Config, log, read_write, unit

class Greetings(migrun.Plugin):
    name = "greetings"
    version = "0.1.0"
    connections = [read_write("target", "where the greetings go", writes=["greetings"])]
    count = Config.int(3, "how many greetings")

    @unit("fill", "inserts the missing greetings")
    def fill(self):
        db = migrun.connect("target")
        have = db.query_scalar("SELECT COUNT(*) FROM greetings")
        db.bulk_insert("greetings", [{"id": i, "message": f"hello #{i}"} for i in range(have + 1, self.count + 1)])

Plugin = migrun.export(Greetings)
```

Modules: `plugin` (Plugin, Config, Unit, unit, read_only, read_write, export),
`db` (connect, Connection, Cursor, Row, Dialect), `values` (Json, Vector,
TextArray, Typed, Raw), `errors` (DbError, Failed, context), `log` (+ progress,
check), `checkpoint`, `backfill` (Backfill), `copy` (copy), and `testing` (for
pytest, outside the component). Built with componentize-py against
`wit/v0.2.0` (shipped in this package as `migrun_sdk/wit/`).
"""

from . import checkpoint, log
from .backfill import Backfill, BackfillReport, Batch, key_of
from .copy import CopyReport, copy
from .db import Access, Connection, Cursor, Dialect, Row, connect
from .errors import DbError, Error, Failed, context
from .log import check, progress
from .plugin import Config, Need, Plugin, Unit, export, read_only, read_write, unit
from .values import Json, Raw, TextArray, Typed, Vector

CONTRACT = "0.2.0"
__version__ = "0.2.0"

__all__ = [
    "Access", "Backfill", "BackfillReport", "Batch", "CONTRACT", "Config", "Connection", "CopyReport",
    "Cursor", "DbError", "Dialect", "Error", "Failed", "Json", "Need", "Plugin", "Raw", "Row",
    "TextArray", "Typed", "Unit", "Vector", "check", "checkpoint", "connect", "context", "copy",
    "export", "key_of", "log", "progress", "read_only", "read_write", "unit",
]
