//! `matchy`, the command-line tool: build databases from feeds, validate, query and inspect them.
//! This file owns the command-line surface (every command, flag and help text) and the exit codes;
//! each command lives in its own module, feed parsing in `input`.

mod build;
mod input;
mod inspect;
mod output;
mod query;
mod validate;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Exit code: success (for `query`: at least one query matched; for `validate`: the file is valid).
pub const EXIT_OK: u8 = 0;
/// Exit code: the command ran and the answer is "no" or the input was bad (no match, invalid
/// database, input error).
pub const EXIT_FAIL: u8 = 1;
/// Exit code: the command could not run (usage error; for `query`, any error).
pub const EXIT_ERROR: u8 = 2;

#[derive(Parser)]
#[command(
    name = "matchy",
    version,
    about = "Build, validate, query and inspect matchy databases",
    long_about = "Build, validate, query and inspect matchy databases.\n\n\
        A matchy database is one memory-mapped file that answers three questions at once: which \
        IP network (IPv4/IPv6, longest prefix) holds an address, which exact strings (domains, \
        hashes, e-mail addresses) equal a query, and which glob patterns (*.evil.com, \
        mal?ware[0-9].exe) match it. Every entry carries typed data. The file is a valid MaxMind \
        DB (.mmdb): mmdblookup and MaxMind DB libraries answer its IP queries, and matchy opens \
        standard .mmdb files (GeoLite2 and others) too.",
    after_long_help = "Exit codes: 0 success; 1 a negative answer or bad input (no match, invalid \
        database, input error); 2 usage error (and, for `query`, any error).\n\n\
        Examples:\n  \
        matchy build threats.csv -o threats.mxy\n  \
        matchy validate threats.mxy\n  \
        matchy query threats.mxy 10.1.2.3 www.evil.com\n  \
        matchy inspect threats.mxy\n\n\
        Run `matchy help COMMAND` for each command's formats and options."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Build(BuildArgs),
    Validate(ValidateArgs),
    Query(QueryArgs),
    Inspect(InspectArgs),
}

/// Build a database from feed files (CSV, JSON, JSON Lines or text).
#[derive(Args)]
#[command(
    long_about = "Build a database from one or more feed files.\n\n\
        Each entry is an IP address or CIDR network (10.0.0.0/8, 2001:db8::/32), an exact string \
        (a literal: evil.com, a hash, an e-mail address) or a glob pattern (*.evil.com, \
        mal?ware[0-9].exe). The kind is detected: a valid IP or CIDR is an IP entry, text with an \
        unescaped *, ? or [ that parses as a glob is a glob, anything else is a literal. Prefix \
        ip:, literal: or glob: to force a kind (literal:*.txt is the literal string \"*.txt\").\n\n\
        Glob syntax: * any run of characters (crosses . and /), ? one character, [abc], [a-z], \
        [!a-z] or [^a-z], \\ escapes the next character; a glob matches the whole query.\n\n\
        Input formats (--format auto picks by extension, then by content):\n\
        \n  csv    (.csv) A header row with an `entry` (or `key`) column; every other column \
        becomes a field of the entry's data, typed per cell: integers without leading zeros keep \
        their full range in the smallest fitting type (0..=4294967295 uint32, up to 2^64-1 \
        uint64, up to 2^128-1 uint128, negative numbers down to -2147483648 int32); other \
        integers become a double only when a double holds them exactly and stay strings \
        otherwise, so no digit is lost; decimals (1.5, -0.25, 1e6) become doubles; true/false \
        (any case) booleans; empty cells are left out; anything else (007, +5, 1.2.3) is a \
        string. Leading/trailing spaces of cells are ignored. Every row needs as many fields as \
        the header.\
        \n  json   (.json) One array: [{\"entry\": \"evil.com\", \"data\": {\"score\": 90}}, ...]. \
        `key` may stand for `entry`; `data` is optional and must be an object. The array is \
        read element by element, so files of any size stream. Numbers: non-negative integers \
        uint32 or uint64 (smallest fitting); negative integers int32 (smaller ones are an error: \
        write them as strings or decimals); decimals doubles. null fields are left out (null \
        inside an array is an error); arrays and objects nest.\
        \n  jsonl  (.jsonl, .ndjson) One such object per line; blank lines are skipped.\
        \n  text   (.txt, .text, .list, .lst) One entry per line, no data; surrounding spaces are \
        trimmed, blank lines and lines starting with # are skipped. A first line that looks \
        like a CSV header, or any line that is a JSON object or array, is an error (pick the \
        right --format instead of building a wrong database).\n\n\
        Without a known extension: a file starting with [ is json, with { jsonl, a first line \
        with a comma and an entry/key column csv, anything else text. A UTF-8 byte-order mark is \
        skipped; invalid UTF-8 is an error.\n\n\
        Errors name the place as FILE:LINE[:COLUMN]: message, and nothing is written: the output \
        is replaced atomically (temporary file, sync, rename) only after a complete build, so a \
        failed build leaves an existing output file untouched.\n\n\
        Exit codes: 0 built; 1 input or build error; 2 usage error.",
    after_long_help = "Examples:\n  \
        matchy build threats.csv -o threats.mxy\n  \
        matchy build domains.txt extra.jsonl -o blocklist.mxy --case-insensitive\n  \
        matchy build feed.dat --format csv -o feed.mxy --on-duplicate last\n  \
        matchy build feed.json -o feed.mxy --database-type acme-threats --description \"ACME threat feed\" --json"
)]
struct BuildArgs {
    /// Feed files, read in order (see --format)
    #[arg(value_name = "INPUT", required = true)]
    inputs: Vec<PathBuf>,

    /// The database file to write (replaced atomically)
    #[arg(short, long, value_name = "OUT")]
    output: PathBuf,

    /// Input format of every INPUT; `auto` decides per file by extension, then by content
    #[arg(long, value_enum, default_value_t = FormatArg::Auto)]
    format: FormatArg,

    /// Match literals and globs without regard to ASCII case (non-ASCII compares exactly);
    /// stored in the database, so queries fold the same way
    #[arg(long)]
    case_insensitive: bool,

    /// When the same network, literal or glob appears twice: `error` names both lines and
    /// writes nothing; `first` or `last` keeps that one's data
    #[arg(long, value_enum, default_value_t = DuplicateArg::Error, value_name = "POLICY")]
    on_duplicate: DuplicateArg,

    /// The database_type stored in the metadata (MaxMind DB readers show it)
    #[arg(long, value_name = "NAME")]
    database_type: Option<String>,

    /// An English description stored in the metadata
    #[arg(long, value_name = "TEXT")]
    description: Option<String>,

    /// Print the summary as one JSON object on stdout instead of a line of text
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum FormatArg {
    Auto,
    Csv,
    Json,
    Jsonl,
    Text,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum DuplicateArg {
    Error,
    First,
    Last,
}

/// Check a database file for damage.
#[derive(Args)]
#[command(
    long_about = "Check a database file (matchy or any MaxMind DB) for damage.\n\n\
        `standard` checks the metadata, every section's bounds and the checksums; `strict` also \
        walks every search-tree node, index entry and data value. Prints `ok` with a summary, or \
        each problem with the byte offset where it was found. Files that cannot be read at all \
        (missing, truncated, not a database) are invalid.\n\n\
        Exit codes: 0 valid; 1 invalid or unreadable; 2 usage error.",
    after_long_help = "Examples:\n  \
        matchy validate threats.mxy\n  \
        matchy validate GeoLite2-Country.mmdb --level standard\n  \
        matchy validate threats.mxy --json"
)]
struct ValidateArgs {
    /// The database file
    #[arg(value_name = "DB")]
    database: PathBuf,

    /// How deep to check
    #[arg(long, value_enum, default_value_t = LevelArg::Strict)]
    level: LevelArg,

    /// Print the report as one JSON object on stdout:
    /// {"file", "level", "valid", "errors": [{"offset", "what"}], "warnings": [...]}
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LevelArg {
    Standard,
    Strict,
}

/// Look up addresses and strings; prints one JSON array per query.
#[derive(Args)]
#[command(
    long_about = "Look up each QUERY and print one JSON array per query, one line each (with \
        --pretty, indented over several lines), one object per matching entry:\n\n  \
        [{\"kind\":\"glob\",\"entry\":\"*.evil.com\",\"data\":{\"category\":\"phishing\"}}]\n\n\
        `kind` is ip, literal or glob; `entry` is the network (10.0.0.0/8), the literal or the \
        glob as built; `data` is the entry's data. Matches come in a fixed order: the IP network \
        (longest prefix, when the query is an IP address), the exact literal, then every \
        matching glob in build order. A query without matches prints [].\n\n\
        QUERY `-` reads queries from standard input, one per line (line endings removed, an \
        empty line prints []), so `matchy query DB - < queries.txt` answers line by line.\n\n\
        Exit codes: 0 at least one query matched; 1 no query matched; 2 error (the database \
        cannot be opened, or a lookup failed: the message goes to stderr and no further queries \
        are answered).",
    after_long_help = "Examples:\n  \
        matchy query threats.mxy 10.1.2.3\n  \
        matchy query threats.mxy www.evil.com evil.com --pretty\n  \
        matchy query GeoLite2-Country.mmdb 8.8.8.8\n  \
        cut -d' ' -f1 access.log | matchy query threats.mxy -"
)]
struct QueryArgs {
    /// The database file (matchy or any MaxMind DB)
    #[arg(value_name = "DB")]
    database: PathBuf,

    /// IP addresses or strings to look up; `-` reads one query per line from stdin
    #[arg(value_name = "QUERY", required = true)]
    queries: Vec<String>,

    /// Indent the JSON output
    #[arg(long)]
    pretty: bool,
}

/// Show a database's metadata, entry counts, sections and sizes.
#[derive(Args)]
#[command(
    long_about = "Show what a database is: format (matchy, or mmdb for a plain MaxMind DB), \
        database type, descriptions, build time, IP version, record size, tree nodes, match \
        mode, entry counts per kind (unknown for plain .mmdb files), sizes, and every section \
        with its offset and length.\n\n\
        Exit codes: 0 shown; 1 the file cannot be opened as a database; 2 usage error.",
    after_long_help = "Examples:\n  \
        matchy inspect threats.mxy\n  \
        matchy inspect GeoLite2-Country.mmdb --json"
)]
struct InspectArgs {
    /// The database file
    #[arg(value_name = "DB")]
    database: PathBuf,

    /// Print one JSON object on stdout instead of a table
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Build(args) => build::run(args),
        Command::Validate(args) => validate::run(args),
        Command::Query(args) => query::run(args),
        Command::Inspect(args) => inspect::run(args),
    };
    ExitCode::from(code)
}
