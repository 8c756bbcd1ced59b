"""The application schema as ordered SQL files: discovery, checksums and the content hash.

Pure (no database, no Pulumi): the migration runner and the Pulumi schema hook both import
it, so the hash that triggers the hook is the hash of exactly what the runner applies.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "schema" / "migrations"
FILE_PATTERN = re.compile(r"(\d{4})_[a-z0-9_]+\.sql")
NO_TRANSACTION_MARK = "-- pgha:no-transaction"


class MigrationFileError(ValueError):
    """A migrations directory that cannot be applied as it is (bad name, duplicate number)."""


@dataclass(frozen=True)
class Migration:
    """One migration file."""

    name: str
    sql: str
    checksum: str
    #: False when the file starts with ``-- pgha:no-transaction`` (e.g. CREATE INDEX CONCURRENTLY).
    transactional: bool

    @property
    def number(self) -> int:
        """The ordering number at the start of the name."""
        return int(self.name[:4])


def checksum(sql: str) -> str:
    """SHA-256 of a migration's text: an applied migration must never change."""
    return hashlib.sha256(sql.encode()).hexdigest()


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """All migrations in ``directory``, in order; refuses names that would make the order ambiguous."""
    migrations = []
    seen: dict[str, str] = {}
    for path in sorted(directory.iterdir()):
        if path.suffix != ".sql":
            continue
        if not FILE_PATTERN.fullmatch(path.name):
            raise MigrationFileError(f"{path.name}: migration files are named NNNN_lowercase_name.sql")
        number = path.name[:4]
        if number in seen:
            raise MigrationFileError(f"{path.name} and {seen[number]} share the number {number}")
        seen[number] = path.name
        sql = path.read_text()
        first_line = sql.lstrip().splitlines()[0] if sql.strip() else ""
        migrations.append(
            Migration(
                name=path.name,
                sql=sql,
                checksum=checksum(sql),
                transactional=first_line.strip() != NO_TRANSACTION_MARK,
            )
        )
    return migrations


def migrations_hash(directory: Path = MIGRATIONS_DIR) -> str:
    """One hash over every migration's name and content: changes exactly when the schema does."""
    digest = hashlib.sha256()
    for migration in discover(directory):
        digest.update(f"{migration.name}\0{migration.checksum}\n".encode())
    return digest.hexdigest()


def split_statements(sql: str) -> list[str]:
    """Split a non-transactional migration into statements (quotes, dollar quotes and comments respected)."""
    import sqlparse

    statements = []
    for statement in sqlparse.split(sql):
        code = sqlparse.format(statement, strip_comments=True).strip().rstrip(";").strip()
        if code:
            statements.append(statement.strip())
    return statements
