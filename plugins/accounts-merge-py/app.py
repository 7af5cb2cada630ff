"""accounts-merge, in Python on migrun_sdk: the twin of plugins/accounts-merge (Rust).

Reads openneo_id's Devise `users` through a read-only `source` and writes
`accounts` (one per user, email trimmed and lower-cased, password reduced to its
kind) and `identities` (one per provider identity) through a read-write `target`.
The behaviour, the SQL text and the order of every host call are those of the Rust
plugin, whose `src/lib.rs` specifies them; the conformance suite
(tests/e2e/conformance.rs) holds the three twins to it.

Build (contract 0.2.0, the SDK from this checkout):

    componentize-py -d ../../guest-sdk/wit/v0.2.0 -w migration componentize app -p . -p ../../sdk/python -o accounts_merge_py.wasm
"""

import datetime

import migrun_sdk as migrun
from migrun_sdk import Config, Raw, check, connect, context, log, progress, read_only, read_write, unit

UNIT_CREATE, UNIT_ACCOUNTS, UNIT_IDENTITIES = "create-tables", "copy-accounts", "split-identities"
MAX_BATCH = 100000

# --- schema: verbatim copies of plugins/accounts-merge/src/schema.rs --------

ACCOUNTS, IDENTITIES = "accounts", "identities"
ACCOUNT_COLUMNS = ["id", "name", "email", "email_domain", "password_kind", "sign_in_count", "locked", "created_at", "last_sign_in_at"]
IDENTITY_COLUMNS = ["provider", "uid", "account_id", "email"]

CREATE_TABLES = {
    "sqlite": [
        "CREATE TABLE IF NOT EXISTS accounts (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT UNIQUE, email_domain TEXT, password_kind TEXT NOT NULL, sign_in_count INTEGER NOT NULL, locked BOOLEAN NOT NULL, created_at DATETIME, last_sign_in_at DATETIME)",
        "CREATE TABLE IF NOT EXISTS identities (provider TEXT NOT NULL, uid TEXT NOT NULL, account_id INTEGER NOT NULL REFERENCES accounts (id), email TEXT, PRIMARY KEY (provider, uid))",
    ],
    "postgres": [
        "CREATE TABLE IF NOT EXISTS accounts (id bigint PRIMARY KEY, name varchar(30) NOT NULL, email varchar(50) UNIQUE, email_domain varchar(255), password_kind varchar(16) NOT NULL, sign_in_count integer NOT NULL, locked boolean NOT NULL, created_at timestamp(6), last_sign_in_at timestamp(6))",
        "CREATE TABLE IF NOT EXISTS identities (provider varchar(255) NOT NULL, uid varchar(255) NOT NULL, account_id bigint NOT NULL REFERENCES accounts (id), email varchar(255), PRIMARY KEY (provider, uid))",
    ],
    "mysql": [
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


def present_sql(conn, table_column):
    table, column = table_column
    return f"SELECT {column} FROM {table} WHERE {column} BETWEEN {conn.placeholder(1)} AND {conn.placeholder(2)}"


# --- normalisation: ASCII only, as in src/normalise.rs -----------------------

ASCII_WHITESPACE = " \t\n\f\r"  # Rust's char::is_ascii_whitespace
ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def lower_ascii(text):
    # A-Z only: str.lower() also maps non-ASCII letters, so it is used only on ASCII text
    # (isascii() is a flag check), where it is the same and ~50x faster than translate().
    return text.lower() if text.isascii() else text.translate(ASCII_LOWER)


def normalise_email(email):
    if email is None:
        return None
    trimmed = email.strip(ASCII_WHITESPACE)
    return lower_ascii(trimmed) if trimmed else None


def email_domain(email):
    _, at, domain = email.rpartition("@")
    return domain if at and domain else None


def password_kind(encrypted, salt):
    if not encrypted:
        return "none"
    if salt:
        return "legacy-sha"
    return "bcrypt" if encrypted.startswith(("$2a$", "$2b$", "$2y$")) else "unknown"


def timestamp(target, value):
    """Into SQLite as read; elsewhere SQLite's text and a timestamptz become a zone-less timestamp."""
    if target == "sqlite":
        return value
    if isinstance(value, str):
        return Raw("timestamp", value.replace(" ", "T", 1))
    if isinstance(value, datetime.datetime) and value.tzinfo is not None:
        return value.replace(tzinfo=None)
    return value


def account(target, user):
    """The accounts row of a users row, whether normalising changed its email, whether it has none."""
    email = user["email"]
    normalised = normalise_email(email)
    row = [
        user["id"],
        user["name"],
        normalised,
        email_domain(normalised) if normalised is not None else None,
        password_kind(user["encrypted_password"], user["password_salt"]),
        user["sign_in_count"] or 0,
        user["unlock_token"] is not None or user["locked_at"] is not None,
        timestamp(target, user["created_at"]),
        timestamp(target, user["last_sign_in_at"]),
    ]
    return row, email is not None and normalised != email, normalised is None


def identity(user):
    provider = lower_ascii(user["provider"].strip(ASCII_WHITESPACE))
    return [provider, user["uid"], user["id"], normalise_email(user["neopass_email"])]


def batches(cursor, what):
    """The cursor's batches, a failed fetch explained by `what`."""
    while True:
        with context(what):
            batch = next(cursor, None)
        if batch is None:
            return
        yield batch


# --- the plugin ------------------------------------------------------------------


class AccountsMerge(migrun.Plugin):
    name = "accounts-merge"
    version = "0.1.0"
    description = "Merges openneo_id's users into normalised accounts and provider identities"
    connections = [
        read_only("source", "the openneo_id database, holding Devise's users table"),
        read_write("target", "the database receiving accounts and identities", writes=[ACCOUNTS, IDENTITIES]),
    ]
    batch_size = Config.str("500", "rows fetched and inserted per batch")

    def __init__(self):
        text = self.batch_size
        if not (text and len(text) <= 6 and all("0" <= c <= "9" for c in text) and 1 <= int(text) <= MAX_BATCH):
            raise migrun.Failed(f"config key `batch_size` must be a whole number from 1 to {MAX_BATCH}, got `{text}`")
        self.batch = int(text)

    @unit(UNIT_CREATE, "creates accounts and identities when absent")
    def create_tables(self):
        target = connect("target")
        for table, sql in zip([ACCOUNTS, IDENTITIES], CREATE_TABLES[target.dialect]):
            with context(f"creating {table}"):
                target.execute(sql)
        log.info(f"{ACCOUNTS} and {IDENTITIES} exist", dialect=target.dialect)

    def copy(self, unit, count, select, present, what, table, label, columns, convert):
        """The shape both copying units share: cursor, lookup of present ids, bulk insert, progress."""
        source, target = connect("source"), connect("target")
        total = source.query_scalar(count)
        lookup = present_sql(target, present)
        done = copied = skipped = 0
        progress(unit, 0, total)
        for batch in batches(source.cursor(select, batch=self.batch), what):
            first, last = batch[0]["id"], batch[-1]["id"]
            ids = {r[0] for r in target.query(lookup, [first, last])}
            done += len(batch)
            rows = []
            for user in batch:
                if user["id"] in ids:
                    skipped += 1
                else:
                    rows.append(convert(target.dialect, user))
            with context(f"inserting {label} {first} to {last}"):
                copied += target.bulk_insert(table, rows, columns=columns)
            progress(unit, done, total)
        return copied, skipped

    @unit(UNIT_ACCOUNTS, "copies every user into accounts in id order, email normalised, skipping ids already present")
    def copy_accounts(self):
        stats = {"normalised": 0, "without_email": 0}

        def convert(dialect, user):
            row, changed, no_email = account(dialect, user)
            stats["normalised"] += changed
            stats["without_email"] += no_email
            return row

        copied, skipped = self.copy(UNIT_ACCOUNTS, COUNT_USERS, SELECT_USERS, (ACCOUNTS, "id"), "reading users", ACCOUNTS, ACCOUNTS, ACCOUNT_COLUMNS, convert)
        normalised, without_email = stats["normalised"], stats["without_email"]
        log.info(
            f"copied {copied} users into {ACCOUNTS}; {skipped} were already present, "
            f"{normalised} emails were normalised, {without_email} have no email",
            copied=copied, skipped=skipped, normalised=normalised, without_email=without_email,
        )

    @unit(UNIT_IDENTITIES, "copies each provider identity into identities, skipping accounts already split")
    def split_identities(self):
        stats = {"without_email": 0}

        def convert(_dialect, user):
            row = identity(user)
            stats["without_email"] += row[3] is None
            return row

        copied, skipped = self.copy(
            UNIT_IDENTITIES, COUNT_PROVIDERS, SELECT_PROVIDERS, (IDENTITIES, "account_id"),
            "reading users with a provider", IDENTITIES, "identities of accounts", IDENTITY_COLUMNS, convert,
        )
        without_email = stats["without_email"]
        log.info(
            f"split {copied} identities into {IDENTITIES}; {skipped} were already present, {without_email} have no email",
            copied=copied, skipped=skipped, without_email=without_email,
        )

    def verify(self):
        source, target = connect("source"), connect("target")
        users, accounts = source.query_scalar(COUNT_USERS), target.query_scalar(COUNT_ACCOUNTS)
        check("accounts match users", users == accounts, f"users: {users}, accounts: {accounts}")
        with_provider, identities = source.query_scalar(COUNT_PROVIDERS), target.query_scalar(COUNT_IDENTITIES)
        check(
            "identities match users with a provider",
            with_provider == identities,
            f"users with a provider: {with_provider}, identities: {identities}",
        )
        # Checked with the very function that normalised them (SQL's LOWER differs between dialects).
        checked = wrong = 0
        first_wrong = None
        for row in target.cursor(SELECT_EMAILS, batch=self.batch).rows():
            checked += 1
            if normalise_email(row["email"]) != row["email"]:
                wrong += 1
                first_wrong = row["id"] if first_wrong is None else first_wrong
        if first_wrong is None:
            detail = f"{checked} emails are trimmed and lower-case"
        else:
            detail = f"{wrong} of {checked} emails are not trimmed and lower-case; first: account {first_wrong}"
        check("emails are normalised", wrong == 0, detail)
        orphans = target.query_scalar(COUNT_ORPHANS)
        check("every identity has an account", orphans == 0, f"{orphans} identities without an account")


Plugin = migrun.export(AccountsMerge)
