"""accounts-merge, in Python against contract 0.1.0 with the raw bindings: frozen.

This is plugins/accounts-merge-py as it was before it moved onto migrun_sdk and
contract 0.2.0, kept as a test guest so that a component built against the first
contract keeps being proven to run unchanged (tests/e2e/contracts.rs). Do not
edit it: it stands for plugins already built and deployed.

The original description follows.

accounts-merge, in Python: the twin of plugins/accounts-merge (Rust).

Reads openneo_id's Devise `users` through a read-only `source` and writes
`accounts` (one per user, email trimmed and lower-cased, password reduced to
its kind) and `identities` (one per provider identity) through a read-write
`target`. The behaviour, the SQL text and the order of every host call are
those of the Rust plugin, whose `src/lib.rs` specifies them; the conformance
suite (tests/e2e/conformance.rs) holds the three twins to it.

Build (from this folder, with componentize-py 0.25.1 from PyPI; tests/e2e/support/plugins.rs `python_plugin_v0_1_0`):

    componentize-py -d ../../guest-sdk/wit/v0.1.0 -w migration componentize app -o accounts_merge_py.wasm

componentize-py generates the `wit_world` package from the WIT at build time;
this module implements its exported interface `plugin` as the class `Plugin`.
Imports that return `result<T, db-error>` return T or raise `Err(db_error)`;
an export fails by raising `Err(plugin_error)`.
"""

from typing import List, Optional, Tuple

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports.plugin import (
    ConfigKey,
    ConnectionNeed,
    PluginError_Database,
    PluginError_Failed,
    PluginInfo,
    UnitInfo,
)
from wit_world.imports import checks, database, log
from wit_world.imports.types import (
    DbError,
    Value,
    Value_Boolean,
    Value_Int,
    Value_Null,
    Value_Text,
    Value_Timestamp,
    Value_Timestamptz,
)

NAME = "accounts-merge"
VERSION = "0.1.0"
UNIT_CREATE = "create-tables"
UNIT_ACCOUNTS = "copy-accounts"
UNIT_IDENTITIES = "split-identities"
MAX_BATCH = 100000

# --- schema: verbatim copies of plugins/accounts-merge/src/schema.rs --------

ACCOUNTS = "accounts"
IDENTITIES = "identities"
ACCOUNT_COLUMNS = [
    "id",
    "name",
    "email",
    "email_domain",
    "password_kind",
    "sign_in_count",
    "locked",
    "created_at",
    "last_sign_in_at",
]
IDENTITY_COLUMNS = ["provider", "uid", "account_id", "email"]

CREATE_TABLES = {
    database.Dialect.SQLITE: [
        "CREATE TABLE IF NOT EXISTS accounts (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT UNIQUE, email_domain TEXT, password_kind TEXT NOT NULL, sign_in_count INTEGER NOT NULL, locked BOOLEAN NOT NULL, created_at DATETIME, last_sign_in_at DATETIME)",
        "CREATE TABLE IF NOT EXISTS identities (provider TEXT NOT NULL, uid TEXT NOT NULL, account_id INTEGER NOT NULL REFERENCES accounts (id), email TEXT, PRIMARY KEY (provider, uid))",
    ],
    database.Dialect.POSTGRES: [
        "CREATE TABLE IF NOT EXISTS accounts (id bigint PRIMARY KEY, name varchar(30) NOT NULL, email varchar(50) UNIQUE, email_domain varchar(255), password_kind varchar(16) NOT NULL, sign_in_count integer NOT NULL, locked boolean NOT NULL, created_at timestamp(6), last_sign_in_at timestamp(6))",
        "CREATE TABLE IF NOT EXISTS identities (provider varchar(255) NOT NULL, uid varchar(255) NOT NULL, account_id bigint NOT NULL REFERENCES accounts (id), email varchar(255), PRIMARY KEY (provider, uid))",
    ],
    database.Dialect.MYSQL: [
        "CREATE TABLE IF NOT EXISTS accounts (id bigint PRIMARY KEY, name varchar(30) NOT NULL, email varchar(50) UNIQUE, email_domain varchar(255), password_kind varchar(16) NOT NULL, sign_in_count int NOT NULL, locked boolean NOT NULL, created_at datetime(6), last_sign_in_at datetime(6)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
        "CREATE TABLE IF NOT EXISTS identities (provider varchar(255) NOT NULL, uid varchar(255) NOT NULL, account_id bigint NOT NULL REFERENCES accounts (id), email varchar(255), PRIMARY KEY (provider, uid)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
    ],
}

COUNT_USERS = "SELECT COUNT(*) FROM users"
SELECT_USERS = "SELECT id, name, email, encrypted_password, password_salt, sign_in_count, unlock_token, locked_at, created_at, last_sign_in_at FROM users ORDER BY id"
COUNT_PROVIDERS = "SELECT COUNT(*) FROM users WHERE provider IS NOT NULL"
SELECT_PROVIDERS = "SELECT id, provider, uid, neopass_email FROM users WHERE provider IS NOT NULL ORDER BY id"
COUNT_ACCOUNTS = "SELECT COUNT(*) FROM accounts"
COUNT_IDENTITIES = "SELECT COUNT(*) FROM identities"
SELECT_EMAILS = "SELECT id, email FROM accounts WHERE email IS NOT NULL ORDER BY id"
COUNT_ORPHANS = "SELECT COUNT(*) FROM identities LEFT JOIN accounts ON accounts.id = identities.account_id WHERE accounts.id IS NULL"

DIALECT_NAMES = {
    database.Dialect.SQLITE: "sqlite",
    database.Dialect.POSTGRES: "postgres",
    database.Dialect.MYSQL: "mysql",
}


def placeholder(dialect: database.Dialect, n: int) -> str:
    return f"${n}" if dialect == database.Dialect.POSTGRES else "?"


def present_accounts(dialect: database.Dialect) -> str:
    return f"SELECT id FROM accounts WHERE id BETWEEN {placeholder(dialect, 1)} AND {placeholder(dialect, 2)}"


def present_identities(dialect: database.Dialect) -> str:
    return f"SELECT account_id FROM identities WHERE account_id BETWEEN {placeholder(dialect, 1)} AND {placeholder(dialect, 2)}"


# --- normalisation: ASCII only, as in src/normalise.rs -----------------------

ASCII_WHITESPACE = " \t\n\f\r"  # Rust's char::is_ascii_whitespace
ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def normalise_email(email: Optional[str]) -> Optional[str]:
    if email is None:
        return None
    trimmed = email.strip(ASCII_WHITESPACE)
    return trimmed.translate(ASCII_LOWER) if trimmed else None


def email_domain(email: str) -> Optional[str]:
    _, at, domain = email.rpartition("@")
    return domain if at and domain else None


def password_kind(encrypted: Optional[str], salt: Optional[str]) -> str:
    if not encrypted:
        return "none"
    if salt:
        return "legacy-sha"
    if encrypted.startswith(("$2a$", "$2b$", "$2y$")):
        return "bcrypt"
    return "unknown"


def timestamp(target: database.Dialect, value: Value) -> Value:
    if target == database.Dialect.SQLITE:
        return value
    if isinstance(value, Value_Text):
        return Value_Timestamp(value.value.replace(" ", "T", 1))
    if isinstance(value, Value_Timestamptz):
        text = value.value
        return Value_Timestamp(text[:-1] if text.endswith("Z") else text)
    return value


def optional_text(text: Optional[str]) -> Value:
    return Value_Null() if text is None else Value_Text(text)


# --- a thin layer over the bindings, making the calls the Rust SDK makes ----


class Failed(Exception):
    """The plugin's own failure: becomes plugin-error.failed."""


def with_context(error: Exception, context: str) -> Exception:
    """Puts `context` in front of a failure's message, keeping a database error's kind and code."""
    if isinstance(error, Err) and isinstance(error.value, DbError):
        db = error.value
        return Err(DbError(db.kind, db.code, f"{context}: {db.message}"))
    return Failed(f"{context}: {error}")


class Connection:
    """A named connection, opened once per export call (see `Session`)."""

    def __init__(self, session: "Session", name: str, resource: database.Connection):
        self.session = session
        self.name = name
        self.resource = resource
        self.dialect = resource.dialect()
        self.access = resource.access()

    def query(self, sql: str, params: List[Value]) -> List[List[Value]]:
        return self.resource.query(sql, params).rows

    def scalar_int(self, sql: str) -> int:
        rows = self.query(sql, [])
        if not rows:
            raise Failed(f"query returned no rows: {sql}")
        return int_of(rows[0][0])

    def cursor(self, sql: str, params: List[Value], batch_size: int) -> "Cursor":
        cursor = Cursor(self.resource.open_cursor(sql, params, batch_size))
        self.session.cursors.append(cursor)
        return cursor

    def bulk_insert(self, table: str, columns: List[str], rows: List[List[Value]]) -> int:
        if not rows:
            return 0
        return self.resource.bulk_insert(table, columns, rows)


class Cursor:
    """A streaming query result; released as soon as it is exhausted or fails."""

    def __init__(self, resource: database.Cursor):
        self.resource = resource
        self.columns = resource.columns()

    def next(self) -> Optional[List[List[Value]]]:
        """The next non-empty batch, or None at the end."""
        while self.resource is not None:
            try:
                batch = self.resource.next_batch()
            except Err:
                self.close()
                raise
            if batch is None:
                self.close()
            elif batch:
                return batch
        return None

    def close(self):
        if self.resource is not None:
            self.resource.__exit__(None, None, None)
            self.resource = None


class Session:
    """The connections and cursors one export call opened, released when it
    returns: unfinished cursors first (latest first), as Rust drops them when
    a unit fails mid-stream, then the connections."""

    def __init__(self):
        self.open: List[Connection] = []
        self.cursors: List[Cursor] = []

    def connection(self, name: str) -> Connection:
        for conn in self.open:
            if conn.name == name:
                return Connection(self, name, conn.resource)
        conn = Connection(self, name, database.open(name))
        self.open.append(conn)
        return conn

    def close(self):
        for cursor in reversed(self.cursors):
            cursor.close()
        for conn in self.open:
            conn.resource.__exit__(None, None, None)
        self.cursors = []
        self.open = []


def int_of(value: Value) -> int:
    if isinstance(value, Value_Int):
        return value.value
    if isinstance(value, Value_Boolean):
        return int(value.value)
    raise Failed(f"cannot decode row: expected an integer, found {type(value).__name__}")


def text_of(value: Value) -> Optional[str]:
    if isinstance(value, Value_Null):
        return None
    if isinstance(getattr(value, "value", None), str):
        return value.value
    raise Failed(f"cannot decode row: expected text, found {type(value).__name__}")


def info(message: str, fields: List[Tuple[str, str]]):
    log.write(log.Level.INFO, message, fields)


def call(body):
    """Runs one export call: closes its connections, maps failures to plugin-error."""
    session = Session()
    try:
        return body(session)
    except Err as e:
        if isinstance(e.value, DbError):
            raise Err(PluginError_Database(e.value))
        raise
    except Failed as e:
        raise Err(PluginError_Failed(str(e)))
    finally:
        session.close()


# --- the units -----------------------------------------------------------------


def create_tables(session: Session):
    target = session.connection("target")
    for table, sql in zip([ACCOUNTS, IDENTITIES], CREATE_TABLES[target.dialect]):
        try:
            target.resource.execute(sql, [])
        except Err as e:
            raise with_context(e, f"creating {table}")
    info(f"{ACCOUNTS} and {IDENTITIES} exist", [("dialect", DIALECT_NAMES[target.dialect])])


def present(target: Connection, present_sql: str, batch: List[List[Value]]):
    first, last = int_of(batch[0][0]), int_of(batch[-1][0])
    ids = {int_of(row[0]) for row in target.query(present_sql, [Value_Int(first), Value_Int(last)])}
    return first, last, ids


def account(target: database.Dialect, user: List[Value]):
    """The accounts row for a row of SELECT_USERS, whether normalising changed its email, whether it has none."""
    email = text_of(user[2])
    normalised = normalise_email(email)
    domain = email_domain(normalised) if normalised is not None else None
    sign_ins = 0 if isinstance(user[5], Value_Null) else int_of(user[5])
    locked = text_of(user[6]) is not None or not isinstance(user[7], Value_Null)
    values = [
        Value_Int(int_of(user[0])),
        Value_Text(text_of(user[1])),
        optional_text(normalised),
        optional_text(domain),
        Value_Text(password_kind(text_of(user[3]), text_of(user[4]))),
        Value_Int(sign_ins),
        Value_Boolean(locked),
        timestamp(target, user[8]),
        timestamp(target, user[9]),
    ]
    return values, email is not None and normalised != email, normalised is None


def identity(user: List[Value]) -> List[Value]:
    provider = text_of(user[1]).strip(ASCII_WHITESPACE).translate(ASCII_LOWER)
    return [
        Value_Text(provider),
        user[2],
        Value_Int(int_of(user[0])),
        optional_text(normalise_email(text_of(user[3]))),
    ]


def copy_accounts(session: Session, batch_size: int):
    source = session.connection("source")
    target = session.connection("target")
    dialect = target.dialect
    total = source.scalar_int(COUNT_USERS)
    present_sql = present_accounts(dialect)

    done = copied = skipped = normalised = without_email = 0
    log.progress(UNIT_ACCOUNTS, 0, total)
    cursor = source.cursor(SELECT_USERS, [], batch_size)
    while True:
        try:
            batch = cursor.next()
        except Err as e:
            raise with_context(e, "reading users")
        if batch is None:
            break
        first, last, ids = present(target, present_sql, batch)
        done += len(batch)
        rows = []
        for user in batch:
            if int_of(user[0]) in ids:
                skipped += 1
                continue
            values, changed, no_email = account(dialect, user)
            normalised += changed
            without_email += no_email
            rows.append(values)
        try:
            copied += target.bulk_insert(ACCOUNTS, ACCOUNT_COLUMNS, rows)
        except Err as e:
            raise with_context(e, f"inserting accounts {first} to {last}")
        log.progress(UNIT_ACCOUNTS, done, total)
    info(
        f"copied {copied} users into {ACCOUNTS}; {skipped} were already present, "
        f"{normalised} emails were normalised, {without_email} have no email",
        [
            ("copied", str(copied)),
            ("skipped", str(skipped)),
            ("normalised", str(normalised)),
            ("without_email", str(without_email)),
        ],
    )


def split_identities(session: Session, batch_size: int):
    source = session.connection("source")
    target = session.connection("target")
    total = source.scalar_int(COUNT_PROVIDERS)
    present_sql = present_identities(target.dialect)

    done = copied = skipped = without_email = 0
    log.progress(UNIT_IDENTITIES, 0, total)
    cursor = source.cursor(SELECT_PROVIDERS, [], batch_size)
    while True:
        try:
            batch = cursor.next()
        except Err as e:
            raise with_context(e, "reading users with a provider")
        if batch is None:
            break
        first, last, ids = present(target, present_sql, batch)
        done += len(batch)
        rows = []
        for user in batch:
            if int_of(user[0]) in ids:
                skipped += 1
                continue
            row = identity(user)
            without_email += isinstance(row[3], Value_Null)
            rows.append(row)
        try:
            copied += target.bulk_insert(IDENTITIES, IDENTITY_COLUMNS, rows)
        except Err as e:
            raise with_context(e, f"inserting identities of accounts {first} to {last}")
        log.progress(UNIT_IDENTITIES, done, total)
    info(
        f"split {copied} identities into {IDENTITIES}; {skipped} were already present, {without_email} have no email",
        [("copied", str(copied)), ("skipped", str(skipped)), ("without_email", str(without_email))],
    )


def verify(session: Session, batch_size: int):
    source = session.connection("source")
    target = session.connection("target")

    users = source.scalar_int(COUNT_USERS)
    accounts = target.scalar_int(COUNT_ACCOUNTS)
    checks.report("accounts match users", users == accounts, f"users: {users}, accounts: {accounts}")

    with_provider = source.scalar_int(COUNT_PROVIDERS)
    identities = target.scalar_int(COUNT_IDENTITIES)
    checks.report(
        "identities match users with a provider",
        with_provider == identities,
        f"users with a provider: {with_provider}, identities: {identities}",
    )

    checked = wrong = 0
    first_wrong = None
    cursor = target.cursor(SELECT_EMAILS, [], batch_size)
    while (batch := cursor.next()) is not None:
        for row in batch:
            account_id, email = int_of(row[0]), text_of(row[1])
            checked += 1
            if normalise_email(email) != email:
                wrong += 1
                if first_wrong is None:
                    first_wrong = account_id
    if first_wrong is None:
        detail = f"{checked} emails are trimmed and lower-case"
    else:
        detail = f"{wrong} of {checked} emails are not trimmed and lower-case; first: account {first_wrong}"
    checks.report("emails are normalised", wrong == 0, detail)

    orphans = target.scalar_int(COUNT_ORPHANS)
    checks.report("every identity has an account", orphans == 0, f"{orphans} identities without an account")


# --- the export ------------------------------------------------------------------


def parse_batch_size(text: str) -> int:
    if text and len(text) <= 6 and all("0" <= c <= "9" for c in text) and 1 <= int(text) <= MAX_BATCH:
        return int(text)
    raise Failed(f"config key `batch_size` must be a whole number from 1 to {MAX_BATCH}, got `{text}`")


# The configuration, kept between calls: one component instance is one plugin run.
STATE = {"batch_size": None}


def configured() -> int:
    if STATE["batch_size"] is None:
        raise Failed("run-unit was called before configure")
    return STATE["batch_size"]


class Plugin(exports.Plugin):
    def describe(self) -> PluginInfo:
        return PluginInfo(
            name=NAME,
            version=VERSION,
            description="Merges openneo_id's users into normalised accounts and provider identities",
            connections=[
                ConnectionNeed("source", database.Access.READ_ONLY, "the openneo_id database, holding Devise's users table", []),
                ConnectionNeed("target", database.Access.READ_WRITE, "the database receiving accounts and identities", [ACCOUNTS, IDENTITIES]),
            ],
            units=[
                UnitInfo(UNIT_CREATE, "creates accounts and identities when absent"),
                UnitInfo(UNIT_ACCOUNTS, "copies every user into accounts in id order, email normalised, skipping ids already present"),
                UnitInfo(UNIT_IDENTITIES, "copies each provider identity into identities, skipping accounts already split"),
            ],
            config=[ConfigKey("batch_size", "rows fetched and inserted per batch", False, "500", False)],
        )

    def configure(self, config: List[Tuple[str, str]]) -> None:
        def body(_session):
            STATE["batch_size"] = parse_batch_size(dict(config).get("batch_size", "500"))

        call(body)

    def list_units(self) -> List[UnitInfo]:
        return call(lambda _session: self.describe().units)

    def run_unit(self, unit: str) -> None:
        def body(session):
            batch_size = configured()
            if unit == UNIT_CREATE:
                create_tables(session)
            elif unit == UNIT_ACCOUNTS:
                copy_accounts(session, batch_size)
            elif unit == UNIT_IDENTITIES:
                split_identities(session, batch_size)
            else:
                raise Failed(f"unknown unit `{unit}` (expected {UNIT_CREATE}, {UNIT_ACCOUNTS} or {UNIT_IDENTITIES})")

        call(body)

    def verify(self) -> None:
        call(lambda session: verify(session, configured()))
