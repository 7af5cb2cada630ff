//! The compiled-component cache: a plugin compiled once is read back from
//! disk; an entry that is truncated, corrupted or empty is detected, never
//! executed, and replaced by a fresh compilation; `MIGRUN_CACHE_DIR=off`
//! writes nothing.

use std::path::{Path, PathBuf};

use migrun::run;
use migrun::runtime::cache::{CompileSource, ComponentCache};
use migrun::runtime::{LoadedPlugin, Runtime};

use crate::support::cli::Workspace;
use crate::support::plugins;

fn entries(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    found.sort();
    found
}

/// Loads the plugin through `cache` and checks it still describes itself.
async fn load(cache: &ComponentCache, bytes: &[u8]) -> CompileSource {
    let plugin = LoadedPlugin::load_with_cache(Runtime::shared(), bytes, Some(cache))
        .expect("the plugin loads");
    let inspection = run::inspect(&plugin)
        .await
        .expect("the plugin describes itself");
    assert_eq!(inspection.plugin.name, "auth-consolidation");
    plugin.compiled
}

#[tokio::test]
async fn compiled_plugin_is_reused_and_bad_entries_are_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let cache = ComponentCache::new(dir.path().join("components"), Runtime::shared().engine());
    let bytes = std::fs::read(plugins::plugin("auth-consolidation")).unwrap();

    assert_eq!(load(&cache, &bytes).await, CompileSource::Compiled);
    let stored = entries(cache.dir());
    assert_eq!(
        stored.len(),
        1,
        "one entry, no temporary file left: {stored:?}"
    );
    let entry = &stored[0];
    let name = entry.file_name().unwrap().to_str().unwrap();
    let sha256 = LoadedPlugin::load_with_cache(Runtime::shared(), &bytes, None)
        .unwrap()
        .sha256;
    assert!(
        name.starts_with(&sha256),
        "keyed by the plugin's sha256: {name}"
    );
    assert_eq!(load(&cache, &bytes).await, CompileSource::Cached);

    let good = std::fs::read(entry).unwrap();
    let mut flipped = good.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0xff;
    for (what, bad) in [
        ("truncated", good[..good.len() / 2].to_vec()),
        ("one byte flipped", flipped),
        ("empty", Vec::new()),
        ("not an artifact", b"hello".repeat(20)),
    ] {
        std::fs::write(entry, &bad).unwrap();
        assert_eq!(
            load(&cache, &bytes).await,
            CompileSource::Replaced,
            "{what}"
        );
        assert_eq!(
            std::fs::read(entry).unwrap(),
            good,
            "{what}: the entry is rewritten"
        );
        assert_eq!(load(&cache, &bytes).await, CompileSource::Cached, "{what}");
    }
    assert_eq!(entries(cache.dir()).len(), 1);
}

#[test]
fn cli_fills_the_cache_named_by_the_environment_or_none() {
    let ws = Workspace::new();
    let plugin = plugins::plugin("auth-consolidation");
    let plugin = plugin.to_str().unwrap();
    let cache = ws.path().join("my-cache");
    let first = ws.migrun_with_cache(&["inspect", plugin], &cache);
    first.expect_code(0).expect_output("copy-users");
    assert_eq!(entries(&cache).len(), 1);
    let second = ws.migrun_with_cache(&["inspect", plugin], &cache);
    second.expect_code(0);
    assert_eq!(first.stdout, second.stdout);
    assert_eq!(entries(&cache).len(), 1);

    let off = ws.path().join("off");
    ws.migrun_with_cache(&["inspect", plugin], Path::new("off"))
        .expect_code(0)
        .expect_output("copy-users");
    assert!(!off.exists(), "MIGRUN_CACHE_DIR=off writes no cache");
}
