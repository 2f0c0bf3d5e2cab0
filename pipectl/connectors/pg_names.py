"""How names and values cross between the config and SQL, for every Postgres module alike.

A table name from the config (`schema.table` or `table`, case-sensitive) reaches SQL only as a
`psycopg.sql.Identifier`, or, where the catalog must resolve it, quoted by the server (`QUOTED_NAME`);
values read back become plain evidence. psycopg is imported lazily.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from psycopg import sql

QUOTED_NAME = ("CASE WHEN %(schema)s::text IS NULL THEN quote_ident(%(name)s)"
               " ELSE quote_ident(%(schema)s) || '.' || quote_ident(%(name)s) END")
"""The table's name as `to_regclass` must see it (quoted: config names are case-sensitive); takes the
parameters `schema` and `name` from `split_table`."""


def split_table(table: str) -> tuple[str | None, str]:
    """`schema.table` → (schema, table); a bare name → (None, table), found on the search path."""
    schema, _, name = table.rpartition(".")
    return (schema or None), name


def table_ident(table: str) -> sql.Identifier:
    """The table as one SQL identifier, schema-qualified when the config names a schema."""
    from psycopg import sql

    schema, name = split_table(table)
    return sql.Identifier(schema, name) if schema else sql.Identifier(name)


def plain(value: Any) -> Any:
    """Evidence holds names and numbers: keep str/int/float/bool/None, print anything else."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)
