//! `matchy build`: streams feed files through the builder and writes the database atomically.
//! Owns error placement (every problem as `file:line[:column]: message`, including the builder's
//! line-numbered messages), the progress line and the summary.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use matchy::{DatabaseBuilder, DuplicatePolicy, MatchMode};

use crate::input::{self, Format, InputError};
use crate::output::{human_bytes, thousands};
use crate::{BuildArgs, DuplicateArg, FormatArg, EXIT_FAIL, EXIT_OK};

pub fn run(args: BuildArgs) -> u8 {
    let started = Instant::now();
    match build(&args, started) {
        Ok(summary) => {
            if summary.records() == 0 {
                eprintln!("warning: the input held no entries; the database is empty");
            }
            let text = if args.json {
                summary.to_json(started.elapsed())
            } else {
                summary.to_text(started.elapsed())
            };
            println!("{text}");
            EXIT_OK
        }
        Err(message) => {
            eprintln!("{message}");
            EXIT_FAIL
        }
    }
}

struct InputSummary {
    file: PathBuf,
    format: Format,
    records: u64,
}

struct Summary {
    output: PathBuf,
    inputs: Vec<InputSummary>,
    stats: matchy::BuildStats,
}

impl Summary {
    fn records(&self) -> u64 {
        self.inputs.iter().map(|i| i.records).sum()
    }

    fn entries(&self) -> u64 {
        self.stats.ip + self.stats.literal + self.stats.glob
    }

    fn to_text(&self, elapsed: Duration) -> String {
        let mut text = format!(
            "built {}: {} entries (ip {}, literal {}, glob {}) from {} record{} in {} file{}",
            self.output.display(),
            thousands(self.entries()),
            thousands(self.stats.ip),
            thousands(self.stats.literal),
            thousands(self.stats.glob),
            thousands(self.records()),
            if self.records() == 1 { "" } else { "s" },
            self.inputs.len(),
            if self.inputs.len() == 1 { "" } else { "s" },
        );
        if self.stats.duplicates_dropped > 0 {
            text += &format!(
                ", {} duplicate{} dropped",
                thousands(self.stats.duplicates_dropped),
                if self.stats.duplicates_dropped == 1 {
                    ""
                } else {
                    "s"
                }
            );
        }
        text += &format!(
            "; {} in {:.2} s",
            human_bytes(self.stats.file_size),
            elapsed.as_secs_f64()
        );
        text
    }

    fn to_json(&self, elapsed: Duration) -> String {
        let inputs: Vec<serde_json::Value> = self
            .inputs
            .iter()
            .map(|i| {
                serde_json::json!({
                    "file": i.file.to_string_lossy(),
                    "format": i.format.name(),
                    "records": i.records,
                })
            })
            .collect();
        serde_json::json!({
            "output": self.output.to_string_lossy(),
            "entries": self.entries(),
            "ip": self.stats.ip,
            "literal": self.stats.literal,
            "glob": self.stats.glob,
            "records": self.records(),
            "duplicates_dropped": self.stats.duplicates_dropped,
            "file_size": self.stats.file_size,
            "seconds": (elapsed.as_secs_f64() * 1000.0).round() / 1000.0,
            "inputs": inputs,
        })
        .to_string()
    }
}

fn build(args: &BuildArgs, started: Instant) -> Result<Summary, String> {
    refuse_output_among_inputs(&args.output, &args.inputs)?;

    let mut builder = DatabaseBuilder::new();
    if args.case_insensitive {
        builder.match_mode(MatchMode::CaseInsensitive);
    }
    builder.on_duplicate(match args.on_duplicate {
        DuplicateArg::Error => DuplicatePolicy::Error,
        DuplicateArg::First => DuplicatePolicy::First,
        DuplicateArg::Last => DuplicatePolicy::Last,
    });
    if let Some(name) = &args.database_type {
        builder.database_type(name);
    }
    if let Some(text) = &args.description {
        builder.description("en", text);
    }

    let mut progress = Progress::new(started);
    let mut lines = LineMap::default();
    let mut inputs = Vec::with_capacity(args.inputs.len());
    for path in &args.inputs {
        let format = match args.format {
            FormatArg::Auto => input::detect_file_format(path),
            FormatArg::Csv => Ok(Format::Csv),
            FormatArg::Json => Ok(Format::Json),
            FormatArg::Jsonl => Ok(Format::Jsonl),
            FormatArg::Text => Ok(Format::Text),
        }
        .map_err(|e| e.to_string())?;
        let base = lines.start_file(path);
        let mut last_line = 0;
        let records = input::read_records(path, format, &mut |record| {
            // The builder numbers lines across all inputs; `LineMap` turns them back into
            // file:line.
            let id = base + record.line;
            last_line = record.line;
            progress.tick(path);
            builder
                .add_at(&record.entry, record.data, id)
                .map_err(|e| strip_line_prefix(&e.to_string(), id))
        });
        let records = records.map_err(|e: InputError| e.to_string())?;
        lines.end_file(last_line);
        inputs.push(InputSummary {
            file: path.clone(),
            format,
            records,
        });
    }

    progress.writing(&args.output);
    let stats = builder.write_to(&args.output);
    progress.clear();
    let stats = stats.map_err(|e| format!("error: {}", lines.rewrite(&e.to_string())))?;
    Ok(Summary {
        output: args.output.clone(),
        inputs,
        stats,
    })
}

/// Writing the database over one of its own inputs would destroy the feed on success.
fn refuse_output_among_inputs(output: &Path, inputs: &[PathBuf]) -> Result<(), String> {
    let Ok(out) = output.canonicalize() else {
        return Ok(()); // Does not exist yet, so it is no input.
    };
    for input in inputs {
        if input.canonicalize().is_ok_and(|i| i == out) {
            return Err(format!(
                "error: the output {} is also an input; write the database to another file",
                output.display()
            ));
        }
    }
    Ok(())
}

/// The builder prefixes `line N: ` to errors about an entry; the caller puts `file:line: ` there.
fn strip_line_prefix(message: &str, id: u64) -> String {
    let prefix = format!("line {id}: ");
    message.strip_prefix(&prefix).unwrap_or(message).to_owned()
}

/// Maps the line numbers given to the builder (one sequence across all inputs) back to
/// `file:line`, for messages the builder produces after reading, such as duplicate reports.
#[derive(Default)]
struct LineMap {
    /// (first id of the file minus one, last id of the file, file).
    files: Vec<(u64, u64, PathBuf)>,
    next_base: u64,
}

impl LineMap {
    /// Registers the next input; its line L gets id `base + L`.
    fn start_file(&mut self, path: &Path) -> u64 {
        self.files
            .push((self.next_base, self.next_base, path.to_path_buf()));
        self.next_base
    }

    fn end_file(&mut self, last_line: u64) {
        if let Some(file) = self.files.last_mut() {
            file.1 = file.0 + last_line;
            self.next_base = file.1;
        }
    }

    fn locate(&self, id: u64) -> Option<String> {
        self.files
            .iter()
            .find(|(base, last, _)| *base < id && id <= *last)
            .map(|(base, _, path)| format!("{}:{}", path.display(), id - base))
    }

    /// Replaces `line N` with `file:N` and `lines N and M` with `file:N and file:M`.
    fn rewrite(&self, message: &str) -> String {
        let mut out = String::with_capacity(message.len() + 64);
        let mut rest = message;
        while let Some(at) = rest.find("line") {
            let word_start = at == 0 || !rest.as_bytes()[at - 1].is_ascii_alphanumeric();
            let after = &rest[at + 4..];
            let (plural, after) = match after.strip_prefix('s') {
                Some(a) => (true, a),
                None => (false, after),
            };
            let numbers = word_start
                .then(|| parse_line_numbers(after, plural))
                .flatten();
            let located = numbers.and_then(|(ids, used)| {
                let places: Option<Vec<String>> = ids.iter().map(|&id| self.locate(id)).collect();
                places.map(|p| (p, used))
            });
            match located {
                Some((places, used)) => {
                    out.push_str(&rest[..at]);
                    out.push_str(&places.join(" and "));
                    rest = &after[used..];
                }
                None => {
                    out.push_str(&rest[..at + 4]);
                    rest = &rest[at + 4..];
                }
            }
        }
        out.push_str(rest);
        out
    }
}

/// Parses ` N` (or ` N and M` when `plural`) at the start of `text`: the numbers and the bytes
/// they take.
fn parse_line_numbers(text: &str, plural: bool) -> Option<(Vec<u64>, usize)> {
    fn number(text: &str) -> Option<(u64, usize)> {
        let digits = text.bytes().take_while(u8::is_ascii_digit).count();
        Some((text[..digits].parse().ok()?, digits))
    }
    let rest = text.strip_prefix(' ')?;
    let (first, n) = number(rest)?;
    let mut used = 1 + n;
    let mut ids = vec![first];
    if plural {
        let tail = text[used..].strip_prefix(" and ")?;
        let (second, m) = number(tail)?;
        used += " and ".len() + m;
        ids.push(second);
    }
    Some((ids, used))
}

/// The progress line on stderr: only when stderr is a terminal, at most every half second.
struct Progress {
    enabled: bool,
    started: Instant,
    last: Instant,
    records: u64,
    shown: bool,
}

impl Progress {
    fn new(started: Instant) -> Self {
        Progress {
            enabled: std::io::stderr().is_terminal(),
            started,
            last: started,
            records: 0,
            shown: false,
        }
    }

    fn tick(&mut self, file: &Path) {
        self.records += 1;
        if !self.enabled || self.records & 1023 != 0 {
            return;
        }
        let now = Instant::now();
        if now.duration_since(self.last) < Duration::from_millis(500) {
            return;
        }
        self.last = now;
        let seconds = now.duration_since(self.started).as_secs_f64().max(1e-9);
        self.show(&format!(
            "{}: {} entries read ({}/s)",
            file.display(),
            thousands(self.records),
            thousands((self.records as f64 / seconds) as u64)
        ));
    }

    fn writing(&mut self, output: &Path) {
        if self.enabled {
            self.show(&format!(
                "{} entries read; writing {}",
                thousands(self.records),
                output.display()
            ));
        }
    }

    fn show(&mut self, line: &str) {
        let mut stderr = std::io::stderr().lock();
        let _ = write!(stderr, "\r\x1b[2K{line}");
        let _ = stderr.flush();
        self.shown = true;
    }

    fn clear(&mut self) {
        if self.shown {
            let mut stderr = std::io::stderr().lock();
            let _ = write!(stderr, "\r\x1b[2K");
            let _ = stderr.flush();
            self.shown = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map() -> LineMap {
        let mut lines = LineMap::default();
        assert_eq!(lines.start_file(Path::new("a.csv")), 0);
        lines.end_file(10);
        assert_eq!(lines.start_file(Path::new("b.txt")), 10);
        lines.end_file(5);
        lines
    }

    #[test]
    fn builder_line_ids_map_back_to_files() {
        let lines = map();
        assert_eq!(lines.locate(3).as_deref(), Some("a.csv:3"));
        assert_eq!(lines.locate(10).as_deref(), Some("a.csv:10"));
        assert_eq!(lines.locate(11).as_deref(), Some("b.txt:1"));
        assert_eq!(lines.locate(15).as_deref(), Some("b.txt:5"));
        assert_eq!(lines.locate(0), None);
        assert_eq!(lines.locate(16), None);
    }

    #[test]
    fn rewrites_line_references_in_builder_messages() {
        let lines = map();
        assert_eq!(
            lines.rewrite("2 duplicate entries (same glob twice): lines 3 and 12, lines 4 and 9; choose"),
            "2 duplicate entries (same glob twice): a.csv:3 and b.txt:2, a.csv:4 and a.csv:9; choose"
        );
        assert_eq!(lines.rewrite("line 14: bad"), "b.txt:4: bad");
        // Unknown ids, other words and malformed references stay as they are.
        assert_eq!(lines.rewrite("lines 3 and 99"), "lines 3 and 99");
        assert_eq!(
            lines.rewrite("pipeline 3, lines x, line"),
            "pipeline 3, lines x, line"
        );
        assert_eq!(lines.rewrite("entries #1 and #2"), "entries #1 and #2");
    }

    #[test]
    fn strips_the_builders_own_line_prefix() {
        assert_eq!(strip_line_prefix("line 7: bad glob", 7), "bad glob");
        assert_eq!(strip_line_prefix("line 8: bad glob", 7), "line 8: bad glob");
    }
}
