"""customers-copy: PostgreSQL `customers` -> SQLite `customers`, emails lower-cased,
country names mapped to ISO 3166 codes.

The copy helper pages the source by id (one keyset query per batch, no open cursor),
writes each batch with one bulk insert and commits it with a checkpoint: a run that
dies half-way resumes after its last batch. A country the map does not know is logged
with the customer's id and copied as NULL. `verify` compares the counts.
"""

import migrun_sdk as migrun
from migrun_sdk import Config, check, connect, copy, log, read_only, read_write, unit

COUNTRIES = {
    "germany": "DE", "france": "FR", "spain": "ES", "italy": "IT", "netherlands": "NL",
    "united kingdom": "GB", "great britain": "GB", "ireland": "IE", "portugal": "PT",
    "united states": "US", "usa": "US", "canada": "CA", "mexico": "MX", "brazil": "BR",
    "argentina": "AR", "japan": "JP", "china": "CN", "india": "IN", "australia": "AU",
    "new zealand": "NZ", "south africa": "ZA", "sweden": "SE", "norway": "NO", "poland": "PL",
}


class CustomersCopy(migrun.Plugin):
    name = "customers-copy"
    version = "0.1.0"
    description = "Copies customers from PostgreSQL into SQLite with clean emails and ISO country codes"
    connections = [
        read_only("source", "the PostgreSQL database holding customers"),
        read_write("target", "the SQLite database receiving customers", writes=["customers"]),
    ]
    batch_size = Config.int(1000, "customers per batch (and per checkpoint)", min=1)
    fail_after = Config.int(0, "fail after this many batches (0: never), to rehearse a crash", min=0)

    @unit("create-table", "creates the target's customers table when absent")
    def create_table(self):
        connect("target").execute(
            "CREATE TABLE IF NOT EXISTS customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT, country_code TEXT)"
        )

    @unit("copy", "copies every customer in id order, email lower-cased, country as its ISO code")
    def copy_customers(self):
        def clean(row):
            country = (row["country"] or "").strip()
            code = COUNTRIES.get(country.lower())
            if code is None and country:
                log.warn("unknown country copied as NULL", id=row["id"], country=country)
            email = row["email"].strip().lower() if row["email"] else None
            return {"id": row["id"], "name": row["name"], "email": email, "country_code": code}

        copy(
            connect("source"), connect("target"),
            select="SELECT id, name, email, country FROM customers", key="id",
            into="customers", map=clean, batch=self.batch_size, fail_after=self.fail_after or None,
        )

    def verify(self):
        source = connect("source").query_scalar("SELECT COUNT(*) FROM customers")
        target = connect("target").query_scalar("SELECT COUNT(*) FROM customers")
        check("every customer copied", source == target, f"source: {source}, target: {target}")


Plugin = migrun.export(CustomersCopy)
