//! End-to-end tests of the `matchy` binary: build from every input format, query, validate and
//! inspect, checking stdout, stderr and exit codes as a user (or a script) sees them.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::{json, Value};

const THREATS_CSV: &str = "\
entry,category,severity,score,confidence,active
1.2.3.4,c2,high,90,0.95,true
10.0.0.0/8,internal,low,10,1.0,false
10.1.0.0/16,lab,medium,,0.8,true
2001:db8::/32,documentation,low,5,1.0,false
evil.com,phishing,high,99,0.99,true
44d88612fea8a8f36de82e1278abb02f,malware,critical,100,1.0,true
*.evil.com,phishing,high,80,0.9,true
mal?ware[0-9].exe,malware,critical,95,0.85,true
";

struct Dir(tempfile::TempDir);

impl Dir {
    fn new() -> Dir {
        Dir(tempfile::tempdir().unwrap())
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.path().join(name)
    }

    fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, contents).unwrap();
        path
    }
}

fn matchy(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_matchy"))
        .args(args.iter().map(|a| a.as_ref()))
        .output()
        .unwrap()
}

fn matchy_stdin(args: &[&dyn AsRef<std::ffi::OsStr>], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_matchy"))
        .args(args.iter().map(|a| a.as_ref()))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

fn code(o: &Output) -> i32 {
    o.status.code().expect("exited normally")
}

/// Builds `inputs` into `out` with extra flags, asserting success.
fn build_ok(inputs: &[&Path], out: &Path, flags: &[&str]) -> Output {
    let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"build"];
    for input in inputs {
        args.push(input);
    }
    args.push(&"-o");
    args.push(&out);
    for flag in flags {
        args.push(flag);
    }
    let o = matchy(&args);
    assert_eq!(code(&o), 0, "build failed: {}", stderr(&o));
    o
}

/// The parsed JSON arrays `matchy query` printed, one per line.
fn query(db: &Path, queries: &[&str]) -> (i32, Vec<Value>) {
    let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"query", &db];
    for q in queries {
        args.push(q);
    }
    let o = matchy(&args);
    let answers = stdout(&o)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}")))
        .collect();
    (code(&o), answers)
}

fn threats_db(dir: &Dir) -> PathBuf {
    let csv = dir.write("threats.csv", THREATS_CSV);
    let db = dir.path("threats.mxy");
    build_ok(&[&csv], &db, &[]);
    db
}

#[test]
fn build_from_csv_and_query_every_kind() {
    let dir = Dir::new();
    let db = threats_db(&dir);

    let (exit, answers) = query(&db, &["10.1.2.3"]);
    assert_eq!(exit, 0);
    assert_eq!(
        answers,
        vec![json!([{"kind": "ip", "entry": "10.1.0.0/16", "data": {
            "category": "lab", "severity": "medium", "confidence": 0.8, "active": true}}])]
    );

    let (exit, answers) = query(&db, &["www.evil.com"]);
    assert_eq!(exit, 0);
    assert_eq!(
        answers,
        vec![json!([{"kind": "glob", "entry": "*.evil.com", "data": {
            "category": "phishing", "severity": "high", "score": 80, "confidence": 0.9,
            "active": true}}])]
    );

    let (_, answers) = query(&db, &["evil.com"]);
    assert_eq!(answers[0][0]["kind"], "literal");
    assert_eq!(answers[0][0]["data"]["score"], 99);
    let (_, answers) = query(&db, &["mal-ware7.exe"]);
    assert_eq!(answers[0][0]["entry"], "mal?ware[0-9].exe");
    let (_, answers) = query(&db, &["2001:db8::1"]);
    assert_eq!(answers[0][0]["entry"], "2001:db8::/32");
}

#[test]
fn query_misses_and_exit_codes() {
    let dir = Dir::new();
    let db = threats_db(&dir);

    let (exit, answers) = query(&db, &["nothing.example"]);
    assert_eq!((exit, answers), (1, vec![json!([])]));

    // One array per query, in order; exit 0 when any matched.
    let (exit, answers) = query(&db, &["nothing.example", "1.2.3.4", "EVIL.COM"]);
    assert_eq!(exit, 0);
    assert_eq!(answers.len(), 3);
    assert_eq!(answers[0], json!([]));
    assert_eq!(answers[1][0]["entry"], "1.2.3.4/32");
    assert_eq!(answers[2], json!([]), "case-sensitive by default");

    // Exactly the documented compact form.
    let o = matchy(&[&"query", &db, &"evil.com"]);
    assert_eq!(
        stdout(&o),
        "[{\"kind\":\"literal\",\"entry\":\"evil.com\",\"data\":{\"category\":\"phishing\",\
         \"severity\":\"high\",\"score\":99,\"confidence\":0.99,\"active\":true}}]\n"
    );

    // Errors: exit 2 with a message on stderr.
    let o = matchy(&[&"query", &dir.path("missing.mxy"), &"1.2.3.4"]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("missing.mxy"), "{}", stderr(&o));
    let o = matchy(&[&"query", &dir.path("threats.csv"), &"1.2.3.4"]);
    assert_eq!(code(&o), 2);
    let o = matchy(&[&"query", &db]);
    assert_eq!(code(&o), 2, "no QUERY is a usage error");
}

#[test]
fn query_pretty_and_stdin() {
    let dir = Dir::new();
    let db = threats_db(&dir);
    let compact = matchy(&[&"query", &db, &"www.evil.com"]);
    let pretty = matchy(&[&"query", &db, &"www.evil.com", &"--pretty"]);
    assert!(stdout(&pretty).lines().count() > 3);
    let a: Value = serde_json::from_str(&stdout(&compact)).unwrap();
    let b: Value = serde_json::from_str(&stdout(&pretty)).unwrap();
    assert_eq!(a, b);

    let o = matchy_stdin(
        &[&"query", &db, &"-"],
        "1.2.3.4\r\nnothing.example\n\nwww.evil.com\n",
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let lines: Vec<Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4);
    assert_eq!(lines[0][0]["entry"], "1.2.3.4/32");
    assert_eq!(lines[1], json!([]));
    assert_eq!(lines[2], json!([]));
    assert_eq!(lines[3][0]["entry"], "*.evil.com");

    let o = matchy_stdin(&[&"query", &db, &"-"], "nothing.example\n");
    assert_eq!((code(&o), stdout(&o).as_str()), (1, "[]\n"));
}

#[test]
fn build_from_json_jsonl_and_text() {
    let dir = Dir::new();
    let json_feed = dir.write(
        "feed.json",
        r#"[
  {"entry": "203.0.113.0/24", "data": {"asn": 64500, "tags": ["ssh", "telnet"], "big": 5000000000}},
  {"key": "bad.example.org", "data": {"first_seen": 1700000000, "neg": -5, "x": null}},
  {"entry": "*.bad.example.org"}
]"#,
    );
    let jsonl_feed = dir.write(
        "feed.jsonl",
        "{\"entry\": \"198.51.100.0/24\", \"data\": {\"category\": \"scanner\"}}\n\n\
         {\"entry\": \"phish.example\"}\n",
    );
    let text_feed = dir.write(
        "domains.txt",
        "# blocklist\nevil.net\n  *.tracker.example  \n192.0.2.1\n",
    );
    // Formats are told apart by content when the extension says nothing.
    let no_extension = dir.write("feed", "literal:*.txt\nglob:lit[eral]\n");

    let db = dir.path("all.mxy");
    let o = build_ok(
        &[&json_feed, &jsonl_feed, &text_feed, &no_extension],
        &db,
        &["--json"],
    );
    let summary: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(summary["entries"], 10);
    assert_eq!(summary["ip"], 3);
    assert_eq!(summary["glob"], 3);
    assert_eq!(summary["literal"], 4);
    assert_eq!(summary["inputs"][0]["format"], "json");
    assert_eq!(summary["inputs"][1]["format"], "jsonl");
    assert_eq!(summary["inputs"][2]["format"], "text");
    assert_eq!(summary["inputs"][3]["format"], "text");
    assert!(summary["file_size"].as_u64().unwrap() > 0);

    let (exit, answers) = query(
        &db,
        &[
            "203.0.113.9",
            "bad.example.org",
            "x.bad.example.org",
            "198.51.100.1",
            "phish.example",
            "evil.net",
            "a.tracker.example",
            "192.0.2.1",
            "*.txt",
            "lite",
        ],
    );
    assert_eq!(exit, 0);
    assert_eq!(
        answers[0][0]["data"],
        json!({"asn": 64500, "tags": ["ssh", "telnet"], "big": 5000000000u64})
    );
    assert_eq!(
        answers[1][0]["data"],
        json!({"first_seen": 1700000000, "neg": -5})
    );
    assert_eq!(answers[2][0]["entry"], "*.bad.example.org");
    assert_eq!(answers[2][0]["data"], json!({}));
    for (i, answer) in answers.iter().enumerate() {
        assert_eq!(answer.as_array().unwrap().len(), 1, "query #{i}: {answer}");
    }
    assert_eq!(answers[8][0]["kind"], "literal");
    assert_eq!(answers[9][0]["kind"], "glob");
}

#[test]
fn build_options_case_insensitive_duplicates_and_metadata() {
    let dir = Dir::new();
    let feed = dir.write("feed.csv", "entry,v\nEvil.COM,1\n*.Bad.org,2\nevil.com,3\n");
    let db = dir.path("f.mxy");

    // Case-insensitively the first and last rows are the same literal: an error by default.
    let o = matchy(&[&"build", &feed, &"-o", &db, &"--case-insensitive"]);
    assert_eq!(code(&o), 1);
    let both = format!("{}:2 and {}:4", feed.display(), feed.display());
    assert!(stderr(&o).contains(&both), "{}", stderr(&o));
    assert!(!db.exists());

    build_ok(
        &[&feed],
        &db,
        &[
            "--case-insensitive",
            "--on-duplicate",
            "last",
            "--database-type",
            "acme-threats",
            "--description",
            "ACME feed",
        ],
    );
    let (_, answers) = query(&db, &["EVIL.com", "x.bad.ORG"]);
    assert_eq!(answers[0][0]["data"]["v"], 3);
    assert_eq!(answers[1][0]["data"]["v"], 2);

    let o = matchy(&[&"inspect", &db, &"--json"]);
    assert_eq!(code(&o), 0);
    let info: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(info["database_type"], "acme-threats");
    assert_eq!(info["description"]["en"], "ACME feed");
    assert_eq!(info["match_mode"], "case_insensitive");

    build_ok(&[&feed], &db, &["--on-duplicate", "first"]);
    let (_, answers) = query(&db, &["evil.com", "Evil.COM"]);
    assert_eq!(
        answers[0][0]["data"]["v"], 3,
        "case-sensitive: distinct literals"
    );
    assert_eq!(answers[1][0]["data"]["v"], 1);
}

#[test]
fn duplicates_across_files_name_both_files() {
    let dir = Dir::new();
    let a = dir.write("a.txt", "x.com\ny.com\n");
    let b = dir.write("b.txt", "# other\nz.com\ny.com\n");
    let db = dir.path("f.mxy");
    let o = matchy(&[&"build", &a, &b, &"-o", &db]);
    assert_eq!(code(&o), 1);
    let err = stderr(&o);
    assert!(
        err.contains("a.txt:2 and ") && err.contains("b.txt:3"),
        "{err}"
    );
    assert!(!db.exists());
}

#[test]
fn input_errors_name_file_line_and_column() {
    let dir = Dir::new();
    let db = dir.path("out.mxy");
    let cases = [
        ("rows.csv", "entry,a\nx.com,1\ny.com,1,2\n", "rows.csv:3: "),
        (
            "empty.csv",
            "entry,a\nx.com,1\n ,2\n",
            "empty.csv:3: empty entry",
        ),
        (
            "bad.json",
            "[\n{\"entry\": \"a\"},\n{\"entry\": \"b\",}\n]",
            "bad.json:3:15: ",
        ),
        (
            "bad.jsonl",
            "{\"entry\": \"a\"}\n{\"entry\" \"b\"}\n",
            "bad.jsonl:2:10: ",
        ),
        ("csvish.txt", "entry,category\na,b\n", "csvish.txt:1: "),
        ("utf8.txt", "a.com\nb\u{e9}\u{0}", "utf8.txt"),
    ];
    for (name, contents, expected) in cases {
        let feed = dir.write(name, contents);
        let o = matchy(&[&"build", &feed, &"-o", &db]);
        assert_eq!(code(&o), 1, "{name}");
        let err = stderr(&o);
        assert!(
            err.starts_with(&format!("{}", dir.path(expected).display())),
            "{name}: {err}"
        );
        assert!(!db.exists(), "{name}");
    }
    // A bad entry, reported by the builder, is placed the same way.
    let feed = dir.write("glob.txt", "ok.com\n\nglob:[unclosed\n");
    let o = matchy(&[&"build", &feed, &"-o", &db]);
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).starts_with(&format!("{}:3: ", feed.display())),
        "{}",
        stderr(&o)
    );
    // Invalid UTF-8 is named with its line.
    let feed = dir.path("bytes.txt");
    std::fs::write(&feed, b"a.com\nb\xFF.com\n").unwrap();
    let o = matchy(&[&"build", &feed, &"-o", &db]);
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).starts_with(&format!("{}:2:2: invalid UTF-8", feed.display())),
        "{}",
        stderr(&o)
    );
}

#[test]
fn failed_build_leaves_the_existing_output_untouched() {
    let dir = Dir::new();
    let db = threats_db(&dir);
    let before = std::fs::read(&db).unwrap();

    let bad = dir.write("bad.csv", "entry,a\nx.com,1\ny.com\n");
    let o = matchy(&[&"build", &bad, &"-o", &db]);
    assert_eq!(code(&o), 1);
    assert_eq!(std::fs::read(&db).unwrap(), before);

    let dup = dir.write("dup.txt", "x.com\nx.com\n");
    let o = matchy(&[&"build", &dup, &"-o", &db]);
    assert_eq!(code(&o), 1);
    assert_eq!(std::fs::read(&db).unwrap(), before);

    let o = matchy(&[&"build", &dir.path("missing.csv"), &"-o", &db]);
    assert_eq!(code(&o), 1);
    assert_eq!(std::fs::read(&db).unwrap(), before);

    // Writing the database over its own input is refused.
    let feed = dir.path("threats.csv");
    let o = matchy(&[&"build", &feed, &"-o", &feed]);
    assert_eq!(code(&o), 1);
    assert_eq!(std::fs::read_to_string(&feed).unwrap(), THREATS_CSV);

    // No temporary files are left behind.
    let names: Vec<String> = std::fs::read_dir(dir.0.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.contains("tmp")), "{names:?}");
}

#[test]
fn build_summary_text() {
    let dir = Dir::new();
    let csv = dir.write("threats.csv", THREATS_CSV);
    let o = build_ok(&[&csv], &dir.path("t.mxy"), &[]);
    let text = stdout(&o);
    assert!(
        text.contains("8 entries (ip 4, literal 2, glob 2) from 8 records in 1 file"),
        "{text}"
    );
    assert_eq!(text.lines().count(), 1);
}

#[test]
fn validate_exit_codes() {
    let dir = Dir::new();
    let db = threats_db(&dir);

    for level in ["standard", "strict"] {
        let o = matchy(&[&"validate", &db, &"--level", &level]);
        assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
        assert!(stdout(&o).starts_with("ok: "), "{}", stdout(&o));
    }
    let o = matchy(&[&"validate", &db, &"--json"]);
    assert_eq!(code(&o), 0);
    let report: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(report["valid"], true);
    assert_eq!(report["level"], "strict");
    assert_eq!(report["errors"], json!([]));

    let bytes = std::fs::read(&db).unwrap();
    let truncated = dir.path("truncated.mxy");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let garbage = dir.write("garbage.mxy", "this is not a database at all\n");
    let flipped = dir.path("flipped.mxy");
    let mut damaged = bytes.clone();
    damaged[bytes.len() / 3] ^= 0x55;
    std::fs::write(&flipped, &damaged).unwrap();
    for bad in [&truncated, &garbage, &flipped, &dir.path("missing.mxy")] {
        let o = matchy(&[&"validate", bad]);
        assert_eq!(code(&o), 1, "{}: {}", bad.display(), stdout(&o));
        assert!(stdout(&o).contains("invalid"), "{}", stdout(&o));
        let o = matchy(&[&"validate", bad, &"--json"]);
        assert_eq!(code(&o), 1);
        let report: Value = serde_json::from_str(&stdout(&o)).unwrap();
        assert_eq!(report["valid"], false);
        assert!(!report["errors"].as_array().unwrap().is_empty());
    }
    let o = matchy(&[&"validate", &db, &"--level", &"paranoid"]);
    assert_eq!(code(&o), 2);
}

#[test]
fn inspect_json_and_table() {
    let dir = Dir::new();
    let db = threats_db(&dir);
    let o = matchy(&[&"inspect", &db, &"--json"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let info: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(info["format"], "matchy");
    assert_eq!(info["ip_count"], 4);
    assert_eq!(info["literal_count"], 2);
    assert_eq!(info["glob_count"], 2);
    assert_eq!(info["ip_version"], 6);
    assert_eq!(info["match_mode"], "case_sensitive");
    assert_eq!(
        info["file_size"].as_u64().unwrap(),
        std::fs::metadata(&db).unwrap().len()
    );
    assert!(!info["sections"].as_array().unwrap().is_empty());

    let o = matchy(&[&"inspect", &db]);
    assert_eq!(code(&o), 0);
    let table = stdout(&o);
    assert!(
        table.contains("format") && table.contains("matchy"),
        "{table}"
    );
    assert!(table.contains("literals"), "{table}");

    let o = matchy(&[&"inspect", &dir.path("threats.csv")]);
    assert_eq!(code(&o), 1);
}

#[test]
fn help_explains_formats_and_exit_codes() {
    for command in ["build", "validate", "query", "inspect"] {
        let o = matchy(&[&command, &"--help"]);
        assert_eq!(code(&o), 0);
        let help = stdout(&o);
        assert!(help.contains("Exit codes"), "{command}: {help}");
        assert!(help.contains("Examples"), "{command}: {help}");
    }
    let o = matchy(&[&"build", &"--help"]);
    let help = stdout(&o);
    for word in [
        "csv",
        "jsonl",
        "uint64",
        "--on-duplicate",
        "--case-insensitive",
    ] {
        assert!(help.contains(word), "{word}");
    }
    let o = matchy(&[&"frobnicate"]);
    assert_eq!(code(&o), 2);
}

#[test]
fn format_flag_overrides_detection() {
    let dir = Dir::new();
    let db = dir.path("f.mxy");
    let feed = dir.write("feed.dat", "key,score\nevil.com,7\n");
    build_ok(&[&feed], &db, &["--format", "csv"]);
    let (_, answers) = query(&db, &["evil.com"]);
    assert_eq!(answers[0][0]["data"], json!({"score": 7}));

    // Forced to text, a CSV file is refused rather than built into nonsense.
    let o = matchy(&[&"build", &feed, &"-o", &db, &"--format", &"text"]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("--format csv"), "{}", stderr(&o));
    let o = matchy(&[&"build", &feed, &"-o", &db, &"--format", &"yaml"]);
    assert_eq!(code(&o), 2);
}

#[test]
fn empty_input_builds_an_empty_database_with_a_warning() {
    let dir = Dir::new();
    let feed = dir.write("empty.txt", "# nothing yet\n\n");
    let db = dir.path("e.mxy");
    let o = build_ok(&[&feed], &db, &[]);
    assert!(stderr(&o).contains("warning"), "{}", stderr(&o));
    let (exit, answers) = query(&db, &["1.2.3.4", "a.com"]);
    assert_eq!((exit, answers), (1, vec![json!([]), json!([])]));
    assert_eq!(code(&matchy(&[&"validate", &db])), 0);
}

#[test]
fn plain_maxmind_db_files_work_too() {
    let mmdb = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/data/maxmind-db/test-data/GeoIP2-City-Test.mmdb");
    let (exit, answers) = query(&mmdb, &["81.2.69.142", "not-an-ip"]);
    assert_eq!(exit, 0);
    assert_eq!(answers[0][0]["kind"], "ip");
    assert_eq!(answers[0][0]["data"]["country"]["iso_code"], "GB");
    assert_eq!(answers[1], json!([]));

    let o = matchy(&[&"inspect", &mmdb, &"--json"]);
    let info: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(info["format"], "mmdb");
    assert_eq!(info["database_type"], "GeoIP2-City");
    assert_eq!(info["literal_count"], Value::Null);

    let o = matchy(&[&"validate", &mmdb]);
    assert_eq!(code(&o), 0, "{}", stdout(&o));
}
