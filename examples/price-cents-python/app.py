"""price-cents: orders.price (text, as a shop once stored it) -> orders.amount_cents (integer).

A checkpointed backfill on connection `app`: batch by batch in id order, each batch's
cents written with one bulk update and committed with its checkpoint; an interrupted run
resumes after its last batch. A price that does not parse is logged with its order's id
and left NULL. `verify` re-reads every order and checks the cents against the price.
"""

import re

import migrun_sdk as migrun
from migrun_sdk import Backfill, Config, check, connect, log, read_write, unit


PRICE = re.compile(r"(-?)\$?(-?)([0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:\.([0-9]+))?")


def cents(price):
    """`$1,234.50` -> 123450, `12` -> 1200, `-3.105` -> -311 (half away from zero); None if not a price."""
    m = PRICE.fullmatch((price or "").strip())
    if m is None or (m[1] and m[2]):
        return None
    fraction = (m[4] or "") + "000"
    value = int(m[3].replace(",", "")) * 100 + int(fraction[:2]) + (fraction[2] >= "5")
    return None if value >= 2**63 else -value if m[1] or m[2] else value


class PriceCents(migrun.Plugin):
    name = "price-cents"
    version = "0.1.0"
    description = "Fills orders.amount_cents from the text price; unparseable prices stay NULL"
    connections = [read_write("app", "the shop database holding orders", writes=["orders"])]
    batch_size = Config.int(500, "orders per batch (and per checkpoint)", min=1)
    fail_after = Config.int(0, "fail after this many batches (0: never), to rehearse a crash", min=0)

    @unit("backfill", "converts orders.price into amount_cents, batch by batch")
    def backfill(self):
        db = connect("app")

        def convert(batch):
            rows = []
            for order in batch.rows:
                value = cents(order["price"])
                if value is not None:
                    rows.append({"id": order["id"], "amount_cents": value})
                elif order["price"] is not None:
                    log.warn("unparseable price left NULL", id=order["id"], price=order["price"])
            db.bulk_update("orders", rows, key="id")

        done = Backfill(db, "orders", columns=["price"], batch_size=self.batch_size, fail_after=self.fail_after or None).run(convert)
        log.info(f"walked {done.rows} orders in {done.batches} batches", rows=done.rows, batches=done.batches)

    def verify(self):
        converted = unparseable = wrong = 0
        for order in connect("app").cursor("SELECT id, price, amount_cents FROM orders ORDER BY id").rows():
            expected = cents(order["price"])
            converted += expected is not None
            unparseable += expected is None and order["price"] is not None
            wrong += order["amount_cents"] != expected
        check("amount_cents matches price", wrong == 0, f"{converted} converted, {unparseable} unparseable (NULL), {wrong} differ")


Plugin = migrun.export(PriceCents)
