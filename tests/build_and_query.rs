//! End to end: entries through `DatabaseBuilder` into a file, then `Database` answers every
//! kind of query like a naive oracle would.

use std::collections::BTreeMap;
use std::net::IpAddr;

use matchy::{DataValue, Database, DatabaseBuilder, DuplicatePolicy, EntryKind, MatchMode};
use proptest::prelude::*;

fn tag(i: usize) -> DataValue {
    DataValue::Map(vec![("id".into(), DataValue::Uint32(i as u32))])
}

fn id_of(m: &matchy::Match) -> u64 {
    m.value().get(&["id"]).unwrap().unwrap().as_u64().unwrap()
}

fn build(entries: &[&str], mode: MatchMode) -> Database {
    let mut b = DatabaseBuilder::new();
    b.match_mode(mode).build_epoch(0);
    for (i, e) in entries.iter().enumerate() {
        b.add(e, tag(i)).unwrap();
    }
    Database::from_bytes(b.build().unwrap()).unwrap()
}

fn answers(db: &Database, q: &str) -> Vec<(EntryKind, String, u64)> {
    db.lookup(q)
        .unwrap()
        .iter()
        .map(|m| (m.kind(), m.entry().into_owned(), id_of(m)))
        .collect()
}

#[test]
fn the_sample_feed_answers_each_kind() {
    let db = build(
        &[
            "10.0.0.0/8",
            "10.1.0.0/16",
            "2001:db8::/32",
            "evil.com",
            "*.evil.com",
            "*",
            "mal?ware[0-9].exe",
        ],
        MatchMode::CaseSensitive,
    );
    assert_eq!(
        answers(&db, "10.2.3.4"),
        vec![
            (EntryKind::Ip, "10.0.0.0/8".into(), 0),
            (EntryKind::Glob, "*".into(), 5)
        ]
    );
    assert_eq!(
        answers(&db, "10.1.2.3")[0],
        (EntryKind::Ip, "10.1.0.0/16".into(), 1)
    );
    // IPv4 entries of an IPv6 database are reachable as ::a.b.c.d and ::ffff:a.b.c.d.
    assert_eq!(
        answers(&db, "::ffff:10.1.2.3")[0],
        (EntryKind::Ip, "10.1.0.0/16".into(), 1)
    );
    assert_eq!(
        answers(&db, "::10.1.2.3")[0],
        (EntryKind::Ip, "10.1.0.0/16".into(), 1)
    );
    assert_eq!(
        answers(&db, "2001:db8:1::5")[0],
        (EntryKind::Ip, "2001:db8::/32".into(), 2)
    );
    assert_eq!(
        answers(&db, "evil.com"),
        vec![
            (EntryKind::Literal, "evil.com".into(), 3),
            (EntryKind::Glob, "*".into(), 5)
        ]
    );
    assert_eq!(
        answers(&db, "www.evil.com"),
        vec![
            (EntryKind::Glob, "*.evil.com".into(), 4),
            (EntryKind::Glob, "*".into(), 5)
        ]
    );
    // Globs come in insertion order: "*" was added before "mal?ware[0-9].exe".
    assert_eq!(
        answers(&db, "mal-ware7.exe"),
        vec![
            (EntryKind::Glob, "*".into(), 5),
            (EntryKind::Glob, "mal?ware[0-9].exe".into(), 6)
        ]
    );
    assert_eq!(
        answers(&db, "Evil.com"),
        vec![(EntryKind::Glob, "*".into(), 5)]
    );
}

/// Files without globs answer most string queries from the literal index alone (a shorter path);
/// IP text still goes to the tree as well, and both answers come in the usual order.
#[test]
fn databases_without_globs_answer_like_the_others() {
    let literals_only = build(
        &["evil.com", "literal:1.2.3.4", "literal:::1", "Mixed.Case"],
        MatchMode::CaseSensitive,
    );
    assert_eq!(
        answers(&literals_only, "evil.com"),
        vec![(EntryKind::Literal, "evil.com".into(), 0)]
    );
    assert_eq!(
        answers(&literals_only, "1.2.3.4"),
        vec![(EntryKind::Literal, "1.2.3.4".into(), 1)]
    );
    assert_eq!(
        answers(&literals_only, "::1"),
        vec![(EntryKind::Literal, "::1".into(), 2)]
    );
    assert!(answers(&literals_only, "mixed.case").is_empty());
    assert!(answers(&literals_only, "1.2.3.5").is_empty());
    assert!(answers(&literals_only, "").is_empty());

    let with_ips = build(
        &["1.2.3.0/24", "literal:1.2.3.4", "evil.com"],
        MatchMode::CaseInsensitive,
    );
    assert_eq!(
        answers(&with_ips, "1.2.3.4"),
        vec![
            (EntryKind::Ip, "1.2.3.0/24".into(), 0),
            (EntryKind::Literal, "1.2.3.4".into(), 1)
        ]
    );
    assert_eq!(
        answers(&with_ips, "EVIL.com"),
        vec![(EntryKind::Literal, "evil.com".into(), 2)]
    );
    // The one match holds the database version it came from, like any other.
    let m = with_ips
        .lookup("evil.com")
        .unwrap()
        .into_iter()
        .next()
        .unwrap();
    drop(with_ips);
    assert_eq!(id_of(&m), 2);
}

#[test]
fn ipv4_only_database_rejects_ipv6_queries() {
    let db = build(&["1.2.3.0/24"], MatchMode::CaseSensitive);
    assert_eq!(db.info().ip_version, 4);
    assert!(db.lookup_ip("2001:db8::1".parse().unwrap()).is_err());
    assert!(db.lookup("2001:db8::1").unwrap().is_empty());
    assert_eq!(answers(&db, "::ffff:1.2.3.4")[0].1, "1.2.3.0/24");
}

#[test]
fn case_insensitive_databases_fold_ascii_only() {
    let db = build(
        &["Evil.COM", "*.Bad.ORG", "ÉCOLE.fr"],
        MatchMode::CaseInsensitive,
    );
    assert_eq!(
        answers(&db, "eVIL.com"),
        vec![(EntryKind::Literal, "Evil.COM".into(), 0)]
    );
    assert_eq!(
        answers(&db, "X.BAD.org"),
        vec![(EntryKind::Glob, "*.Bad.ORG".into(), 1)]
    );
    // Only ASCII folds: "é" is not "É".
    assert_eq!(answers(&db, "écOLE.fr"), vec![]);
    assert_eq!(
        answers(&db, "École.FR"),
        vec![(EntryKind::Literal, "ÉCOLE.fr".into(), 2)]
    );
    assert_eq!(db.info().match_mode, MatchMode::CaseInsensitive);
}

#[test]
fn duplicates_follow_the_policy() {
    let mut b = DatabaseBuilder::new();
    b.add_at("evil.com", tag(0), 2).unwrap();
    b.add_at("1.2.3.0/24", tag(1), 3).unwrap();
    b.add_at("evil.com", tag(2), 7).unwrap();
    let err = b.build().unwrap_err().to_string();
    assert!(err.contains("lines 2 and 7"), "{err}");

    for (policy, want) in [(DuplicatePolicy::First, 0), (DuplicatePolicy::Last, 2)] {
        let mut b = DatabaseBuilder::new();
        b.on_duplicate(policy);
        b.add("evil.com", tag(0)).unwrap();
        b.add("1.2.3.4/24", tag(1)).unwrap();
        b.add("evil.com", tag(2)).unwrap();
        b.add("1.2.3.0/24", tag(3)).unwrap();
        let db = Database::from_bytes(b.build().unwrap()).unwrap();
        assert_eq!(answers(&db, "evil.com")[0].2, want);
        assert_eq!(answers(&db, "1.2.3.9")[0].2, if want == 0 { 1 } else { 3 });
        assert_eq!(db.info().literal_count, Some(1));
        assert_eq!(db.info().ip_count, Some(1));
    }
}

#[test]
fn same_input_gives_identical_bytes() {
    let make = || {
        let mut b = DatabaseBuilder::new();
        b.build_epoch(1_700_000_000);
        for i in 0..500 {
            b.add(&format!("host{i}.example.com"), tag(i % 7)).unwrap();
            b.add(&format!("*.zone{i}.example"), tag(i % 5)).unwrap();
            b.add(&format!("10.{}.{}.0/24", i / 256, i % 256), tag(i % 3))
                .unwrap();
        }
        b.build().unwrap()
    };
    assert_eq!(make(), make());
}

#[test]
fn equal_data_is_stored_once() {
    let mut one = DatabaseBuilder::new();
    one.add("a.com", tag(1)).unwrap();
    let small = one.build().unwrap().len();
    let mut many = DatabaseBuilder::new();
    for i in 0..1000 {
        many.add(&format!("host{i}.com"), tag(1)).unwrap();
    }
    let db = Database::from_bytes(many.build().unwrap()).unwrap();
    assert!(
        db.info().data_section_size <= 16,
        "{small} {}",
        db.info().data_section_size
    );
}

#[test]
fn serde_and_path_access_on_results() {
    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct Threat<'a> {
        category: &'a str,
        score: f64,
        tags: Vec<&'a str>,
    }
    let mut b = DatabaseBuilder::new();
    b.add(
        "*.evil.com",
        DataValue::Map(vec![
            ("category".into(), DataValue::String("phishing".into())),
            ("score".into(), DataValue::Double(0.5)),
            (
                "tags".into(),
                DataValue::Array(vec![DataValue::String("a".into())]),
            ),
        ]),
    )
    .unwrap();
    let db = Database::from_bytes(b.build().unwrap()).unwrap();
    let ms = db.lookup("x.evil.com").unwrap();
    let t: Threat<'_> = ms.first().unwrap().value().deserialize().unwrap();
    assert_eq!(
        t,
        Threat {
            category: "phishing",
            score: 0.5,
            tags: vec!["a"]
        }
    );
    assert_eq!(
        ms.first().unwrap().value().to_json().unwrap(),
        r#"{"category":"phishing","score":0.5,"tags":["a"]}"#
    );
}

/// Naive longest-prefix oracle: everything in one 128-bit space, IPv4 at ::a.b.c.d.
fn oracle_ip(nets: &[(IpAddr, u8, usize)], q: IpAddr) -> Option<(String, usize)> {
    let wide = |ip: IpAddr, len: u8| match ip {
        IpAddr::V4(a) => (u128::from(u32::from(a)), u32::from(len) + 96),
        IpAddr::V6(a) => (u128::from(a), u32::from(len)),
    };
    let (qbits, _) = wide(q, 0);
    nets.iter()
        .map(|&(a, len, id)| (wide(a, len), a, len, id))
        .filter(|&((bits, wlen), ..)| wlen == 0 || (bits ^ qbits) >> (128 - wlen) == 0)
        .max_by_key(|&((_, wlen), ..)| wlen)
        .map(|(_, a, len, id)| (format!("{a}/{len}"), id))
}

fn glob_oracle(p: &[char], t: &[char]) -> bool {
    match p.first() {
        None => t.is_empty(),
        Some('*') => (0..=t.len()).any(|i| glob_oracle(&p[1..], &t[i..])),
        Some('?') => !t.is_empty() && glob_oracle(&p[1..], &t[1..]),
        Some(c) => t.first() == Some(c) && glob_oracle(&p[1..], &t[1..]),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn ip_answers_match_a_naive_oracle(
        nets in prop::collection::vec((any::<u32>(), 0u8..=32, any::<bool>(), any::<u128>(), 0u8..=128), 1..40),
        queries in prop::collection::vec(any::<u32>(), 1..40),
    ) {
        let mut uniq = BTreeMap::new();
        for (i, (v4, l4, is6, v6, l6)) in nets.iter().enumerate() {
            let (addr, len): (IpAddr, u8) = if *is6 {
                // Keep IPv6 entries out of the IPv4 regions so the oracle stays simple.
                let a = (v6 | (1u128 << 127)) & (u128::MAX << (128 - u32::from((*l6).max(1))));
                (IpAddr::V6(a.into()), (*l6).max(1))
            } else {
                let a = if *l4 == 0 { 0 } else { v4 & (u32::MAX << (32 - u32::from(*l4))) };
                (IpAddr::V4(a.into()), *l4)
            };
            uniq.entry((addr, len)).or_insert(i);
        }
        let nets: Vec<(IpAddr, u8, usize)> = uniq.into_iter().map(|((a, l), i)| (a, l, i)).collect();
        let mut b = DatabaseBuilder::new();
        for (a, l, i) in &nets {
            b.add(&format!("{a}/{l}"), tag(*i)).unwrap();
        }
        let db = Database::from_bytes(b.build().unwrap()).unwrap();
        let mut qs: Vec<IpAddr> = queries.iter().map(|&q| IpAddr::V4(q.into())).collect();
        qs.extend(nets.iter().map(|(a, _, _)| *a));
        // Twice: first by walking the tree, then through the IPv4 index that a thousand IPv4
        // lookups get built.
        for pass in 0..2 {
            for &q in &qs {
                let got = db.lookup_ip(q).unwrap().map(|m| (m.entry().into_owned(), id_of(&m) as usize));
                prop_assert_eq!(got, oracle_ip(&nets, q), "query {} pass {}", q, pass);
            }
            for i in 0..1000u32 {
                db.lookup_ip(IpAddr::V4(i.into())).unwrap();
            }
        }
    }

    #[test]
    fn string_answers_match_a_naive_oracle(
        literals in prop::collection::vec("[abAB.]{1,6}", 0..30),
        globs in prop::collection::vec("[ab.*?]{1,6}", 0..30),
        queries in prop::collection::vec("[abAB.]{0,8}", 1..30),
        fold in any::<bool>(),
    ) {
        let norm = |s: &str| if fold { s.to_ascii_lowercase() } else { s.to_string() };
        let mut b = DatabaseBuilder::new();
        b.match_mode(if fold { MatchMode::CaseInsensitive } else { MatchMode::CaseSensitive });
        b.on_duplicate(DuplicatePolicy::First);
        let mut lits: Vec<(String, usize)> = Vec::new();
        let mut gl: Vec<(String, usize)> = Vec::new();
        let mut id = 0;
        for l in &literals {
            b.add(&format!("literal:{l}"), tag(id)).unwrap();
            if !lits.iter().any(|(x, _)| norm(x) == norm(l)) { lits.push((l.clone(), id)); }
            id += 1;
        }
        for g in &globs {
            b.add(&format!("glob:{g}"), tag(id)).unwrap();
            if !gl.iter().any(|(x, _)| norm(x) == norm(g)) { gl.push((g.clone(), id)); }
            id += 1;
        }
        let db = Database::from_bytes(b.build().unwrap()).unwrap();
        let mut qs = queries.clone();
        qs.extend(literals.iter().cloned());
        let qs_all = qs.clone();
        for q in qs {
            let mut want: Vec<(EntryKind, String, u64)> = Vec::new();
            if let Some((l, i)) = lits.iter().find(|(l, _)| norm(l) == norm(&q)) {
                want.push((EntryKind::Literal, l.clone(), *i as u64));
            }
            let qc: Vec<char> = norm(&q).chars().collect();
            for (g, i) in &gl {
                let gc: Vec<char> = norm(g).chars().collect();
                if glob_oracle(&gc, &qc) {
                    want.push((EntryKind::Glob, g.clone(), *i as u64));
                }
            }
            prop_assert_eq!(answers(&db, &q), want, "query {:?}", q);
        }
        // The batch API answers exactly like one lookup per query.
        let batch: Vec<&str> = qs_all.iter().map(|s| s.as_str()).collect();
        let got = db.lookup_batch(&batch).unwrap();
        for (q, ms) in batch.iter().zip(&got) {
            let one: Vec<_> = ms.iter().map(|m| (m.kind(), m.entry().into_owned(), id_of(m))).collect();
            prop_assert_eq!(one, answers(&db, q), "batch query {:?}", q);
        }
    }
}
