//! Files matchy builds are MaxMind DB files: the `maxminddb` crate and libmaxminddb's
//! `mmdblookup` give the same answers for their IP entries as matchy does.

use std::net::IpAddr;
use std::process::Command;

use matchy::{DataValue, Database, DatabaseBuilder};

fn networks() -> Vec<(String, u32)> {
    let mut nets = vec![
        ("10.0.0.0/8".to_string(), 1),
        ("10.1.0.0/16".to_string(), 2),
        ("10.1.2.0/24".to_string(), 3),
        ("192.0.2.1/32".to_string(), 4),
        ("2001:db8::/32".to_string(), 5),
        ("2001:db8:1::/48".to_string(), 6),
    ];
    for i in 0..300u32 {
        let a = i.wrapping_mul(2_654_435_761) | 0x8000_0000;
        nets.push((
            format!("{}/{}", std::net::Ipv4Addr::from(a), 16 + i % 17),
            100 + i,
        ));
    }
    nets
}

fn build(with_v6: bool, record_size: Option<u16>, path: &std::path::Path) -> Database {
    let mut b = DatabaseBuilder::new();
    b.on_duplicate(matchy::DuplicatePolicy::Last).build_epoch(0);
    if let Some(bits) = record_size {
        b.force_record_size(bits);
    }
    for (net, id) in networks() {
        if !with_v6 && net.contains(':') {
            continue;
        }
        b.add(
            &net,
            DataValue::Map(vec![
                ("id".into(), DataValue::Uint32(id)),
                ("name".into(), DataValue::String(format!("net-{id}"))),
                ("big".into(), DataValue::Uint64(u64::MAX - u64::from(id))),
            ]),
        )
        .unwrap();
    }
    b.add("evil.com", DataValue::Map(vec![])).unwrap();
    b.write_to(path).unwrap();
    Database::from(path).open().unwrap()
}

fn queries() -> Vec<IpAddr> {
    let mut qs: Vec<IpAddr> = [
        "10.1.2.3",
        "10.1.3.3",
        "10.9.9.9",
        "192.0.2.1",
        "192.0.2.2",
        "8.8.8.8",
        "2001:db8:1::1",
        "2001:db8:2::1",
        "::ffff:10.1.2.3",
        "::10.1.2.3",
    ]
    .iter()
    .map(|s| s.parse().unwrap())
    .collect();
    for i in 0..300u32 {
        qs.push(IpAddr::V4(
            (i.wrapping_mul(2_654_435_761) | 0x8000_0000 | (i & 0xff)).into(),
        ));
    }
    qs
}

#[test]
fn maxminddb_crate_agrees() {
    let dir = tempfile::tempdir().unwrap();
    for (v6, rs) in [
        (false, None),
        (true, None),
        (true, Some(28)),
        (true, Some(32)),
        (false, Some(28)),
    ] {
        let path = dir.path().join(format!("t-{v6}-{rs:?}.mxy"));
        let db = build(v6, rs, &path);
        let reader = maxminddb::Reader::open_readfile(&path).unwrap();
        assert_eq!(reader.metadata().ip_version, db.info().ip_version);
        for q in queries() {
            if !v6 && q.is_ipv6() {
                continue;
            }
            let ours = db.lookup_ip(q).unwrap();
            let theirs = reader.lookup(q).unwrap();
            assert_eq!(ours.is_some(), theirs.has_data(), "{q}");
            if let Some(m) = ours {
                let v: serde_json::Value = theirs.decode().unwrap().unwrap();
                let mine: serde_json::Value =
                    serde_json::from_str(&m.value().to_json().unwrap()).unwrap();
                assert_eq!(mine, v, "{q}");
            }
        }
    }
}

#[test]
fn mmdblookup_agrees() {
    let have = Command::new("mmdblookup").arg("--version").output().is_ok();
    if !have {
        assert!(
            std::env::var_os("MATCHY_REQUIRE_MMDBLOOKUP").is_none(),
            "mmdblookup (Debian package mmdb-bin) is required but missing"
        );
        eprintln!("skipping: mmdblookup not installed (apt-get install mmdb-bin)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for v6 in [false, true] {
        let path = dir.path().join(format!("t{v6}.mxy"));
        let db = build(v6, None, &path);
        for q in queries().into_iter().take(60) {
            if !v6 && q.is_ipv6() {
                continue;
            }
            let out = Command::new("mmdblookup")
                .args([
                    "--file",
                    path.to_str().unwrap(),
                    "--ip",
                    &q.to_string(),
                    "name",
                ])
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            match db.lookup_ip(q).unwrap() {
                Some(m) => {
                    let name = m
                        .value()
                        .get(&["name"])
                        .unwrap()
                        .unwrap()
                        .as_str()
                        .unwrap()
                        .to_string();
                    assert!(
                        out.status.success(),
                        "{q}: {}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                    assert!(
                        text.contains(&format!("\"{name}\" <utf8_string>")),
                        "{q}: {text}"
                    );
                }
                None => assert!(
                    !text.contains("<utf8_string>"),
                    "{q}: mmdblookup found {text} where matchy found nothing"
                ),
            }
        }
        // libmaxminddb's own verifier accepts the file.
        if Command::new("mmdbverify").arg("--help").output().is_ok() {
            let out = Command::new("mmdbverify")
                .args(["-file", path.to_str().unwrap()])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}
