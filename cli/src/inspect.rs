//! `matchy inspect`: what a database is (metadata, counts, sizes, sections), as an aligned table
//! or one JSON object.

use matchy::{Database, DatabaseInfo, MatchMode};

use crate::output::{human_bytes, thousands, utc_time};
use crate::{InspectArgs, EXIT_FAIL, EXIT_OK};

pub fn run(args: InspectArgs) -> u8 {
    let db = match Database::from(&args.database).open() {
        Ok(db) => db,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_FAIL;
        }
    };
    let info = db.info();
    let file = args.database.to_string_lossy();
    if args.json {
        println!("{}", to_json(&file, &info));
    } else {
        print!("{}", to_table(&file, &info));
    }
    EXIT_OK
}

fn match_mode_name(mode: MatchMode) -> &'static str {
    match mode {
        MatchMode::CaseInsensitive => "case-insensitive",
        _ => "case-sensitive",
    }
}

fn to_json(file: &str, info: &DatabaseInfo) -> serde_json::Value {
    let description: serde_json::Map<String, serde_json::Value> = info
        .description
        .iter()
        .map(|(language, text)| (language.clone(), text.as_str().into()))
        .collect();
    let sections: Vec<serde_json::Value> = info
        .sections
        .iter()
        .map(|s| {
            serde_json::json!({
                "name": s.name,
                "offset": s.offset,
                "length": s.length,
                "crc32": format!("{:08x}", s.crc32),
            })
        })
        .collect();
    serde_json::json!({
        "file": file,
        "format": info.format,
        "database_type": info.database_type,
        "description": description,
        "languages": info.languages,
        "build_epoch": info.build_epoch,
        "build_time": utc_time(info.build_epoch),
        "ip_version": info.ip_version,
        "record_size": info.record_size,
        "node_count": info.node_count,
        "match_mode": info.match_mode.as_str(),
        "ip_count": info.ip_count,
        "literal_count": info.literal_count,
        "glob_count": info.glob_count,
        "file_size": info.file_size,
        "tree_size": info.tree_size,
        "data_section_size": info.data_section_size,
        "metadata_offset": info.metadata_offset,
        "sections": sections,
    })
}

fn to_table(file: &str, info: &DatabaseInfo) -> String {
    let count = |n: Option<u64>| n.map_or_else(|| "unknown".to_owned(), thousands);
    let size = |n: u64| match n {
        0..=1023 => format!("{n} bytes"),
        _ => format!("{} bytes ({})", thousands(n), human_bytes(n)),
    };
    let mut rows: Vec<(&str, String)> = vec![
        ("file", file.to_owned()),
        ("format", info.format.to_owned()),
        ("database type", info.database_type.clone()),
    ];
    if info.description.is_empty() {
        rows.push(("description", "(none)".to_owned()));
    }
    for (language, text) in &info.description {
        rows.push(("description", format!("[{language}] {text}")));
    }
    if !info.languages.is_empty() {
        rows.push(("languages", info.languages.join(", ")));
    }
    rows.extend([
        (
            "built",
            format!(
                "{} (epoch {})",
                utc_time(info.build_epoch),
                info.build_epoch
            ),
        ),
        ("match mode", match_mode_name(info.match_mode).to_owned()),
        ("ip version", format!("IPv{}", info.ip_version)),
        ("record size", format!("{} bits", info.record_size)),
        ("tree nodes", thousands(u64::from(info.node_count))),
        ("ip entries", count(info.ip_count)),
        ("literals", count(info.literal_count)),
        ("globs", count(info.glob_count)),
        ("file size", size(info.file_size)),
        ("search tree", size(info.tree_size)),
        ("data section", size(info.data_section_size)),
        (
            "metadata at",
            format!("byte {}", thousands(info.metadata_offset)),
        ),
    ]);
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let mut out = String::new();
    for (key, value) in &rows {
        out += &format!("{key:<width$}  {value}\n");
    }
    if !info.sections.is_empty() {
        let name_width = info
            .sections
            .iter()
            .map(|s| s.name.len())
            .max()
            .unwrap_or(0)
            .max("section".len());
        out += &format!(
            "\n{:<name_width$}  {:>14}  {:>14}  {:>8}\n",
            "section", "offset", "length", "crc32"
        );
        for s in &info.sections {
            out += &format!(
                "{:<name_width$}  {:>14}  {:>14}  {:08x}\n",
                s.name,
                thousands(s.offset),
                thousands(s.length),
                s.crc32
            );
        }
    }
    out
}
