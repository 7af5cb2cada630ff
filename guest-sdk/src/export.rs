//! The glue behind [`export_plugin!`](crate::export_plugin): the generated
//! `Guest` trait implemented once, generically, for any [`Plugin`].

use std::any::Any;
use std::cell::RefCell;
use std::marker::PhantomData;

use crate::bindings::exports::migrun::plugin::plugin as wit;
use crate::wit::{access_to_wit, error_to_wit};
use crate::{Config, Error, Plugin, PluginInfo, Result, Unit};

thread_local! {
    /// The plugin built by `configure`, kept between calls. A component
    /// instance is single-threaded, so a thread-local is the whole instance.
    static INSTANCE: RefCell<Option<Box<dyn Any>>> = const { RefCell::new(None) };
}

/// Implements the generated `Guest` trait for `P`; named by `export_plugin!`.
#[doc(hidden)]
pub struct Export<P>(PhantomData<P>);

/// Runs one export call, closing the connections it opened when it returns.
fn call<T>(f: impl FnOnce() -> Result<T>) -> Result<T, wit::PluginError> {
    let result = f();
    crate::db::close_all();
    result.map_err(error_to_wit)
}

fn with_plugin<P: Plugin, T>(export: &str, f: impl FnOnce(&mut P) -> Result<T>) -> Result<T> {
    INSTANCE.with(|slot| {
        let mut slot = slot.borrow_mut();
        let plugin = slot
            .as_mut()
            .and_then(|p| p.downcast_mut::<P>())
            .ok_or_else(|| Error::Failed(format!("{export} was called before configure")))?;
        f(plugin)
    })
}

/// Milliseconds for the WIT, saturating at `u32::MAX` (49 days).
fn millis(d: std::time::Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}

fn unit_to_wit(u: Unit) -> wit::UnitInfo {
    wit::UnitInfo {
        name: u.name,
        description: u.description,
        scope: u.scope,
        transactional: u.transactional,
        lock_timeout_ms: u.lock_timeout.map(millis),
        statement_timeout_ms: u.statement_timeout.map(millis),
        always_run: u.always_run,
        skipped: u.skipped,
    }
}

fn info_to_wit(info: PluginInfo) -> wit::PluginInfo {
    wit::PluginInfo {
        name: info.name,
        version: info.version,
        description: info.description,
        connections: info
            .connections
            .into_iter()
            .map(|n| wit::ConnectionNeed {
                name: n.name,
                access: access_to_wit(n.access),
                description: n.description,
                writes: n.writes,
                optional: n.optional,
            })
            .collect(),
        units: info.units.into_iter().map(unit_to_wit).collect(),
        config: info
            .config
            .into_iter()
            .map(|k| wit::ConfigKey {
                name: k.name,
                description: k.description,
                required: k.required,
                default_value: k.default,
                secret: k.secret,
            })
            .collect(),
    }
}

impl<P: Plugin> wit::Guest for Export<P> {
    fn describe() -> wit::PluginInfo {
        let mut info = P::describe();
        info.units = crate::plugin::declared_units::<P>();
        info_to_wit(info)
    }

    fn configure(config: Vec<(String, String)>) -> Result<(), wit::PluginError> {
        call(|| {
            let config: Config = config.into_iter().collect();
            let plugin = P::configure(&config)?;
            INSTANCE.with(|slot| *slot.borrow_mut() = Some(Box::new(plugin)));
            Ok(())
        })
    }

    fn list_units() -> Result<Vec<wit::UnitInfo>, wit::PluginError> {
        call(|| {
            let units = with_plugin::<P, _>("list-units", |p| p.units())?;
            Ok(units.into_iter().map(unit_to_wit).collect())
        })
    }

    fn run_unit(unit: String) -> Result<(), wit::PluginError> {
        call(|| with_plugin::<P, _>("run-unit", |p| p.run_unit(&unit)))
    }

    fn verify() -> Result<(), wit::PluginError> {
        call(|| with_plugin::<P, _>("verify", |p| p.verify()))
    }
}

#[cfg(test)]
mod tests {
    use wit::Guest;

    use super::*;
    use crate::{ConfigKey, DbError, DbErrorKind, Need, bail};

    /// A plugin that touches no host import, so the glue runs natively.
    struct Counter {
        step: u32,
        runs: u32,
    }

    impl Plugin for Counter {
        fn describe() -> PluginInfo {
            PluginInfo::new("counter", "1.2.3")
                .description("counts")
                .connection(Need::read_only("source", "reads"))
                .connection(Need::read_write("target", "writes").writes(["t1", "t2"]))
                .unit("a", "first")
                .unit("b", "second")
                .config_key(ConfigKey::new("step", "how much").default("1"))
                .config_key(ConfigKey::new("token", "secret").required().secret())
        }

        fn configure(config: &Config) -> Result<Self> {
            Ok(Counter {
                step: config.parse("step")?,
                runs: 0,
            })
        }

        fn run_unit(&mut self, unit: &str) -> Result<()> {
            self.runs += self.step;
            match unit {
                "a" => Ok(()),
                "db" => Err(DbError::new(DbErrorKind::Constraint, "duplicate")
                    .with_code("23505")
                    .into()),
                other => bail!("unknown unit {other} after {} runs", self.runs),
            }
        }
    }

    type Glue = Export<Counter>;

    #[test]
    fn describe_maps_every_field() {
        let info = Glue::describe();
        assert_eq!(
            (
                info.name.as_str(),
                info.version.as_str(),
                info.description.as_str()
            ),
            ("counter", "1.2.3", "counts")
        );
        assert_eq!(info.connections.len(), 2);
        assert!(matches!(
            info.connections[0].access,
            crate::bindings::migrun::plugin::database::Access::ReadOnly
        ));
        assert_eq!(info.connections[1].writes, ["t1", "t2"]);
        assert_eq!(
            info.units
                .iter()
                .map(|u| u.name.as_str())
                .collect::<Vec<_>>(),
            ["a", "b"]
        );
        assert_eq!(info.config[0].default_value.as_deref(), Some("1"));
        assert!(info.config[1].required && info.config[1].secret && !info.config[0].secret);
    }

    #[test]
    fn calls_keep_state_and_map_errors() {
        // Before configure, calls fail cleanly instead of panicking.
        INSTANCE.with(|slot| *slot.borrow_mut() = None);
        assert!(
            matches!(Glue::run_unit("a".into()), Err(wit::PluginError::Failed(m)) if m.contains("before configure"))
        );

        let bad = Glue::configure(vec![("step".into(), "x".into())]);
        assert!(matches!(bad, Err(wit::PluginError::Failed(m)) if m.contains("config key `step`")));

        Glue::configure(vec![
            ("step".into(), "5".into()),
            ("token".into(), "s".into()),
        ])
        .unwrap();
        let units = Glue::list_units().unwrap();
        assert_eq!(units.len(), 2, "the default units are the described ones");
        Glue::run_unit("a".into()).unwrap();
        match Glue::run_unit("db".into()) {
            Err(wit::PluginError::Database(e)) => {
                assert!(matches!(
                    e.kind,
                    crate::bindings::migrun::plugin::types::DbErrorKind::Constraint
                ));
                assert_eq!(e.code.as_deref(), Some("23505"));
            }
            other => panic!("{other:?}"),
        }
        match Glue::run_unit("zzz".into()) {
            Err(wit::PluginError::Failed(m)) => {
                assert_eq!(m, "unknown unit zzz after 15 runs", "state persisted")
            }
            other => panic!("{other:?}"),
        }
        Glue::verify().unwrap();
    }

    /// A plugin declaring its units once, with [`Steps`](crate::Steps), and a scope.
    struct Stepped {
        ran: Vec<&'static str>,
    }

    impl Plugin for Stepped {
        fn describe() -> PluginInfo {
            PluginInfo::new("stepped", "1.0.0")
                .connection(Need::read_write("app", "the app").optional())
                .unit("listed", "declared the 0.1 way")
        }

        fn configure(_: &Config) -> Result<Self> {
            Ok(Stepped { ran: Vec::new() })
        }

        fn steps() -> crate::Steps<Self> {
            crate::Steps::new()
                .step(
                    Unit::new("expand", "adds the column")
                        .lock_timeout(std::time::Duration::from_secs(2)),
                    |p: &mut Self| {
                        p.ran.push("expand");
                        Ok(())
                    },
                )
                .step(
                    Unit::new("index", "builds the index")
                        .outside_transaction()
                        .statement_timeout(std::time::Duration::from_millis(1500))
                        .scope("own"),
                    |p: &mut Self| {
                        p.ran.push("index");
                        Ok(())
                    },
                )
                .step(Unit::new("refresh", "always").always_run(), |_| Ok(()))
                .step(
                    Unit::new("retired", "gone").skipped("engine retired"),
                    |_| Ok(()),
                )
        }

        fn scope(&self) -> Option<String> {
            Some("t.a->b".to_owned())
        }
    }

    #[test]
    fn units_declared_once_reach_describe_with_their_attributes_and_run_by_name() {
        let info = Export::<Stepped>::describe();
        let names: Vec<&str> = info.units.iter().map(|u| u.name.as_str()).collect();
        assert_eq!(names, ["listed", "expand", "index", "refresh", "retired"]);
        assert!(info.connections[0].optional);
        let expand = &info.units[1];
        assert!(expand.transactional && expand.lock_timeout_ms == Some(2000));
        let index = &info.units[2];
        assert!(!index.transactional);
        assert_eq!(index.statement_timeout_ms, Some(1500));
        assert!(info.units[3].always_run);
        assert_eq!(info.units[4].skipped.as_deref(), Some("engine retired"));

        let mut plugin = Stepped::configure(&Config::default()).unwrap();
        // The plugin-wide scope applies to units without their own.
        let units = plugin.units().unwrap();
        assert_eq!(units[1].scope_name(), Some("t.a->b"));
        assert_eq!(units[2].scope_name(), Some("own"));
        plugin.run_unit("index").unwrap();
        plugin.run_unit("expand").unwrap();
        assert_eq!(plugin.ran, ["index", "expand"]);
        let unknown = plugin.run_unit("nope").unwrap_err().to_string();
        assert!(
            unknown.contains("unknown unit `nope`") && unknown.contains("expand, index, refresh"),
            "{unknown}"
        );
    }
}
