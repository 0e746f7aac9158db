//! `matchy validate`: runs the library's validator and reports every problem with its byte
//! offset, as text or JSON.

use matchy::{validate_file, ValidationIssue, ValidationLevel};

use crate::output::thousands;
use crate::{LevelArg, ValidateArgs, EXIT_FAIL, EXIT_OK};

pub fn run(args: ValidateArgs) -> u8 {
    let level = match args.level {
        LevelArg::Standard => ValidationLevel::Standard,
        LevelArg::Strict => ValidationLevel::Strict,
    };
    let report = validate_file(&args.database, level);
    let file = args.database.display();
    if args.json {
        let issues = |list: &[ValidationIssue]| -> Vec<serde_json::Value> {
            list.iter()
                .map(|i| serde_json::json!({ "offset": i.offset, "what": i.what }))
                .collect()
        };
        let json = serde_json::json!({
            "file": args.database.to_string_lossy(),
            "level": report.level.as_str(),
            "valid": report.is_ok(),
            "errors": issues(&report.errors),
            "warnings": issues(&report.warnings),
            "nodes_checked": report.nodes_checked,
            "values_checked": report.values_checked,
            "index_entries_checked": report.index_entries_checked,
        });
        println!("{json}");
    } else {
        for warning in &report.warnings {
            println!("{file}: warning: {}", located(&file.to_string(), warning));
        }
        for error in &report.errors {
            println!("{file}: error: {}", located(&file.to_string(), error));
        }
        if report.is_ok() {
            let mut checked = Vec::new();
            if report.nodes_checked > 0 {
                checked.push(format!("{} tree nodes", thousands(report.nodes_checked)));
            }
            if report.values_checked > 0 {
                checked.push(format!("{} data values", thousands(report.values_checked)));
            }
            if report.index_entries_checked > 0 {
                checked.push(format!(
                    "{} index entries",
                    thousands(report.index_entries_checked)
                ));
            }
            let checked = if checked.is_empty() {
                String::new()
            } else {
                format!(", checked {}", checked.join(", "))
            };
            println!(
                "ok: {file} is valid ({} level{checked}; {} warning{})",
                report.level.as_str(),
                report.warnings.len(),
                if report.warnings.len() == 1 { "" } else { "s" }
            );
        } else {
            println!(
                "invalid: {file} has {} error{} ({} level)",
                report.errors.len(),
                if report.errors.len() == 1 { "" } else { "s" },
                report.level.as_str()
            );
        }
    }
    if report.is_ok() {
        EXIT_OK
    } else {
        EXIT_FAIL
    }
}

/// The issue with its offset in front; the file name, already at the start of the line, is
/// dropped from the message.
fn located(file: &str, issue: &ValidationIssue) -> String {
    let what = issue
        .what
        .strip_prefix(file)
        .and_then(|rest| rest.strip_prefix(": "))
        .unwrap_or(&issue.what);
    match issue.offset {
        Some(offset) => format!("at byte offset {offset}: {what}"),
        None => what.to_owned(),
    }
}
