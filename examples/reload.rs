//! Live reload in one screen: open a database with auto-reload, deploy a new version with an
//! atomic rename, and watch lookups switch over without a restart.
//!
//! Run: `cargo run --example reload`

use std::sync::mpsc;
use std::time::Duration;

use matchy::{DataValue, Database, DatabaseBuilder, ReloadKind};

fn build(path: &std::path::Path, version: u32) -> matchy::Result<()> {
    let mut b = DatabaseBuilder::new();
    let data = |category: &str| {
        DataValue::Map(vec![
            ("category".into(), DataValue::String(category.into())),
            ("feed_version".into(), DataValue::Uint32(version)),
        ])
    };
    b.add("*.evil.com", data("phishing"))?;
    b.add(
        "192.0.2.0/24",
        data(if version == 1 { "scanner" } else { "c2" }),
    )?;
    b.write_to(path)?; // temp file + fsync + rename: readers never see a partial file
    Ok(())
}

fn main() -> matchy::Result<()> {
    let dir = std::env::temp_dir().join(format!("matchy-reload-example-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| matchy::Error::io(&dir, e))?;
    let path = dir.join("threats.mxy");
    build(&path, 1)?;

    let (tx, rx) = mpsc::channel();
    let db = Database::from(&path)
        .auto_reload()
        .debounce(Duration::from_millis(50))
        .on_reload(move |ev| {
            // Runs on the watcher thread.
            println!(
                "reload event: {:?} generation {} in {:?}",
                ev.kind, ev.generation, ev.duration
            );
            let _ = tx.send(ev.kind);
        })
        .open()?;

    let show = |db: &Database| -> matchy::Result<()> {
        for m in db.lookup("192.0.2.7")? {
            println!("  {} {} -> {}", m.kind(), m.entry(), m.value().to_json()?);
        }
        Ok(())
    };
    println!("generation {}:", db.generation());
    show(&db)?;

    // Deploy version 2 the way a feed job would: build elsewhere, rename into place.
    build(&dir.join("threats.mxy.new"), 2)?;
    std::fs::rename(dir.join("threats.mxy.new"), &path).map_err(|e| matchy::Error::io(&path, e))?;

    match rx.recv_timeout(Duration::from_secs(10)) {
        Ok(ReloadKind::Reloaded) => {}
        other => println!("unexpected: {other:?}"),
    }
    println!("generation {}:", db.generation());
    show(&db)?;
    let stats = db.stats();
    println!(
        "reloads: {} ok, {} failed, watch mode {}",
        stats.successes, stats.failures, stats.watch_mode
    );
    drop(db);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
