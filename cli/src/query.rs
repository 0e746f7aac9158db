//! `matchy query`: one JSON array per query on stdout, one object per match, in the engine's
//! order (IP network, exact literal, globs in build order). Queries come from the command line
//! and, for `-`, from stdin line by line.

use std::io::{self, BufRead, BufReader, BufWriter, Write};

use matchy::Database;

use crate::output::{json_string, pretty_json};
use crate::{QueryArgs, EXIT_ERROR, EXIT_FAIL, EXIT_OK};

enum Stop {
    /// A lookup or the input failed: exit 2 with this message.
    Error(String),
    /// stdout is gone (e.g. `| head`): stop quietly.
    Closed,
    /// Writing stdout failed otherwise.
    Write(io::Error),
}

impl From<io::Error> for Stop {
    fn from(err: io::Error) -> Self {
        if err.kind() == io::ErrorKind::BrokenPipe {
            Stop::Closed
        } else {
            Stop::Write(err)
        }
    }
}

pub fn run(args: QueryArgs) -> u8 {
    let db = match Database::from(&args.database).open() {
        Ok(db) => db,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_ERROR;
        }
    };
    let mut out = BufWriter::new(io::stdout().lock());
    let mut found = false;
    let result = answer_all(&db, &args, &mut out, &mut found).and_then(|()| Ok(out.flush()?));
    match result {
        Ok(()) | Err(Stop::Closed) if found => EXIT_OK,
        Ok(()) | Err(Stop::Closed) => EXIT_FAIL,
        Err(Stop::Error(message)) => {
            let _ = out.flush();
            eprintln!("error: {message}");
            EXIT_ERROR
        }
        Err(Stop::Write(e)) => {
            eprintln!("error: writing the answers: {e}");
            EXIT_ERROR
        }
    }
}

fn answer_all(
    db: &Database,
    args: &QueryArgs,
    out: &mut impl Write,
    found: &mut bool,
) -> Result<(), Stop> {
    for query in &args.queries {
        if query != "-" {
            *found |= answer(db, query, args.pretty, out)?;
            continue;
        }
        let mut stdin = BufReader::with_capacity(64 * 1024, io::stdin().lock());
        let mut line = Vec::new();
        let mut line_no = 0u64;
        loop {
            line.clear();
            let n = stdin
                .read_until(b'\n', &mut line)
                .map_err(|e| Stop::Error(format!("reading queries from stdin: {e}")))?;
            if n == 0 {
                break;
            }
            line_no += 1;
            let mut text = line.as_slice();
            text = text.strip_suffix(b"\n").unwrap_or(text);
            text = text.strip_suffix(b"\r").unwrap_or(text);
            let text = std::str::from_utf8(text).map_err(|_| {
                Stop::Error(format!(
                    "stdin line {line_no}: the query is not valid UTF-8"
                ))
            })?;
            *found |= answer(db, text, args.pretty, out)?;
            // Answer interactive and pipelined callers at once, without a write per line
            // when a batch is waiting.
            if stdin.buffer().is_empty() {
                out.flush()?;
            }
        }
    }
    Ok(())
}

/// Writes the JSON array for one query; true if it matched anything.
fn answer(db: &Database, query: &str, pretty: bool, out: &mut impl Write) -> Result<bool, Stop> {
    if query.is_empty() {
        writeln!(out, "[]")?;
        return Ok(false);
    }
    let matches = db
        .lookup(query)
        .map_err(|e| Stop::Error(format!("query {query:?}: {e}")))?;
    let mut json = String::from("[");
    for (i, m) in matches.iter().enumerate() {
        if i > 0 {
            json.push(',');
        }
        let data = m
            .value()
            .to_json()
            .map_err(|e| Stop::Error(format!("query {query:?}: {e}")))?;
        json.push_str("{\"kind\":\"");
        json.push_str(m.kind().as_str());
        json.push_str("\",\"entry\":");
        json.push_str(&json_string(&m.entry()));
        json.push_str(",\"data\":");
        json.push_str(&data);
        json.push('}');
    }
    json.push(']');
    if pretty {
        json = pretty_json(&json);
    }
    writeln!(out, "{json}")?;
    Ok(!matches.is_empty())
}
