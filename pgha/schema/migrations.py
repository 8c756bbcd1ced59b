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
#: ``NNNN_name.sql`` in ASCII digits: ``\d`` would also take Arabic-Indic or full-width digits, a second
#: spelling of the same number.
FILE_PATTERN = re.compile(r"([0-9]{4})_[a-z0-9_]+\.sql")
NO_TRANSACTION_MARK = "-- pgha:no-transaction"
#: Comments and whitespace before a statement's first keyword (block comments not nested).
LEADING_COMMENTS = re.compile(r"\A(?:\s+|--[^\n]*|/\*.*?\*/)*", re.DOTALL)
#: Statements that start, end or prepare a transaction. A transactional migration runs inside the
#: runner's transaction, which these would end early. SAVEPOINT, RELEASE and ROLLBACK TO stay inside it.
TRANSACTION_CONTROL = re.compile(
    r"""(?:BEGIN|START\s+TRANSACTION|COMMIT|END|ABORT
        |ROLLBACK(?!\s+(?:(?:WORK|TRANSACTION)\s+)?TO\b)
        |PREPARE\s+TRANSACTION(?!\s*(?:AS\b|\()))\b""",
    re.IGNORECASE | re.VERBOSE,
)


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
        sql = _read(path)
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


def _read(path: Path) -> str:
    """A migration file's text, as UTF-8 whatever the machine's locale (its checksum must not depend on it)."""
    if not path.is_file():
        raise MigrationFileError(f"{path.name} is not a file")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise MigrationFileError(
            f"{path.name} is not UTF-8 text (byte 0x{err.object[err.start]:02x} at offset "
            f"{err.start}): save it as UTF-8"
        ) from None


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


@dataclass(frozen=True)
class TransactionControl:
    """A statement of a migration that controls the transaction (BEGIN, COMMIT, ...), and where it is."""

    line: int
    statement: str


def transaction_control(sql: str) -> list[TransactionControl]:
    """Every top-level statement in ``sql`` that starts, ends or prepares a transaction, with its line.

    Why: the runner wraps a transactional migration in its own transaction with the tracking row;
    a COMMIT in the file would end it early, leaving what came before applied but unrecorded when a
    later statement fails. Statements are found with :func:`split_statements`, so a BEGIN/END in a
    string, a comment, a dollar-quoted PL/pgSQL body or a DO block is not one.
    """
    found = []
    position = 0
    for statement in split_statements(sql):
        start = sql.find(statement, position)
        position = start + len(statement) if start >= 0 else position
        leading = LEADING_COMMENTS.match(statement)  # always matches, if only the empty string
        lead = leading.end() if leading else 0
        if TRANSACTION_CONTROL.match(statement, lead):
            code = statement[lead:].splitlines()[0].strip()
            line = sql.count("\n", 0, start + lead) + 1 if start >= 0 else 0
            found.append(TransactionControl(line=line, statement=code))
    return found
