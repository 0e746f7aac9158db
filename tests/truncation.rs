//! A mapped database truncated or rewritten in place under its readers (a misuse: databases are
//! replaced by rename) must never kill the process: lookups answer or fail, nothing crashes.

use std::fs::OpenOptions;
use std::io::Write;

use matchy::{DataValue, Database, DatabaseBuilder};

fn build(path: &std::path::Path, n: u32) {
    let mut b = DatabaseBuilder::new();
    for i in 0..n {
        b.add(
            &format!("host{i}.example.com"),
            DataValue::Map(vec![("i".into(), DataValue::Uint32(i))]),
        )
        .unwrap();
        b.add(
            &format!("10.{}.{}.0/24", i / 256 % 256, i % 256),
            DataValue::Uint32(i),
        )
        .unwrap();
    }
    b.write_to(path).unwrap();
}

fn probe(db: &Database, n: u32) -> (usize, usize) {
    let (mut ok, mut err) = (0, 0);
    for i in 0..n {
        for q in [
            format!("host{i}.example.com"),
            format!("10.{}.{}.9", i / 256 % 256, i % 256),
        ] {
            match db.lookup(&q) {
                Ok(ms) => {
                    ok += 1;
                    for m in &ms {
                        let _ = m.value().to_json();
                    }
                }
                Err(_) => err += 1,
            }
        }
    }
    (ok, err)
}

#[test]
fn truncating_a_mapped_file_does_not_crash() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.mxy");
    build(&path, 3000);
    let db = Database::from(&path).open().unwrap();
    assert_eq!(probe(&db, 3000).1, 0);
    // Truncate in place to a fraction: pages past the new end now fault with SIGBUS.
    let len = std::fs::metadata(&path).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(len / 8)
        .unwrap();
    let (_ok, err) = probe(&db, 3000);
    assert!(
        err > 0,
        "lookups past the truncation point must fail, not answer from zeros"
    );
    // Once poisoned, the snapshot refuses every lookup, and says why.
    let refused = db.lookup("host1.example.com").unwrap_err().to_string();
    assert!(refused.contains("modified in place"), "{refused}");
    // Truncating to nothing, and rewriting the start with garbage: still no crash.
    OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(0)
        .unwrap();
    probe(&db, 100);
    let mut f = OpenOptions::new().write(true).open(&path).unwrap();
    f.write_all(&[0xAB; 4096]).unwrap();
    probe(&db, 100);
}

#[test]
fn in_memory_databases_ignore_truncation() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.mxy");
    build(&path, 500);
    let db = Database::from(&path).in_memory(true).open().unwrap();
    OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(0)
        .unwrap();
    let (ok, err) = probe(&db, 500);
    assert_eq!((ok, err), (1000, 0));
    assert_eq!(
        db.lookup("host7.example.com")
            .unwrap()
            .first()
            .unwrap()
            .value()
            .get(&["i"])
            .unwrap()
            .unwrap()
            .as_u64()
            .unwrap(),
        7
    );
}
