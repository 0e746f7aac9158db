//! Feed files -> a stream of (entry, data) records for the builder. Owns the four input formats
//! (CSV, a JSON array, JSON Lines, plain text), their detection, the typing of CSV cells into
//! MaxMind DB types, and error positions (`file:line:column`). Every reader streams: memory use
//! does not grow with the number of records, so feeds of tens of millions of entries build.
//!
//! Rules shared by all formats: a UTF-8 byte-order mark at the start of a file is skipped, invalid
//! UTF-8 is an error naming its line, leading/trailing whitespace around an entry is ignored and an
//! empty entry is an error.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use matchy::DataValue;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// How many bytes of a file [`detect_file_format`] looks at.
pub const HEAD_LEN: usize = 64 * 1024;

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// The input formats `matchy build` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Header row with an `entry` (or `key`) column; the other columns become the entry's data.
    Csv,
    /// One top-level array of `{"entry": "...", "data": {...}}` objects.
    Json,
    /// One `{"entry": "...", "data": {...}}` object per line.
    Jsonl,
    /// One entry per line, no data.
    Text,
}

impl Format {
    /// The name used on the command line (`--format NAME`).
    pub fn name(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Json => "json",
            Format::Jsonl => "jsonl",
            Format::Text => "text",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One entry read from a feed.
#[derive(Debug, Clone, PartialEq)]
pub struct InputRecord {
    /// The entry text, trimmed (an IP/CIDR, literal or glob, possibly with an `ip:`/`literal:`/
    /// `glob:` prefix; the builder decides what it is).
    pub entry: String,
    /// Always a [`DataValue::Map`]; empty when the input has no data for the entry.
    pub data: DataValue,
    /// 1-based line where the record starts in its file.
    pub line: u64,
}

/// A problem with an input file, positioned as precisely as the format allows.
#[derive(Debug, Clone, PartialEq)]
pub struct InputError {
    pub file: PathBuf,
    /// 1-based line, when known.
    pub line: Option<u64>,
    /// 1-based column (characters for text-like formats, as serde_json counts for JSON).
    pub column: Option<u64>,
    pub what: String,
}

impl InputError {
    fn new(file: &Path, line: Option<u64>, column: Option<u64>, what: impl Into<String>) -> Self {
        InputError {
            file: file.to_path_buf(),
            line,
            column,
            what: what.into(),
        }
    }

    fn at_line(file: &Path, line: u64, what: impl Into<String>) -> Self {
        Self::new(file, Some(line), None, what)
    }

    fn io(file: &Path, err: io::Error) -> Self {
        Self::new(file, None, None, err.to_string())
    }
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        write!(f, ": {}", self.what)
    }
}

impl std::error::Error for InputError {}

/// Reads up to [`HEAD_LEN`] bytes of `path` and detects its format with [`detect_format`].
pub fn detect_file_format(path: &Path) -> Result<Format, InputError> {
    let head = read_head(path)?;
    detect_format(path, &head)
}

/// The first [`HEAD_LEN`] bytes of a file (fewer if it is shorter).
pub fn read_head(path: &Path) -> Result<Vec<u8>, InputError> {
    let file = File::open(path).map_err(|e| InputError::io(path, e))?;
    let mut head = Vec::with_capacity(4096);
    file.take(HEAD_LEN as u64)
        .read_to_end(&mut head)
        .map_err(|e| InputError::io(path, e))?;
    Ok(head)
}

/// The format of a feed: by extension (`.csv`; `.json`; `.jsonl`/`.ndjson`;
/// `.txt`/`.text`/`.list`/`.lst`), otherwise by content (`head` = the first bytes of the file):
/// first non-whitespace byte `[` -> JSON, `{` -> JSON Lines, a first line with a comma and an
/// `entry`/`key` column -> CSV, anything else -> text. Databases, compressed and binary files are
/// refused rather than read as text.
pub fn detect_format(path: &Path, head: &[u8]) -> Result<Format, InputError> {
    let head = head.strip_prefix(UTF8_BOM).unwrap_or(head);
    if let Some(what) = refused_content(head) {
        return Err(InputError::new(path, None, None, what));
    }
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase());
    match extension.as_deref() {
        Some("csv") => return Ok(Format::Csv),
        Some("json") => return Ok(Format::Json),
        Some("jsonl" | "ndjson") => return Ok(Format::Jsonl),
        Some("txt" | "text" | "list" | "lst") => return Ok(Format::Text),
        Some("mmdb" | "mxy" | "matchy") => {
            return Err(InputError::new(
                path,
                None,
                None,
                "this is a database file, not a feed (builds read CSV, JSON, JSON Lines or text)",
            ))
        }
        _ => {}
    }
    match head.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'[') => return Ok(Format::Json),
        Some(b'{') => return Ok(Format::Jsonl),
        _ => {}
    }
    let first_line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    if std::str::from_utf8(first_line).is_ok_and(|line| looks_like_header(line, ',')) {
        return Ok(Format::Csv);
    }
    Ok(Format::Text)
}

/// Content that must never be read as a feed, whatever its extension.
fn refused_content(head: &[u8]) -> Option<&'static str> {
    const MMDB_MARKER: &[u8] = b"\xAB\xCD\xEFMaxMind.com";
    if head.starts_with(b"\x1F\x8B") {
        return Some("this is a gzip-compressed file; decompress it first");
    }
    if head.starts_with(b"PK\x03\x04") {
        return Some("this is a zip archive; extract it first");
    }
    if head.starts_with(b"\xFD7zXZ\x00")
        || head.starts_with(b"BZh") && head.len() > 3 && head[3].is_ascii_digit()
    {
        return Some("this is a compressed file; decompress it first");
    }
    if head.windows(MMDB_MARKER.len()).any(|w| w == MMDB_MARKER) {
        return Some("this is a database file, not a feed");
    }
    if head.contains(&0) {
        return Some("this is a binary file (it contains NUL bytes), not a text feed");
    }
    None
}

/// True if `line` splits on `separator` into more than one field and one field is `entry` or
/// `key` (case-insensitive, optionally quoted).
fn looks_like_header(line: &str, separator: char) -> bool {
    line.contains(separator)
        && line.split(separator).any(|field| {
            let name = field.trim().trim_matches('"').trim();
            is_entry_column(name)
        })
}

fn is_entry_column(name: &str) -> bool {
    name.eq_ignore_ascii_case("entry") || name.eq_ignore_ascii_case("key")
}

/// Streams the records of `path` read as `format` to `sink`, in file order, and returns how
/// many there were. Stops at the first error: a problem with the input, or an `Err` from the sink
/// (reported at the record's line). Never holds more than one record in memory.
pub fn read_records(
    path: &Path,
    format: Format,
    sink: &mut dyn FnMut(InputRecord) -> Result<(), String>,
) -> Result<u64, InputError> {
    let file = File::open(path).map_err(|e| InputError::io(path, e))?;
    let mut reader = BufReader::with_capacity(256 * 1024, file);
    skip_bom(&mut reader).map_err(|e| InputError::io(path, e))?;
    match format {
        Format::Csv => read_csv(path, reader, sink),
        Format::Json => read_json(path, reader, sink),
        Format::Jsonl => read_jsonl(path, reader, sink),
        Format::Text => read_text(path, reader, sink),
    }
}

fn skip_bom(reader: &mut impl BufRead) -> io::Result<()> {
    // The buffer holds far more than 3 bytes, so one fill sees the whole mark.
    if reader.fill_buf()?.starts_with(UTF8_BOM) {
        reader.consume(UTF8_BOM.len());
    }
    Ok(())
}

fn empty_map() -> DataValue {
    DataValue::Map(Vec::new())
}

/// Trims an entry; `Err` with a message if nothing is left.
fn clean_entry(raw: &str) -> Result<String, &'static str> {
    let entry = raw.trim();
    if entry.is_empty() {
        Err("empty entry")
    } else {
        Ok(entry.to_owned())
    }
}

/// Decodes one line as UTF-8, or an error pointing at the column of the first bad byte.
fn utf8_line<'a>(path: &Path, line_no: u64, bytes: &'a [u8]) -> Result<&'a str, InputError> {
    std::str::from_utf8(bytes).map_err(|e| {
        let valid = &bytes[..e.valid_up_to()];
        // `valid` is valid UTF-8 by construction, so the lossy conversion is exact.
        let column = String::from_utf8_lossy(valid).chars().count() as u64 + 1;
        InputError::new(path, Some(line_no), Some(column), "invalid UTF-8")
    })
}

/// Reads lines with their 1-based numbers, without the line terminator (`\n` or `\r\n`).
/// Calls `each` with the raw bytes; stops on the first error.
fn for_each_line(
    path: &Path,
    mut reader: impl BufRead,
    mut each: impl FnMut(u64, &[u8]) -> Result<(), InputError>,
) -> Result<(), InputError> {
    let mut buf = Vec::new();
    let mut line_no = 0u64;
    loop {
        buf.clear();
        let n = reader
            .read_until(b'\n', &mut buf)
            .map_err(|e| InputError::new(path, Some(line_no + 1), None, e.to_string()))?;
        if n == 0 {
            return Ok(());
        }
        line_no += 1;
        let mut line = buf.as_slice();
        line = line.strip_suffix(b"\n").unwrap_or(line);
        line = line.strip_suffix(b"\r").unwrap_or(line);
        each(line_no, line)?;
    }
}

// ---------------------------------------------------------------------------------------------
// Text

fn read_text(
    path: &Path,
    reader: impl BufRead,
    sink: &mut dyn FnMut(InputRecord) -> Result<(), String>,
) -> Result<u64, InputError> {
    let mut records = 0u64;
    for_each_line(path, reader, |line_no, bytes| {
        let line = utf8_line(path, line_no, bytes)?.trim();
        if line.is_empty() || line.starts_with('#') {
            return Ok(());
        }
        if records == 0 {
            if looks_like_header(line, ',') {
                return Err(InputError::at_line(
                    path,
                    line_no,
                    "this looks like CSV (a header row with an entry/key column), use --format csv",
                ));
            }
            if looks_like_header(line, '\t') {
                return Err(InputError::at_line(
                    path,
                    line_no,
                    "this looks like a tab-separated header row; convert the file to CSV and use --format csv",
                ));
            }
        }
        if (line.starts_with('{') || line.starts_with('['))
            && serde_json::from_str::<de::IgnoredAny>(line).is_ok()
        {
            return Err(InputError::at_line(
                path,
                line_no,
                format!("line {line_no} looks like JSON, use --format jsonl or --format json"),
            ));
        }
        records += 1;
        sink(InputRecord {
            entry: line.to_owned(),
            data: empty_map(),
            line: line_no,
        })
        .map_err(|what| InputError::at_line(path, line_no, what))
    })?;
    Ok(records)
}

// ---------------------------------------------------------------------------------------------
// CSV

/// Remembers where the newlines are in the bytes the CSV parser has pulled but not yet finished
/// with, so a record's first line can be computed exactly. (The csv crate positions a record where
/// the previous one ended: before any blank lines, and before the `\n` of a `\r\n`.)
struct NewlineLog<R> {
    inner: R,
    offset: u64,
    newlines: Rc<RefCell<VecDeque<u64>>>,
}

impl<R: Read> Read for NewlineLog<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut newlines = self.newlines.borrow_mut();
        for (i, _) in buf[..n].iter().enumerate().filter(|(_, &b)| b == b'\n') {
            newlines.push_back(self.offset + i as u64);
        }
        self.offset += n as u64;
        Ok(n)
    }
}

/// The CSV reader plus what it takes to know each record's first line.
struct CsvRecords<R> {
    reader: csv::Reader<NewlineLog<R>>,
    newlines: Rc<RefCell<VecDeque<u64>>>,
}

impl<R: Read> CsvRecords<R> {
    /// The 1-based first line of `record`, which the reader has just returned. The reader's
    /// position is now just past the record's terminator; a record spans the newlines inside its
    /// (quoted) fields, plus one if its terminator was a `\n` (not a `\r` or the end of the file).
    fn first_line(&mut self, record: &csv::ByteRecord) -> u64 {
        let end = self.reader.position().byte();
        let mut newlines = self.newlines.borrow_mut();
        while newlines.front().is_some_and(|&at| at + 1 < end) {
            newlines.pop_front();
        }
        let ends_with_newline = end > 0 && newlines.front() == Some(&(end - 1));
        let inside: u64 = record
            .iter()
            .map(|field| field.iter().filter(|&&b| b == b'\n').count() as u64)
            .sum();
        (self.reader.position().line())
            .saturating_sub(inside + u64::from(ends_with_newline))
            .max(1)
    }
}

fn read_csv(
    path: &Path,
    reader: impl Read,
    sink: &mut dyn FnMut(InputRecord) -> Result<(), String>,
) -> Result<u64, InputError> {
    let newlines = Rc::new(RefCell::new(VecDeque::new()));
    let mut csv = CsvRecords {
        reader: csv::ReaderBuilder::new()
            .has_headers(false)
            // Field counts are checked here, to report them with the header's count.
            .flexible(true)
            // Trimming happens here too: csv's would hide newlines that line numbers count.
            .trim(csv::Trim::None)
            .from_reader(NewlineLog {
                inner: reader,
                offset: 0,
                newlines: Rc::clone(&newlines),
            }),
        newlines,
    };
    let csv_error = |err: csv::Error| {
        let line = err.position().map(|p| p.line());
        let what = match err.kind() {
            csv::ErrorKind::Io(e) => e.to_string(),
            _ => err.to_string(),
        };
        InputError::new(path, line, None, what)
    };

    let mut header = csv::ByteRecord::new();
    if !csv
        .reader
        .read_byte_record(&mut header)
        .map_err(csv_error)?
    {
        return Err(InputError::at_line(
            path,
            1,
            "empty CSV file: expected a header row with an `entry` (or `key`) column",
        ));
    }
    let header_line = csv.first_line(&header);
    let mut names: Vec<String> = Vec::with_capacity(header.len());
    for (index, raw) in header.iter().enumerate() {
        let name = std::str::from_utf8(raw)
            .map_err(|_| {
                InputError::at_line(
                    path,
                    header_line,
                    format!("invalid UTF-8 in header column {}", index + 1),
                )
            })?
            .trim();
        if name.is_empty() {
            return Err(InputError::at_line(
                path,
                header_line,
                format!("header column {} has no name", index + 1),
            ));
        }
        if names.iter().any(|n| n == name) {
            return Err(InputError::at_line(
                path,
                header_line,
                format!("the header names column `{name}` twice"),
            ));
        }
        names.push(name.to_owned());
    }
    let entry_columns: Vec<usize> = (0..names.len())
        .filter(|&i| is_entry_column(&names[i]))
        .collect();
    let entry_column = match entry_columns.as_slice() {
        [one] => *one,
        [] => {
            return Err(InputError::at_line(
                path,
                header_line,
                "the header row has no `entry` (or `key`) column naming the entries",
            ))
        }
        _ => {
            return Err(InputError::at_line(
                path,
                header_line,
                "the header row has both an `entry` and a `key` column; keep exactly one",
            ))
        }
    };

    let mut records = 0u64;
    let mut row = csv::ByteRecord::new();
    while csv.reader.read_byte_record(&mut row).map_err(csv_error)? {
        let line_no = csv.first_line(&row);
        if row.len() != names.len() {
            return Err(InputError::at_line(
                path,
                line_no,
                format!(
                    "row has {} fields but the header has {} columns",
                    row.len(),
                    names.len()
                ),
            ));
        }
        let mut entry = String::new();
        let mut map = Vec::with_capacity(names.len() - 1);
        for (index, raw) in row.iter().enumerate() {
            let cell = std::str::from_utf8(raw).map_err(|_| {
                InputError::at_line(
                    path,
                    line_no,
                    format!("invalid UTF-8 in column `{}`", names[index]),
                )
            })?;
            if index == entry_column {
                entry =
                    clean_entry(cell).map_err(|what| InputError::at_line(path, line_no, what))?;
            } else if let Some(value) = typed_cell(cell.trim()) {
                map.push((names[index].clone(), value));
            }
        }
        records += 1;
        sink(InputRecord {
            entry,
            data: DataValue::Map(map),
            line: line_no,
        })
        .map_err(|what| InputError::at_line(path, line_no, what))?;
    }
    Ok(records)
}

/// The MaxMind DB value of one CSV cell (leading/trailing whitespace already trimmed), or `None` for an empty cell.
///
/// Integers (optional `-`, digits, no leading zeros, no `+`) take the smallest fitting type:
/// 0..=4294967295 -> uint32, up to 2^64-1 -> uint64, up to 2^128-1 -> uint128, negative values
/// fitting 32 bits -> int32. Other integers (MMDB has no wider signed type) become a double when
/// the double holds them exactly, otherwise they stay strings, so no digit is ever lost. Decimal
/// numbers (`1.5`, `-0.25`, `1e6`, `2.5E-3`) -> double; `true`/`false` in any case -> boolean;
/// everything else, including numbers with leading zeros such as `007`, -> string.
pub fn typed_cell(cell: &str) -> Option<DataValue> {
    if cell.is_empty() {
        return None;
    }
    if cell.eq_ignore_ascii_case("true") {
        return Some(DataValue::Bool(true));
    }
    if cell.eq_ignore_ascii_case("false") {
        return Some(DataValue::Bool(false));
    }
    let (negative, digits) = match cell.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, cell),
    };
    if is_digits(digits) {
        if digits.len() > 1 && digits.starts_with('0') {
            return Some(DataValue::String(cell.to_owned()));
        }
        return Some(typed_integer(cell, negative, digits));
    }
    if is_decimal(digits) {
        if let Ok(value) = cell.parse::<f64>() {
            if value.is_finite() {
                return Some(DataValue::Double(value));
            }
        }
    }
    Some(DataValue::String(cell.to_owned()))
}

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// `digits[.digits][(e|E)[+-]digits]` with a fraction or an exponent (or both).
fn is_decimal(s: &str) -> bool {
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(at) => (&s[..at], Some(&s[at + 1..])),
        None => (s, None),
    };
    let (integer, fraction) = match mantissa.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (mantissa, None),
    };
    let exponent_ok = match exponent {
        None => true,
        Some(e) => is_digits(e.strip_prefix(['+', '-']).unwrap_or(e)),
    };
    let fraction_ok = match fraction {
        None => true,
        Some(f) => is_digits(f),
    };
    is_digits(integer) && fraction_ok && exponent_ok && (fraction.is_some() || exponent.is_some())
}

fn typed_integer(cell: &str, negative: bool, digits: &str) -> DataValue {
    if negative {
        if let Ok(value) = cell.parse::<i32>() {
            return DataValue::Int32(value);
        }
    } else if let Ok(value) = digits.parse::<u128>() {
        return if let Ok(v) = u32::try_from(value) {
            DataValue::Uint32(v)
        } else if let Ok(v) = u64::try_from(value) {
            DataValue::Uint64(v)
        } else {
            DataValue::Uint128(value)
        };
    }
    match cell.parse::<f64>() {
        // `{:.0}` prints a double's exact integer value, so equality means nothing was rounded.
        Ok(value) if value.is_finite() && format!("{value:.0}") == cell => DataValue::Double(value),
        _ => DataValue::String(cell.to_owned()),
    }
}

// ---------------------------------------------------------------------------------------------
// JSON and JSON Lines

/// Counts the newlines the JSON parser has pulled, so a record knows its starting line.
/// serde_json reads one byte at a time (peeking at most one ahead), and when an object's
/// visitor runs the `{` is the last byte consumed: the count then gives the line of the `{`.
/// Reads straight from the `BufRead`'s buffer: a plain `Read` wrapper around a `BufReader`
/// costs a second copy and a slow path per byte, doubling the parse time.
struct LineCountingReader<R> {
    inner: R,
    newlines: Rc<Cell<u64>>,
}

impl<R: BufRead> Read for LineCountingReader<R> {
    #[inline]
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let buf = self.inner.fill_buf()?;
        let n = out.len().min(buf.len());
        let newlines = if n == 1 {
            out[0] = buf[0];
            u64::from(buf[0] == b'\n')
        } else {
            out[..n].copy_from_slice(&buf[..n]);
            buf[..n].iter().filter(|&&b| b == b'\n').count() as u64
        };
        self.inner.consume(n);
        self.newlines.set(self.newlines.get() + newlines);
        Ok(n)
    }
}

fn read_json(
    path: &Path,
    mut reader: impl BufRead,
    sink: &mut dyn FnMut(InputRecord) -> Result<(), String>,
) -> Result<u64, InputError> {
    // Look at the first significant byte to explain the common mix-ups before serde does.
    let mut line_no = 1u64;
    loop {
        let buf = reader.fill_buf().map_err(|e| InputError::io(path, e))?;
        if buf.is_empty() {
            return Err(InputError::at_line(
                path,
                line_no,
                "empty file: expected a JSON array of {\"entry\": ..., \"data\": {...}} objects",
            ));
        }
        let whitespace = buf.iter().take_while(|b| b.is_ascii_whitespace()).count();
        let first = buf.get(whitespace).copied();
        line_no += buf[..whitespace].iter().filter(|&&b| b == b'\n').count() as u64;
        reader.consume(whitespace);
        match first {
            None => continue,
            Some(b'[') => break,
            Some(b'{') => {
                return Err(InputError::at_line(
                    path,
                    line_no,
                    "expected a JSON array, found an object; for one object per line use --format jsonl",
                ))
            }
            Some(_) => {
                return Err(InputError::at_line(
                    path,
                    line_no,
                    "expected a JSON array of {\"entry\": ..., \"data\": {...}} objects",
                ))
            }
        }
    }

    let newlines = Rc::new(Cell::new(line_no - 1));
    let counting = LineCountingReader {
        inner: reader,
        newlines: Rc::clone(&newlines),
    };
    let mut de = serde_json::Deserializer::from_reader(counting);
    let sink_error = RefCell::new(None);
    let seed = RecordArraySeed {
        path,
        newlines: &newlines,
        sink,
        sink_error: &sink_error,
    };
    let result = seed.deserialize(&mut de).and_then(|n| de.end().map(|()| n));
    match result {
        Ok(n) => Ok(n),
        Err(err) => Err(sink_error
            .into_inner()
            .unwrap_or_else(|| json_error(path, &err, 0))),
    }
}

/// An error from serde_json as an [`InputError`]; `line_base` is added to serde's line (JSON
/// Lines parse one line at a time).
fn json_error(path: &Path, err: &serde_json::Error, line_base: u64) -> InputError {
    let (line, column) = (err.line(), err.column());
    let what = strip_serde_position(&err.to_string());
    if line == 0 {
        InputError::new(path, None, None, what)
    } else {
        InputError::new(
            path,
            Some(line as u64 + line_base),
            Some(column as u64),
            what,
        )
    }
}

/// serde_json appends " at line L column C" to its messages; the position goes in front instead.
fn strip_serde_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(at)
            if message[at + 9..]
                .split(" column ")
                .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())) =>
        {
            message[..at].to_owned()
        }
        _ => message.to_owned(),
    }
}

fn read_jsonl(
    path: &Path,
    reader: impl BufRead,
    sink: &mut dyn FnMut(InputRecord) -> Result<(), String>,
) -> Result<u64, InputError> {
    let mut records = 0u64;
    let mut seen_content = false;
    for_each_line(path, reader, |line_no, bytes| {
        let line = utf8_line(path, line_no, bytes)?;
        let content = line.trim_start();
        if content.is_empty() {
            return Ok(());
        }
        if !seen_content && content.starts_with('[') {
            return Err(InputError::at_line(
                path,
                line_no,
                "this looks like a JSON array, use --format json (JSON Lines has one object per line)",
            ));
        }
        seen_content = true;
        let newlines = Cell::new(0);
        let mut de = serde_json::Deserializer::from_str(line);
        let record = RecordSeed {
            newlines: &newlines,
            line_base: line_no,
        }
        .deserialize(&mut de)
        .and_then(|record| de.end().map(|()| record))
        .map_err(|err| json_error(path, &err, line_no - 1))?;
        records += 1;
        sink(record).map_err(|what| InputError::at_line(path, line_no, what))
    })?;
    Ok(records)
}

/// The top-level array: hands each element to the sink as soon as it is parsed.
struct RecordArraySeed<'a, 's> {
    path: &'a Path,
    newlines: &'a Cell<u64>,
    sink: &'a mut (dyn FnMut(InputRecord) -> Result<(), String> + 's),
    sink_error: &'a RefCell<Option<InputError>>,
}

impl<'de> DeserializeSeed<'de> for RecordArraySeed<'_, '_> {
    type Value = u64;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<u64, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for RecordArraySeed<'_, '_> {
    type Value = u64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of {\"entry\": ..., \"data\": {...}} objects")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<u64, A::Error> {
        let mut records = 0u64;
        while let Some(record) = seq.next_element_seed(RecordSeed {
            newlines: self.newlines,
            line_base: 1,
        })? {
            let line = record.line;
            records += 1;
            if let Err(what) = (self.sink)(record) {
                *self.sink_error.borrow_mut() = Some(InputError::at_line(self.path, line, what));
                return Err(de::Error::custom("stopped by the builder"));
            }
        }
        Ok(records)
    }
}

/// One `{"entry"|"key": "...", "data": {...}}` object. Its line is `line_base` plus the
/// newlines counted before its `{`.
struct RecordSeed<'a> {
    newlines: &'a Cell<u64>,
    line_base: u64,
}

impl<'de> DeserializeSeed<'de> for RecordSeed<'_> {
    type Value = InputRecord;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<InputRecord, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for RecordSeed<'_> {
    type Value = InputRecord;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object {\"entry\": \"...\", \"data\": {...}}")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<InputRecord, A::Error> {
        let line = self.line_base + self.newlines.get();
        let mut entry: Option<(&'static str, String)> = None;
        let mut data: Option<DataValue> = None;
        let mut data_seen = false;
        while let Some(field) = map.next_key::<String>()? {
            match field.as_str() {
                "entry" | "key" => {
                    if let Some((previous, _)) = &entry {
                        return Err(de::Error::custom(if *previous == field {
                            format!("field `{field}` appears twice")
                        } else {
                            "both `entry` and `key` given; keep exactly one".to_owned()
                        }));
                    }
                    let text: String = map.next_value()?;
                    let text = clean_entry(&text).map_err(de::Error::custom)?;
                    let name = if field == "entry" { "entry" } else { "key" };
                    entry = Some((name, text));
                }
                "data" => {
                    if data_seen {
                        return Err(de::Error::custom("field `data` appears twice"));
                    }
                    data_seen = true;
                    data = map.next_value_seed(ValueSeed { key: "data" })?;
                    if data.as_ref().is_some_and(|d| !matches!(d, DataValue::Map(_))) {
                        return Err(de::Error::custom(
                            "`data` must be an object of key/value pairs",
                        ));
                    }
                }
                other => {
                    return Err(de::Error::custom(format!(
                        "unknown field `{other}`: a record has `entry` (or `key`) and optional `data`; \
                         put the entry's values inside \"data\": {{...}}"
                    )))
                }
            }
        }
        let Some((_, entry)) = entry else {
            return Err(de::Error::custom("record has no `entry` (or `key`) field"));
        };
        Ok(InputRecord {
            entry,
            data: data.unwrap_or_else(empty_map),
            line,
        })
    }
}

/// Any JSON value as a [`DataValue`]; `None` for `null`. `key` names the value in errors.
struct ValueSeed<'k> {
    key: &'k str,
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = Option<DataValue>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = Option<DataValue>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Some(DataValue::Bool(v)))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Some(match u32::try_from(v) {
            Ok(small) => DataValue::Uint32(small),
            Err(_) => DataValue::Uint64(v),
        }))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        match i32::try_from(v) {
            Ok(small) => Ok(Some(DataValue::Int32(small))),
            Err(_) => Err(E::custom(format!(
                "`{}`: {v} does not fit a 32-bit signed integer, the widest signed type a \
                 MaxMind DB holds; write it as a string or a float",
                self.key
            ))),
        }
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Some(DataValue::Double(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Some(DataValue::String(v.to_owned())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Some(DataValue::String(v)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(ValueSeed { key: self.key })? {
            match item {
                Some(value) => items.push(value),
                None => {
                    return Err(de::Error::custom(format!(
                        "`{}`: null inside an array (a MaxMind DB has no null, and dropping it would shift the elements)",
                        self.key
                    )))
                }
            }
        }
        Ok(Some(DataValue::Array(items)))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut entries: Vec<(String, DataValue)> = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            if entries.iter().any(|(k, _)| *k == key) {
                return Err(de::Error::custom(format!(
                    "key `{key}` appears twice in one object"
                )));
            }
            if let Some(value) = map.next_value_seed(ValueSeed { key: &key })? {
                entries.push((key, value));
            }
        }
        Ok(Some(DataValue::Map(entries)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use DataValue::*;

    fn file(name: &str, bytes: &[u8]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        (dir, path)
    }

    fn read(name: &str, format: Format, bytes: &[u8]) -> Result<Vec<InputRecord>, InputError> {
        let (_dir, path) = file(name, bytes);
        let mut records = Vec::new();
        let n = read_records(&path, format, &mut |r| {
            records.push(r);
            Ok(())
        })?;
        assert_eq!(n, records.len() as u64);
        Ok(records)
    }

    fn ok(name: &str, format: Format, text: &str) -> Vec<InputRecord> {
        read(name, format, text.as_bytes()).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The error, with the file name reduced to its last component for comparisons.
    fn err(name: &str, format: Format, bytes: &[u8]) -> InputError {
        let mut e = read(name, format, bytes).expect_err("expected an error");
        e.file = PathBuf::from(e.file.file_name().unwrap());
        e
    }

    fn rec(entry: &str, data: Vec<(&str, DataValue)>, line: u64) -> InputRecord {
        InputRecord {
            entry: entry.to_owned(),
            data: Map(data.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()),
            line,
        }
    }

    fn s(v: &str) -> DataValue {
        String(v.to_owned())
    }

    // ------------------------------------------------------------------ errors and detection

    #[test]
    fn error_display_has_file_line_column() {
        let e = |line, column| InputError {
            file: PathBuf::from("feed.csv"),
            line,
            column,
            what: "bad".into(),
        };
        assert_eq!(e(Some(12), Some(5)).to_string(), "feed.csv:12:5: bad");
        assert_eq!(e(Some(12), None).to_string(), "feed.csv:12: bad");
        assert_eq!(e(None, None).to_string(), "feed.csv: bad");
    }

    #[test]
    fn detects_by_extension_case_insensitively() {
        let cases = [
            ("a.csv", Format::Csv),
            ("a.CSV", Format::Csv),
            ("a.json", Format::Json),
            ("a.jsonl", Format::Jsonl),
            ("a.ndjson", Format::Jsonl),
            ("a.txt", Format::Text),
            ("a.text", Format::Text),
            ("a.list", Format::Text),
            ("a.LST", Format::Text),
        ];
        for (name, format) in cases {
            // The content says otherwise: the extension wins.
            assert_eq!(
                detect_format(Path::new(name), b"[1]").unwrap(),
                format,
                "{name}"
            );
        }
    }

    #[test]
    fn detects_by_content_without_a_known_extension() {
        let d = |head: &[u8]| detect_format(Path::new("feed"), head).unwrap();
        assert_eq!(d(b"  \n [{\"entry\": \"a\"}]"), Format::Json);
        assert_eq!(d(b"{\"entry\": \"a\"}\n"), Format::Jsonl);
        assert_eq!(d(b"\xEF\xBB\xBF{\"entry\": \"a\"}\n"), Format::Jsonl);
        assert_eq!(d(b"entry,category\na.com,x\n"), Format::Csv);
        assert_eq!(d(b"score,\"Key\"\n1,a.com\n"), Format::Csv);
        assert_eq!(d(b"a.com\n*.b.com\n"), Format::Text);
        assert_eq!(d(b"a,b\n"), Format::Text);
        assert_eq!(d(b"entry\na.com\n"), Format::Text);
        assert_eq!(d(b""), Format::Text);
        assert_eq!(
            detect_format(Path::new("feed.dat"), b"key,x\n").unwrap(),
            Format::Csv
        );
    }

    #[test]
    fn refuses_databases_compressed_and_binary_files() {
        let refused = [
            ("feed.mmdb", &b"whatever"[..]),
            ("feed.txt", b"\x1F\x8B\x08\x00"),
            ("feed.csv", b"PK\x03\x04rest"),
            ("feed", b"abc\x00def"),
            ("feed.txt", b"\x00\x00\x00\x10\xAB\xCD\xEFMaxMind.com\xe0"),
        ];
        for (name, head) in refused {
            assert!(detect_format(Path::new(name), head).is_err(), "{name}");
        }
        let (_dir, path) = file("x.bin", b"\x1F\x8B\x08\x00");
        let e = detect_file_format(&path).unwrap_err();
        assert!(e.what.contains("gzip"), "{e}");
    }

    #[test]
    fn missing_file_is_an_error_naming_it() {
        let e = read_records(
            Path::new("/nonexistent/feed.txt"),
            Format::Text,
            &mut |_| Ok(()),
        )
        .unwrap_err();
        assert!(e.to_string().starts_with("/nonexistent/feed.txt: "), "{e}");
    }

    // ------------------------------------------------------------------ CSV cell typing

    #[test]
    fn csv_integers_take_the_smallest_fitting_type() {
        assert_eq!(typed_cell("0"), Some(Uint32(0)));
        assert_eq!(typed_cell("4294967295"), Some(Uint32(u32::MAX)));
        assert_eq!(typed_cell("4294967296"), Some(Uint64(1 << 32)));
        assert_eq!(typed_cell("18446744073709551615"), Some(Uint64(u64::MAX)));
        assert_eq!(
            typed_cell("18446744073709551616"),
            Some(Uint128(u64::MAX as u128 + 1))
        );
        assert_eq!(
            typed_cell("340282366920938463463374607431768211455"),
            Some(Uint128(u128::MAX))
        );
        assert_eq!(typed_cell("-1"), Some(Int32(-1)));
        assert_eq!(typed_cell("-2147483648"), Some(Int32(i32::MIN)));
        assert_eq!(typed_cell("-0"), Some(Int32(0)));
    }

    #[test]
    fn csv_integers_beyond_mmdb_types_never_lose_digits() {
        // Exactly representable as a double -> double.
        assert_eq!(typed_cell("-2147483649"), Some(Double(-2147483649.0)));
        assert_eq!(typed_cell("-4294967296"), Some(Double(-4294967296.0)));
        assert_eq!(
            typed_cell("340282366920938463463374607431768211456"),
            Some(Double(2f64.powi(128)))
        );
        // Not representable -> kept as the string.
        assert_eq!(
            typed_cell("-9007199254740993"),
            Some(s("-9007199254740993"))
        );
        assert_eq!(
            typed_cell("340282366920938463463374607431768211457"),
            Some(s("340282366920938463463374607431768211457"))
        );
        let huge = "9".repeat(400);
        assert_eq!(typed_cell(&huge), Some(s(&huge)));
    }

    #[test]
    fn csv_other_cells() {
        assert_eq!(typed_cell(""), None);
        assert_eq!(typed_cell("1.5"), Some(Double(1.5)));
        assert_eq!(typed_cell("-0.25"), Some(Double(-0.25)));
        assert_eq!(typed_cell("1e6"), Some(Double(1e6)));
        assert_eq!(typed_cell("2.5E-3"), Some(Double(2.5e-3)));
        assert_eq!(typed_cell("true"), Some(Bool(true)));
        assert_eq!(typed_cell("FALSE"), Some(Bool(false)));
        assert_eq!(typed_cell("True"), Some(Bool(true)));
        for text in [
            "007", "-01", "+5", "1.", ".5", "1.2.3", "1e", "1e400", "inf", "NaN", "0x10", "abc",
            "1,000", "10.0.0.1", "yes",
        ] {
            assert_eq!(typed_cell(text), Some(s(text)), "{text}");
        }
    }

    // ------------------------------------------------------------------ CSV files

    #[test]
    fn csv_rows_become_typed_maps_in_column_order() {
        let got = ok(
            "f.csv",
            Format::Csv,
            "score,entry,category,active,note\n90,evil.com,malware,true,\n-3, 10.0.0.0/8 ,,FALSE,\"a, b\"\n",
        );
        assert_eq!(
            got,
            vec![
                rec(
                    "evil.com",
                    vec![
                        ("score", Uint32(90)),
                        ("category", s("malware")),
                        ("active", Bool(true))
                    ],
                    2
                ),
                rec(
                    "10.0.0.0/8",
                    vec![
                        ("score", Int32(-3)),
                        ("active", Bool(false)),
                        ("note", s("a, b"))
                    ],
                    3
                ),
            ]
        );
    }

    #[test]
    fn csv_key_column_bom_crlf_and_multiline_cells() {
        let got = ok(
            "f.csv",
            Format::Csv,
            "\u{FEFF}Key,desc\r\n*.a.com,\"two\nlines\"\r\n\r\nb.com,x\r\n",
        );
        assert_eq!(
            got,
            vec![
                rec("*.a.com", vec![("desc", s("two\nlines"))], 2),
                rec("b.com", vec![("desc", s("x"))], 5)
            ]
        );
        let only_entry = ok("f.csv", Format::Csv, "entry\na.com\n");
        assert_eq!(only_entry, vec![rec("a.com", vec![], 2)]);
    }

    #[test]
    fn csv_line_numbers_are_exact_with_blank_lines_crlf_and_big_files() {
        let lines = |text: &str| -> Vec<u64> {
            ok("f.csv", Format::Csv, text)
                .iter()
                .map(|r| r.line)
                .collect()
        };
        assert_eq!(lines("\n\nentry\n\n\na\nb\n\n\nc"), vec![6, 7, 10]);
        assert_eq!(lines("entry\r\n\r\na\r\nb\r\n\r\n\r\nc\r\n"), vec![3, 4, 7]);
        assert_eq!(
            lines("entry,x\n\"a\",\"\n\n\"\n\nb,\"\r\n\"\nc,1"),
            vec![2, 6, 8]
        );
        // Lines far past the parser's read-ahead buffer.
        let mut text = std::string::String::from("entry,pad\r\n");
        for i in 0..20_000 {
            text.push_str(&format!("e{i}.com,{}\r\n", "x".repeat(i % 7)));
            if i % 1000 == 0 {
                text.push_str("\r\n");
            }
        }
        let got = lines(&text);
        assert_eq!(got.len(), 20_000);
        assert_eq!(got[0], 2);
        assert_eq!(got[1], 4);
        assert_eq!(got[19_999], 20_000 + 20 + 1);
        // Errors point at the bad row, not at the end of the previous one.
        let e = err("f.csv", Format::Csv, b"entry,a\r\nx,1\r\n\r\n\r\ny,1,2\r\n");
        assert_eq!(e.line, Some(5), "{e}");
        let e = err("f.csv", Format::Csv, b"\n\ndomain\n");
        assert_eq!(e.line, Some(3), "{e}");
    }

    #[test]
    fn csv_header_errors() {
        let e = err("f.csv", Format::Csv, b"domain,category\na.com,x\n");
        assert_eq!(e.line, Some(1));
        assert!(e.what.contains("no `entry`"), "{e}");
        let e = err("f.csv", Format::Csv, b"entry,key\na.com,b\n");
        assert!(e.what.contains("both"), "{e}");
        let e = err("f.csv", Format::Csv, b"entry,x,x\na.com,1,2\n");
        assert!(e.what.contains("twice"), "{e}");
        let e = err("f.csv", Format::Csv, b"entry,,x\na.com,1,2\n");
        assert!(e.what.contains("no name"), "{e}");
        let e = err("f.csv", Format::Csv, b"");
        assert!(e.what.contains("empty"), "{e}");
    }

    #[test]
    fn csv_row_errors_name_the_line() {
        let e = err("f.csv", Format::Csv, b"entry,a\nx.com,1\ny.com,1,2\n");
        assert_eq!(
            e.to_string(),
            "f.csv:3: row has 3 fields but the header has 2 columns"
        );
        let e = err("f.csv", Format::Csv, b"entry,a\nx.com\n");
        assert_eq!(e.line, Some(2));
        let e = err("f.csv", Format::Csv, b"entry,a\nx.com,1\n  ,2\n");
        assert_eq!(e.to_string(), "f.csv:3: empty entry");
        let e = err("f.csv", Format::Csv, b"entry,a\nx.com,1\ny.com,\xFF\n");
        assert_eq!(e.line, Some(3));
        assert!(e.what.contains("UTF-8") && e.what.contains("`a`"), "{e}");
    }

    // ------------------------------------------------------------------ text

    #[test]
    fn text_trims_and_skips_blank_and_comment_lines() {
        let got = ok(
            "f.txt",
            Format::Text,
            "# feed\n\n  evil.com  \r\n\t# indented comment\n*.bad.org\n[abc]*.com\n10.0.0.0/8",
        );
        assert_eq!(
            got,
            vec![
                rec("evil.com", vec![], 3),
                rec("*.bad.org", vec![], 5),
                rec("[abc]*.com", vec![], 6),
                rec("10.0.0.0/8", vec![], 7),
            ]
        );
    }

    #[test]
    fn text_refuses_csv_and_json_content() {
        let e = err("f.txt", Format::Text, b"# c\nentry,category\na.com,x\n");
        assert_eq!(e.line, Some(2));
        assert!(e.what.contains("--format csv"), "{e}");
        let e = err("f.txt", Format::Text, b"entry\tcategory\n");
        assert!(e.what.contains("tab"), "{e}");
        // A comma in a later line is just part of an entry.
        assert_eq!(ok("f.txt", Format::Text, "a.com\nkey,x\n").len(), 2);
        let e = err("f.txt", Format::Text, b"a.com\n{\"entry\": \"b.com\"}\n");
        assert_eq!(
            e.to_string(),
            "f.txt:2: line 2 looks like JSON, use --format jsonl or --format json"
        );
        let e = err("f.txt", Format::Text, b"[\"a\", \"b\"]\n");
        assert!(e.what.contains("looks like JSON"), "{e}");
    }

    #[test]
    fn text_invalid_utf8_names_line_and_column() {
        let e = err("f.txt", Format::Text, b"a.com\n\xC3\xA9x\xFFy\n");
        assert_eq!(e.to_string(), "f.txt:2:3: invalid UTF-8");
    }

    #[test]
    fn sink_errors_carry_the_record_line() {
        let (_dir, path) = file("f.txt", b"a.com\n\nb.com\n");
        let mut seen = 0;
        let e = read_records(&path, Format::Text, &mut |r| {
            seen += 1;
            if r.entry == "b.com" {
                Err("duplicate entry".into())
            } else {
                Ok(())
            }
        })
        .unwrap_err();
        assert_eq!(
            (seen, e.line, e.what.as_str()),
            (2, Some(3), "duplicate entry")
        );

        let (_dir, path) = file("f.json", b"[\n{\"entry\": \"a\"},\n\n  {\"entry\": \"b\"}]");
        let e = read_records(&path, Format::Json, &mut |r| {
            if r.entry == "b" {
                Err("nope".into())
            } else {
                Ok(())
            }
        })
        .unwrap_err();
        assert_eq!((e.line, e.column, e.what.as_str()), (Some(4), None, "nope"));
    }

    // ------------------------------------------------------------------ JSON

    const JSON_FEED: &str = r#"[
  {"entry": "evil.com", "data": {"score": 90, "big": 5000000000, "neg": -7, "ratio": 0.5,
                                  "ok": true, "tags": ["a", 1], "nested": {"x": null, "y": "z"},
                                  "gone": null}},
  {"key": "10.0.0.0/8"},
  {"entry": "*.bad.org", "data": null}
]"#;

    #[test]
    fn json_array_records_with_typed_data_and_lines() {
        let got = ok("f.json", Format::Json, JSON_FEED);
        assert_eq!(
            got,
            vec![
                rec(
                    "evil.com",
                    vec![
                        ("score", Uint32(90)),
                        ("big", Uint64(5_000_000_000)),
                        ("neg", Int32(-7)),
                        ("ratio", Double(0.5)),
                        ("ok", Bool(true)),
                        ("tags", Array(vec![s("a"), Uint32(1)])),
                        ("nested", Map(vec![("y".into(), s("z"))])),
                    ],
                    2
                ),
                rec("10.0.0.0/8", vec![], 5),
                rec("*.bad.org", vec![], 6),
            ]
        );
        assert_eq!(ok("f.json", Format::Json, " [ ] "), vec![]);
    }

    #[test]
    fn json_streams_records_before_a_later_error() {
        let mut text = std::string::String::from("[");
        for i in 0..1000 {
            text.push_str(&format!("{{\"entry\": \"e{i}.com\"}},\n"));
        }
        text.push_str("{\"entry\": 5}]");
        let (_dir, path) = file("f.json", text.as_bytes());
        let mut seen = 0;
        let e = read_records(&path, Format::Json, &mut |_| {
            seen += 1;
            Ok(())
        })
        .unwrap_err();
        assert_eq!(seen, 1000);
        assert_eq!(e.line, Some(1001));
        assert!(e.what.contains("expected a string"), "{e}");
    }

    #[test]
    fn json_errors_have_line_and_column() {
        let e = err(
            "f.json",
            Format::Json,
            b"[\n {\"entry\": \"a\"},\n {\"entry\": \"b\",}\n]",
        );
        assert_eq!((e.line, e.column), (Some(3), Some(16)), "{e}");
        assert!(
            e.to_string().starts_with("f.json:3:16: trailing comma"),
            "{e}"
        );

        let e = err(
            "f.json",
            Format::Json,
            b"[{\"entry\": \"a\", \"data\": {\"n\": -5000000000}}]",
        );
        assert_eq!(e.line, Some(1));
        assert!(e.column.is_some());
        assert!(
            e.what.contains("-5000000000") && e.what.contains("`n`"),
            "{e}"
        );

        let e = err(
            "f.json",
            Format::Json,
            b"[{\"entry\": \"a\", \"data\": [1]}]",
        );
        assert!(e.what.contains("must be an object"), "{e}");
        let e = err(
            "f.json",
            Format::Json,
            b"[{\"entry\": \"a\", \"data\": {\"t\": [1, null]}}]",
        );
        assert!(e.what.contains("null inside an array"), "{e}");
        let e = err(
            "f.json",
            Format::Json,
            b"[{\"entry\": \"a\", \"category\": \"x\"}]",
        );
        assert!(e.what.contains("unknown field `category`"), "{e}");
        let e = err("f.json", Format::Json, b"[{\"data\": {}}]");
        assert!(e.what.contains("no `entry`"), "{e}");
        let e = err(
            "f.json",
            Format::Json,
            b"[{\"entry\": \"a\", \"key\": \"b\"}]",
        );
        assert!(e.what.contains("both"), "{e}");
        let e = err(
            "f.json",
            Format::Json,
            b"[{\"entry\": \"a\", \"data\": {\"k\": 1, \"k\": 2}}]",
        );
        assert!(e.what.contains("twice"), "{e}");
        let e = err("f.json", Format::Json, b"[{\"entry\": \"  \"}]");
        assert!(e.what.contains("empty entry"), "{e}");
        let e = err("f.json", Format::Json, b"[\"a.com\"]");
        assert!(e.what.contains("expected an object"), "{e}");
        let e = err("f.json", Format::Json, b"[{\"entry\": \"a\"}] x");
        assert!(e.what.contains("trailing"), "{e}");
        let e = err("f.json", Format::Json, b"[{\"entry\": \"a\"}");
        assert!(e.what.contains("EOF"), "{e}");
        let e = err("f.json", Format::Json, b"[\n{\"entry\": \"a\xFF\"}]");
        assert_eq!(e.line, Some(2), "{e}");
    }

    #[test]
    fn json_explains_format_mixups() {
        let e = err(
            "f.json",
            Format::Json,
            b"\n\n{\"entry\": \"a\"}\n{\"entry\": \"b\"}\n",
        );
        assert_eq!(e.line, Some(3));
        assert!(e.what.contains("--format jsonl"), "{e}");
        let e = err("f.json", Format::Json, b"   ");
        assert!(e.what.contains("empty"), "{e}");
        let e = err("f.json", Format::Json, b"a.com\n");
        assert!(e.what.contains("expected a JSON array"), "{e}");
    }

    #[test]
    fn json_accepts_a_byte_order_mark() {
        let got = ok("f.json", Format::Json, "\u{FEFF}[{\"entry\": \"a\"}]");
        assert_eq!(got, vec![rec("a", vec![], 1)]);
    }

    // ------------------------------------------------------------------ JSON Lines

    #[test]
    fn jsonl_one_object_per_line() {
        let got = ok(
            "f.jsonl",
            Format::Jsonl,
            "{\"entry\": \"a.com\", \"data\": {\"s\": 1}}\n\n   \r\n{\"key\": \"b.com\"}\r\n{\"entry\":\"c\"}",
        );
        assert_eq!(
            got,
            vec![
                rec("a.com", vec![("s", Uint32(1))], 1),
                rec("b.com", vec![], 4),
                rec("c", vec![], 5),
            ]
        );
    }

    #[test]
    fn jsonl_errors_have_line_and_column() {
        let e = err(
            "f.jsonl",
            Format::Jsonl,
            b"{\"entry\": \"a\"}\n\n{\"entry\": \"b\" \"data\": {}}\n",
        );
        assert_eq!((e.line, e.column), (Some(3), Some(15)), "{e}");
        let e = err(
            "f.jsonl",
            Format::Jsonl,
            b"{\"entry\": \"a\"} {\"entry\": \"b\"}\n",
        );
        assert_eq!(e.line, Some(1));
        assert!(e.what.contains("trailing"), "{e}");
        let e = err(
            "f.jsonl",
            Format::Jsonl,
            b"{\"entry\": \"a\"}\n{\"entry\": \"\xFF\"}\n",
        );
        assert_eq!((e.line, e.column), (Some(2), Some(12)), "{e}");
        let e = err("f.jsonl", Format::Jsonl, b"{\"entry\": \"a\"}\n\"b.com\"\n");
        assert_eq!(e.line, Some(2));
        let e = err("f.jsonl", Format::Jsonl, b"\n [{\"entry\": \"a\"}]\n");
        assert_eq!(e.line, Some(2));
        assert!(e.what.contains("--format json"), "{e}");
    }
}
