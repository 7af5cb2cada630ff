//! A plugin built against `migrun:plugin@9.0.0`, a contract version no migrun
//! speaks. The host must refuse it before instantiation, naming both the
//! version it targets and the versions the host supports.
//!
//! The WIT is inline and minimal on purpose: what matters is the versioned
//! export name `migrun:plugin/plugin@9.0.0`, not the shape of the interface.

wit_bindgen::generate!({
    inline: r#"
        package migrun:plugin@9.0.0;

        /// A future shape of the plugin interface.
        interface plugin {
            /// Describes the plugin.
            describe: func() -> string;
        }

        world migration {
            export plugin;
        }
    "#,
    world: "migration",
});

struct Future;

impl exports::migrun::plugin::plugin::Guest for Future {
    fn describe() -> String {
        "from the future".to_owned()
    }
}

export!(Future);
