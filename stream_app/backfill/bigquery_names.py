"""Naming BigQuery tables in SQL and URIs: the helpers the BigQuery source and sink share."""

from __future__ import annotations

import re

from stream_app.backfill.errors import SourceError

_TABLE_ID = re.compile(r"^(?:([a-z0-9][a-z0-9\-.:]*[a-z0-9])\.)?([A-Za-z0-9_]+)\.([A-Za-z0-9_\-$]+)$")


def parse_table_id(table: str, default_project: str) -> tuple[str, str, str]:
    """``project.dataset.table`` or ``dataset.table`` -> (project, dataset, table)."""
    m = _TABLE_ID.match(table.strip().strip("`"))
    if not m:
        raise SourceError(f"{table!r} is not a BigQuery table id (expected project.dataset.table)")
    return m.group(1) or default_project, m.group(2), m.group(3)


def quote(name: str) -> str:
    return "`" + name.replace("`", "") + "`"


def run_suffix(run_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", run_id)


class NamedTable:
    """A backfill source or sink that reads or writes one BigQuery table."""

    project: str
    dataset: str
    table: str

    def _name_table(self, table: str, default_project: str) -> None:
        self.project, self.dataset, self.table = parse_table_id(table, default_project)

    @property
    def table_id(self) -> str:
        return f"{self.project}.{self.dataset}.{self.table}"

    def describe(self) -> str:
        return f"bigquery://{self.project}/{self.dataset}/{self.table}"
