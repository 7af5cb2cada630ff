//! A text price becomes integer cents: `orders.price` (`12.30`, `$1,234.50`, ` 7.5 `)
//! fills `orders.amount_cents`. A `Backfill` walks `orders` in key order, reads `price`
//! with each batch's keys, converts in the plugin and writes the batch back with one
//! `bulk_update`; each batch commits with its checkpoint, so an interrupted run resumes
//! after the last one. A price that does not parse is logged with its key and stays NULL.

use migrun_sdk::{
    Backfill, Config, ConfigKey, Connection, Need, Plugin, PluginInfo, Result, Steps, Unit, check,
    params, warn,
};

struct PriceCents {
    batch_size: u32,
}

impl Plugin for PriceCents {
    fn describe() -> PluginInfo {
        PluginInfo::new("price-cents", env!("CARGO_PKG_VERSION"))
            .description("orders.price (text) -> orders.amount_cents (integer cents)")
            .connection(Need::read_write("target", "holds orders").writes(["orders"]))
            .config_key(ConfigKey::new("batch_size", "rows per batch").default("500"))
    }

    fn configure(config: &Config) -> Result<Self> {
        Ok(PriceCents {
            batch_size: config.positive("batch_size")?,
        })
    }

    fn steps() -> Steps<Self> {
        Steps::new().step(Unit::new("convert", "price -> amount_cents"), Self::convert)
    }

    /// Every row holds its price's cents, or NULL where the price does not parse.
    fn verify(&mut self) -> Result<()> {
        let db = Connection::open("target")?;
        let sql = "SELECT id, price, amount_cents FROM orders ORDER BY id";
        let rows: Vec<(i64, Option<String>, Option<i64>)> = db.query_as(sql, params![])?;
        let wrong: Vec<i64> = rows
            .iter()
            .filter(|(_, price, cents)| price.as_deref().and_then(to_cents) != *cents)
            .map(|(id, _, _)| *id)
            .collect();
        let detail = format!("{} rows, {} differ {wrong:?}", rows.len(), wrong.len());
        check(
            "amount_cents is the price in cents",
            wrong.is_empty(),
            &detail,
        );
        Ok(())
    }
}

impl PriceCents {
    fn convert(&mut self) -> Result<()> {
        let db = Connection::open("target")?;
        Backfill::new(&db, "orders")
            .columns(["price"])
            .batch_size(self.batch_size)
            .run(|batch| {
                let mut cents = Vec::new();
                for row in batch.rows() {
                    let (id, price): (i64, Option<String>) = row.deserialize()?;
                    let Some(price) = price else { continue };
                    match to_cents(&price) {
                        Some(c) => cents.push(params![id, c]),
                        None => warn!(id = id, price = price; "unparseable price; amount_cents stays NULL"),
                    }
                }
                db.bulk_update("orders", &["id"], &["amount_cents"], cents)?;
                Ok(())
            })?;
        Ok(())
    }
}

/// `12.30`, `$1,234.50`, ` 7.5 `, `12` → cents; anything else (`n/a`, `1,23`, `12.345`) → None.
fn to_cents(text: &str) -> Option<i64> {
    let text = text.trim();
    let text = text.strip_prefix('$').unwrap_or(text);
    let (whole, fraction) = text.split_once('.').unwrap_or((text, "00"));
    let groups: Vec<&str> = whole.split(',').collect();
    let grouped = groups.len() == 1
        || ((1..=3).contains(&groups[0].len()) && groups[1..].iter().all(|g| g.len() == 3));
    let whole = groups.concat();
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !grouped || !digits(&whole) || !digits(fraction) || fraction.len() > 2 {
        return None;
    }
    let fraction: i64 = format!("{fraction:0<2}").parse().ok()?;
    let whole: i64 = whole.parse().ok()?;
    whole.checked_mul(100)?.checked_add(fraction)
}

migrun_sdk::export_plugin!(PriceCents);
