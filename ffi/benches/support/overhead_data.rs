//! The database and the queries of the C-boundary overhead comparison, shared by the criterion
//! bench (`benches/overhead.rs`) and the instruction counts of `overhead_instructions`
//! (`tests/c_api.rs`), so that both measure the same file with the same queries.

use std::path::Path;

use engine::{DataValue, DatabaseBuilder};

/// The path read by the value cases: a string two maps deep, as in GeoIP data.
pub const PATH: [&str; 2] = ["country", "iso_code"];

/// The query kinds: IPv4 addresses inside the networks, literals that exist, domains under one
/// of the globs, and strings nothing matches.
pub const KINDS: [&str; 4] = ["ip", "literal", "glob", "miss"];

fn data(kind: &str, i: u32) -> DataValue {
    let s = |t: &str| DataValue::String(t.to_string());
    let code = format!(
        "{}{}",
        char::from(b'A' + (i % 26) as u8),
        char::from(b'A' + (i / 26 % 26) as u8)
    );
    DataValue::Map(vec![
        ("category".into(), s(kind)),
        (
            "country".into(),
            DataValue::Map(vec![
                ("geoname_id".into(), DataValue::Uint32(1_000_000 + i % 250)),
                ("iso_code".into(), s(&code)),
                (
                    "names".into(),
                    DataValue::Map(vec![("en".into(), s(&format!("Country {code}")))]),
                ),
            ]),
        ),
        ("version".into(), s("v1")),
    ])
}

/// 10,000 IPv4 /24 networks, 10,000 literals and 1,000 globs (`*.globN.test`), each with a
/// GeoIP-shaped map: `category`, `country` {`geoname_id`, `iso_code`, `names` {`en`}}, `version`.
pub fn write_database(path: &Path) {
    let mut b = DatabaseBuilder::new();
    for i in 0..10_000u32 {
        let net = format!("10.{}.{}.0/24", i / 256, i % 256);
        b.add(&net, data("ip", i)).unwrap();
        b.add(&format!("domain{i}.example"), data("literal", i))
            .unwrap();
    }
    for i in 0..1000u32 {
        b.add(&format!("*.glob{i}.test"), data("glob", i)).unwrap();
    }
    b.write_to(path).unwrap();
}

/// 4096 queries of one of [`KINDS`], spread over the file.
pub fn queries(kind: &str) -> Vec<String> {
    let q = |f: &dyn Fn(u32) -> String| (0..4096u32).map(f).collect();
    match kind {
        "ip" => q(&|i| format!("10.{}.{}.7", (i * 7) % 39, (i * 13) % 256)),
        "literal" => q(&|i| format!("domain{}.example", (i * 7919) % 10_000)),
        "glob" => q(&|i| format!("a.glob{}.test", (i * 31) % 1000)),
        "miss" => q(&|i| format!("miss{i}.nowhere")),
        other => panic!("unknown query kind {other}"),
    }
}
