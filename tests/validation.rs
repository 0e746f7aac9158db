//! Validation promises: everything the builder writes passes strict validation; every flipped
//! byte and every truncation of such a file fails it; and no lookup on a damaged file panics.

use matchy::{DataValue, Database, DatabaseBuilder, DuplicatePolicy, MatchMode, ValidationLevel};
use proptest::prelude::*;

fn sample() -> Vec<u8> {
    let mut b = DatabaseBuilder::new();
    b.build_epoch(1).description("en", "validation sample");
    let data = |i: u32| {
        DataValue::Map(vec![
            ("category".into(), DataValue::String(format!("c{}", i % 3))),
            ("score".into(), DataValue::Double(f64::from(i) / 7.0)),
            (
                "tags".into(),
                DataValue::Array(vec![
                    DataValue::Uint16(i as u16),
                    DataValue::Bool(i % 2 == 0),
                ]),
            ),
        ])
    };
    for (i, e) in [
        "10.0.0.0/8",
        "10.1.0.0/16",
        "2001:db8::/32",
        "evil.com",
        "a@b.c",
        "*.evil.com",
        "x?z",
        "h[0-9]*",
    ]
    .iter()
    .enumerate()
    {
        b.add(e, data(i as u32)).unwrap();
    }
    b.build().unwrap()
}

fn probe_everything(db: &Database) {
    for q in [
        "10.1.2.3",
        "10.2.3.4",
        "2001:db8::1",
        "evil.com",
        "www.evil.com",
        "xyz",
        "h1",
        "a@b.c",
        "zzz",
    ] {
        if let Ok(ms) = db.lookup(q) {
            for m in &ms {
                let _ = m.entry();
                let _ = m.value().to_json();
            }
        }
    }
}

#[test]
fn built_file_passes_strict_validation() {
    let db = Database::from_bytes(sample()).unwrap();
    let r = db.validate(ValidationLevel::Strict);
    assert!(r.is_ok(), "{:?}", r.errors);
    assert!(r.nodes_checked > 0 && r.values_checked >= 8 && r.index_entries_checked >= 5);
}

#[test]
fn every_flipped_byte_is_caught_by_strict_validation() {
    let good = sample();
    for i in 0..good.len() {
        for flip in [0x01u8, 0x80, 0xFF] {
            let mut bad = good.clone();
            bad[i] ^= flip;
            match Database::from_bytes(bad) {
                Err(_) => {}
                Ok(db) => {
                    probe_everything(&db);
                    let r = db.validate(ValidationLevel::Strict);
                    assert!(
                        !r.is_ok(),
                        "flip {flip:#x} at byte {i} of {} went unnoticed",
                        good.len()
                    );
                }
            }
        }
    }
}

#[test]
fn every_truncation_is_caught() {
    let good = sample();
    for n in 0..good.len() {
        if let Ok(db) = Database::from_bytes(good[..n].to_vec()) {
            probe_everything(&db);
            assert!(
                !db.validate(ValidationLevel::Strict).is_ok(),
                "truncation to {n} bytes went unnoticed"
            );
        }
    }
}

#[test]
fn standard_validation_catches_damage_in_sections() {
    let good = sample();
    let db = Database::from_bytes(good.clone()).unwrap();
    assert!(db.validate(ValidationLevel::Standard).is_ok());
    for s in &db.info().sections {
        if s.length == 0 {
            continue;
        }
        let mut bad = good.clone();
        bad[(s.offset + s.length / 2) as usize] ^= 0x10;
        if let Ok(db) = Database::from_bytes(bad) {
            let r = db.validate(ValidationLevel::Standard);
            assert!(!r.is_ok(), "section {} damage missed", s.name);
            assert!(r.errors[0].offset.is_some());
        }
    }
}

#[test]
fn garbage_never_panics() {
    let mut x: u64 = 0x9E3779B97F4A7C15;
    for len in [0usize, 1, 13, 14, 15, 100, 1000, 5000] {
        for _ in 0..20 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            let mut with_marker = bytes.clone();
            with_marker.extend_from_slice(b"\xAB\xCD\xEFMaxMind.com");
            with_marker.extend_from_slice(&bytes[..len.min(64)]);
            for b in [bytes, with_marker] {
                if let Ok(db) = Database::from_bytes(b) {
                    probe_everything(&db);
                    let _ = db.validate(ValidationLevel::Strict);
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
    /// Zero false positives: whatever the builder accepts, strict validation accepts.
    #[test]
    fn no_false_positives(
        entries in prop::collection::vec("([0-9]{1,3}\\.){3}[0-9]{1,3}(/[0-9]{1,2})?|[a-z.*?\\[\\]0-9-]{1,12}|[0-9a-f:]{2,12}(/[0-9]{1,3})?", 0..60),
        fold in any::<bool>(),
        numbers in prop::collection::vec(any::<u64>(), 1..5),
    ) {
        let mut b = DatabaseBuilder::new();
        b.on_duplicate(DuplicatePolicy::Last);
        b.match_mode(if fold { MatchMode::CaseInsensitive } else { MatchMode::CaseSensitive });
        for (i, e) in entries.iter().enumerate() {
            let data = DataValue::Map(vec![
                ("n".into(), DataValue::Uint64(numbers[i % numbers.len()])),
                ("s".into(), DataValue::String(e.clone())),
            ]);
            // Malformed IP-like entries are refused; everything accepted must validate.
            if let Err(err) = b.add(e, data) {
                prop_assert!(err.to_string().contains("literal:"), "{}: {}", e, err);
            }
        }
        let db = Database::from_bytes(b.build().unwrap()).unwrap();
        let r = db.validate(ValidationLevel::Strict);
        prop_assert!(r.is_ok(), "{:?}", r.errors);
    }
}
