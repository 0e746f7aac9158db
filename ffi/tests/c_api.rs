//! Drives the C and C++ tests in `ffi/tests/c` and `ffi/tests/cpp`: builds their databases with
//! the Rust API, compiles each program against `include/matchy.h` and the freshly built
//! `libmatchy.so` with `-Wall -Wextra -Werror -pedantic`, and runs it.
//!
//! Extra modes, for CI (skipped with a message otherwise):
//! - `MATCHY_FFI_SANITIZERS=1`: every program is also built with
//!   `-fsanitize=address,undefined` and run (leak detection on).
//! - `MATCHY_FFI_VALGRIND=1`: every program also runs under
//!   `valgrind --error-exitcode=1 --leak-check=full`.
//!
//! `CC` and `CXX` choose the compilers (default `gcc`, `g++`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use engine::{DataValue, DatabaseBuilder};

// Shared with benches/overhead.rs, which also reads its `PATH` (bench.c spells it in C).
#[path = "../benches/support/overhead_data.rs"]
#[allow(dead_code)]
mod overhead_data;

// ---------------------------------------------------------------------------------------------
// Test databases

fn map(pairs: Vec<(&str, DataValue)>) -> DataValue {
    DataValue::Map(pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
}

fn tagged(category: &str, version: &str) -> DataValue {
    map(vec![
        ("category", category.into()),
        ("version", version.into()),
    ])
}

/// The database the C tests know: `version` is "v1" or "v2" in every entry; v2 also changes
/// evil.com's category and adds the literal `new.example`.
fn build_threats(version: &str) -> Vec<u8> {
    let mut b = DatabaseBuilder::new();
    b.database_type("matchy-ffi-test")
        .description("en", "FFI test database")
        .build_epoch(1_700_000_000);
    b.add("10.0.0.0/8", tagged("internal", version)).unwrap();
    b.add(
        "1.2.3.0/24",
        map(vec![
            ("category", "botnet".into()),
            ("version", version.into()),
            (
                "country",
                map(vec![
                    ("iso_code", "US".into()),
                    ("names", map(vec![("en", "United States".into())])),
                ]),
            ),
        ]),
    )
    .unwrap();
    b.add("2001:db8::/32", tagged("v6net", version)).unwrap();
    b.add("literal:1.2.3.4", tagged("literal-ip", version))
        .unwrap();
    b.add("glob:1.2.3.*", tagged("glob-ip", version)).unwrap();
    let types = map(vec![
        ("s", "text".into()),
        ("d", 1.5f64.into()),
        ("b", DataValue::Bytes(vec![1, 2, 3])),
        ("eb", DataValue::Bytes(vec![])),
        ("u16", 65535u16.into()),
        ("u32", 4_000_000_000u32.into()),
        ("i32", (-42i32).into()),
        ("u64", u64::MAX.into()),
        ("u128", ((1u128 << 100) + 5).into()),
        ("t", true.into()),
        ("f", 0.25f32.into()),
        (
            "arr",
            DataValue::Array(vec![
                1u32.into(),
                "two".into(),
                DataValue::Array(vec![3u32.into()]),
            ]),
        ),
        ("em", map(vec![])),
        ("es", "".into()),
        // Deeper than one batch of path elements (`PATH_CHUNK` in ffi/src/result.rs).
        (
            "deep",
            (0..10).fold(DataValue::from("bottom"), |v, _| map(vec![("a", v)])),
        ),
    ]);
    let evil_category = if version == "v1" {
        "phishing"
    } else {
        "phishing-v2"
    };
    b.add(
        "evil.com",
        map(vec![
            ("category", evil_category.into()),
            ("version", version.into()),
            ("types", types),
        ]),
    )
    .unwrap();
    b.add("*.evil.com", tagged("phishing-glob", version))
        .unwrap();
    b.add("*.com", tagged("any-com", version)).unwrap();
    b.add("café.fr", tagged("utf8", version)).unwrap();
    if version != "v1" {
        b.add("new.example", tagged("new", version)).unwrap();
    }
    b.build().unwrap()
}

/// A temporary directory with every database the C tests use.
fn databases() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let v1 = build_threats("v1");
    std::fs::write(dir.path().join("threats.mxy"), &v1).unwrap();
    std::fs::write(dir.path().join("v2.mxy"), build_threats("v2")).unwrap();
    let mut b = DatabaseBuilder::new();
    b.add("10.0.0.0/8", tagged("internal", "v4")).unwrap();
    b.add("x", tagged("x", "v4")).unwrap();
    std::fs::write(dir.path().join("v4only.mxy"), b.build().unwrap()).unwrap();
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let garbage: Vec<u8> = (0..4096)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    std::fs::write(dir.path().join("garbage.mxy"), garbage).unwrap();
    std::fs::write(dir.path().join("truncated.mxy"), &v1[..v1.len() / 2]).unwrap();
    std::fs::write(dir.path().join("empty.mxy"), b"").unwrap();
    dir
}

// ---------------------------------------------------------------------------------------------
// Building and running C programs

fn ffi_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn include_dir() -> PathBuf {
    ffi_dir().join("../include")
}

/// The profile directory cargo built `libmatchy.so` into (this test runs from its `deps/`).
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().and_then(Path::parent).unwrap().to_path_buf()
}

/// Build `libmatchy.so` and `libmatchy.a` (once per test run and profile) and return the
/// directory they are in. `cargo test` builds only what Rust code links, and nothing links these:
/// without this step the C tests would run against a stale or missing library. `release` builds
/// the optimised library (for valgrind, which runs unoptimised Rust painfully slowly); otherwise
/// the profile these tests were built with.
fn build_library(release: bool) -> &'static Path {
    static BUILT: [OnceLock<PathBuf>; 2] = [OnceLock::new(), OnceLock::new()];
    BUILT[release as usize].get_or_init(|| {
        let own = profile_dir();
        let target_dir = own.parent().unwrap();
        let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cmd.args(["build", "--lib", "-p", "matchy-ffi", "--target-dir"])
            .arg(target_dir)
            .current_dir(ffi_dir());
        let profile = if release {
            "release".to_string()
        } else {
            own.file_name().unwrap().to_string_lossy().into_owned()
        };
        match profile.as_str() {
            "debug" => {}
            "release" => {
                cmd.arg("--release");
            }
            other => {
                cmd.args(["--profile", other]);
            }
        }
        let out = cmd.output().expect("run cargo build for matchy-ffi");
        assert!(
            out.status.success(),
            "building libmatchy failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        target_dir.join(profile)
    })
}

/// A directory where `-lmatchy` finds the library and the loader finds it under its soname
/// (`libmatchy.so.0.1`, which cargo does not create).
fn lib_dir(release: bool) -> &'static Path {
    static DIRS: [OnceLock<PathBuf>; 2] = [OnceLock::new(), OnceLock::new()];
    DIRS[release as usize].get_or_init(|| {
        let built = build_library(release).join("libmatchy.so");
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(if release {
            "matchy-ffi-lib-release"
        } else {
            "matchy-ffi-lib"
        });
        std::fs::create_dir_all(&dir).unwrap();
        for name in [
            "libmatchy.so".to_string(),
            format!("libmatchy.so.{}", soversion()),
        ] {
            let link = dir.join(&name);
            let tmp = dir.join(format!("{name}.{}.tmp", std::process::id()));
            let _ = std::fs::remove_file(&tmp);
            std::os::unix::fs::symlink(&built, &tmp).unwrap();
            std::fs::rename(&tmp, &link).unwrap();
        }
        dir
    })
}

fn soversion() -> String {
    let major = env!("CARGO_PKG_VERSION_MAJOR");
    if major == "0" {
        format!("0.{}", env!("CARGO_PKG_VERSION_MINOR"))
    } else {
        major.to_string()
    }
}

fn out_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("matchy-ffi-bin");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Plain,
    Sanitizers,
    Valgrind,
}

fn env_on(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| v == "1")
}

fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The modes to run in: always plain, plus the ones CI asks for.
fn modes() -> Vec<Mode> {
    let mut modes = vec![Mode::Plain];
    if env_on("MATCHY_FFI_SANITIZERS") {
        modes.push(Mode::Sanitizers);
    } else {
        eprintln!("skipping the AddressSanitizer+UBSan run: set MATCHY_FFI_SANITIZERS=1");
    }
    if env_on("MATCHY_FFI_VALGRIND") {
        assert!(
            have("valgrind"),
            "MATCHY_FFI_VALGRIND=1 but valgrind is not installed"
        );
        modes.push(Mode::Valgrind);
    } else {
        eprintln!("skipping the valgrind run: set MATCHY_FFI_VALGRIND=1");
    }
    modes
}

fn compiler(cpp: bool) -> String {
    let (var, default) = if cpp { ("CXX", "g++") } else { ("CC", "gcc") };
    std::env::var(var).unwrap_or_else(|_| default.to_string())
}

/// Compile `source` (relative to ffi/) for `mode` into an executable linked against
/// libmatchy.so (the release build for valgrind).
fn compile(source: &str, mode: Mode) -> PathBuf {
    let src = ffi_dir().join(source);
    let cpp = source.ends_with(".cpp");
    let stem = Path::new(source).file_stem().unwrap().to_string_lossy();
    let suffix = match mode {
        Mode::Plain => "",
        Mode::Sanitizers => "-asan",
        Mode::Valgrind => "-vg",
    };
    let exe = out_dir().join(format!("{stem}{suffix}"));
    let lib = lib_dir(mode == Mode::Valgrind);
    let mut cmd = Command::new(compiler(cpp));
    cmd.args(if cpp {
        &["-std=c++17"][..]
    } else {
        &["-std=c11", "-D_GNU_SOURCE"][..]
    })
    .args(["-Wall", "-Wextra", "-Werror", "-pedantic", "-O1", "-g"])
    .arg("-I")
    .arg(include_dir())
    .arg(&src)
    .arg("-o")
    .arg(&exe)
    .arg("-L")
    .arg(lib)
    .arg(format!("-Wl,-rpath,{}", lib.display()))
    .args(["-lmatchy", "-pthread"]);
    if mode == Mode::Sanitizers {
        cmd.args([
            "-fsanitize=address,undefined",
            "-fno-sanitize-recover=all",
            "-fno-omit-frame-pointer",
        ]);
    }
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run the compiler: {e}"));
    assert!(
        out.status.success(),
        "compiling {source} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    exe
}

/// Run a command, killing it after `limit`.
fn run_with_limit(cmd: &mut Command, limit: Duration) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    // Read the pipes on threads so a chatty child cannot block on a full pipe.
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut stdout, &mut v).ok();
        v
    });
    let t_err = std::thread::spawn(move || {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut stderr, &mut v).ok();
        v
    });
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: t_out.join().unwrap(),
        stderr: t_err.join().unwrap(),
    }
}

/// Compile `source` for `mode` and run it with `args`; panics with its output on failure.
/// Returns its stdout.
fn run_c(source: &str, mode: Mode, args: &[&str]) -> String {
    run_c_tuned(source, mode, args, "", &[])
}

/// `run_c` with extra `ASAN_OPTIONS` (sanitizer mode) or valgrind options (valgrind mode).
fn run_c_tuned(
    source: &str,
    mode: Mode,
    args: &[&str],
    asan_extra: &str,
    valgrind_extra: &[&str],
) -> String {
    let exe = compile(source, mode);
    let mut cmd = match mode {
        Mode::Valgrind => {
            let mut c = Command::new("valgrind");
            c.args(["--error-exitcode=1", "--leak-check=full", "--quiet"])
                .arg(format!(
                    "--suppressions={}",
                    ffi_dir().join("tests/valgrind.supp").display()
                ))
                .args(valgrind_extra)
                .arg(&exe);
            c
        }
        _ => Command::new(&exe),
    };
    cmd.args(args)
        // Leak checks on; stop at the first report of either sanitizer.
        .env(
            "ASAN_OPTIONS",
            format!("detect_leaks=1:abort_on_error=0:halt_on_error=1{asan_extra}"),
        )
        .env("UBSAN_OPTIONS", "halt_on_error=1:print_stacktrace=1");
    let limit = if mode == Mode::Valgrind {
        Duration::from_secs(900)
    } else {
        Duration::from_secs(300)
    };
    let out = run_with_limit(&mut cmd, limit);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{source} ({mode:?}) failed with {}\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status
    );
    if mode != Mode::Plain {
        eprintln!("{source} ({mode:?}): clean");
    }
    stdout
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("temporary paths are UTF-8")
}

// ---------------------------------------------------------------------------------------------
// The tests

#[test]
fn c_every_function_null_arguments_bad_files_and_lookups() {
    let dbs = databases();
    for mode in modes() {
        let out = run_c("tests/c/api_test.c", mode, &[path_str(dbs.path())]);
        assert!(out.contains(" 0 failed"), "{out}");
    }
}

#[test]
fn c_auto_reload_callback_user_data_and_close_inside_callback() {
    let dbs = databases();
    for mode in modes() {
        let out = run_c("tests/c/reload_test.c", mode, &[path_str(dbs.path())]);
        assert!(out.contains(" 0 failed"), "{out}");
    }
}

#[test]
fn c_many_threads_look_up_during_reloads() {
    let dbs = databases();
    for mode in modes() {
        // Valgrind runs threads one at a time: fewer swaps keep it quick.
        let swaps = if mode == Mode::Valgrind { "10" } else { "20" };
        let out = run_c(
            "tests/c/threads_test.c",
            mode,
            &[path_str(dbs.path()), "4", swaps],
        );
        assert!(out.contains(" 0 failed"), "{out}");
        eprint!("{out}");
    }
}

#[test]
fn c_a_million_lookups_keep_rss_flat() {
    let dbs = databases();
    let db = dbs.path().join("threats.mxy");
    for mode in modes() {
        // ASan parks freed memory in a quarantine (256 MiB by default) and valgrind in a free
        // list (20 MB): both are shrunk here so that RSS plateaus and a leak would show, in every
        // mode, as growth over 1 MiB (16 bytes per lookup would be 16 MB).
        let out = run_c_tuned(
            "tests/c/rss_test.c",
            mode,
            &[path_str(&db), "1000000", "1024"],
            ":quarantine_size_mb=4",
            &["--freelist-vol=2000000", "--freelist-big-blocks=1000000"],
        );
        assert!(out.contains(" 0 failed"), "{out}");
        eprint!("{out}");
    }
}

#[test]
fn cpp_includes_the_header() {
    let dbs = databases();
    let db = dbs.path().join("threats.mxy");
    for mode in modes() {
        run_c("tests/cpp/header_test.cpp", mode, &[path_str(&db)]);
    }
}

#[test]
fn the_example_compiles_and_answers() {
    let dbs = databases();
    let db = dbs.path().join("threats.mxy");
    let out = run_c(
        "examples/lookup.c",
        Mode::Plain,
        &[path_str(&db), "1.2.3.4", "nothing.org"],
    );
    assert!(
        out.contains("1.2.3.4: ip 1.2.3.0/24 {\"category\":\"botnet\""),
        "{out}"
    );
    assert!(out.contains("1.2.3.4: literal 1.2.3.4 "), "{out}");
    assert!(out.contains("1.2.3.4: glob 1.2.3.* "), "{out}");
    assert!(out.contains("nothing.org: no match"), "{out}");
}

#[test]
fn the_static_library_links() {
    let dbs = databases();
    let db = dbs.path().join("threats.mxy");
    let archive = build_library(false).join("libmatchy.a");
    assert!(archive.exists(), "{} is missing", archive.display());
    let exe = out_dir().join("lookup-static");
    let out = Command::new(compiler(false))
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-pedantic", "-I"])
        .arg(include_dir())
        .arg(ffi_dir().join("examples/lookup.c"))
        .arg("-o")
        .arg(&exe)
        .arg(&archive)
        .args(["-lpthread", "-ldl", "-lm", "-lrt", "-lutil"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "static link failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(&exe)
        .arg(&db)
        .arg("sub.evil.com")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("sub.evil.com: glob *.evil.com"), "{stdout}");
}

/// Names the dynamic symbol table of libmatchy.so defines.
fn exported_symbols() -> Option<Vec<String>> {
    let lib = build_library(false).join("libmatchy.so");
    let out = Command::new("nm")
        .args(["-D", "--defined-only"])
        .arg(&lib)
        .output()
        .ok()?;
    assert!(out.status.success(), "nm failed on {}", lib.display());
    Some(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_whitespace().last().map(str::to_string))
            .collect(),
    )
}

#[test]
fn only_matchy_symbols_are_exported() {
    let Some(symbols) = exported_symbols() else {
        eprintln!("skipping: nm is not installed");
        return;
    };
    let foreign: Vec<&String> = symbols
        .iter()
        .filter(|s| !s.starts_with("matchy_"))
        .collect();
    assert!(
        foreign.is_empty(),
        "exported non-matchy symbols: {foreign:?}"
    );
    // Every function the header declares is exported (and nothing else). Declarations are the
    // code lines (not comments) with `matchy_name(`.
    let header = std::fs::read_to_string(include_dir().join("matchy.h")).unwrap();
    let mut declared: Vec<String> = Vec::new();
    for line in header.lines() {
        let code = line.trim_start();
        if code.starts_with('*') || code.starts_with("/*") || code.starts_with('#') {
            continue;
        }
        let Some(open) = code.find('(') else { continue };
        let name = code[..open]
            .rsplit(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .next()
            .unwrap_or("");
        if name.starts_with("matchy_") {
            declared.push(name.to_string());
        }
    }
    declared.sort();
    declared.dedup();
    let mut exported = symbols.clone();
    exported.sort();
    assert_eq!(declared, exported);
}

#[test]
fn the_shared_library_has_a_soname() {
    let lib = build_library(false).join("libmatchy.so");
    let Ok(out) = Command::new("objdump").arg("-p").arg(&lib).output() else {
        eprintln!("skipping: objdump is not installed");
        return;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let want = format!("libmatchy.so.{}", soversion());
    assert!(
        text.lines()
            .any(|l| l.contains("SONAME") && l.trim_end().ends_with(&want)),
        "no SONAME {want} in objdump -p output"
    );
}

#[test]
fn install_script_and_pkg_config() {
    let prefix = tempfile::tempdir().unwrap();
    let out = Command::new("bash")
        .arg(ffi_dir().join("install.sh"))
        .arg("--prefix")
        .arg(prefix.path())
        .arg("--from")
        .arg(build_library(false))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "install.sh failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let lib = prefix.path().join("lib");
    let version = env!("CARGO_PKG_VERSION");
    for f in [
        format!("libmatchy.so.{version}"),
        format!("libmatchy.so.{}", soversion()),
        "libmatchy.so".into(),
        "libmatchy.a".into(),
        "pkgconfig/matchy.pc".into(),
    ] {
        assert!(lib.join(&f).exists(), "{f} not installed");
    }
    assert!(prefix.path().join("include/matchy.h").exists());
    let pc = std::fs::read_to_string(lib.join("pkgconfig/matchy.pc")).unwrap();
    assert!(pc.contains(&format!("Version: {version}")), "{pc}");

    // What pkg-config says (or the same flags by hand where it is not installed).
    let flags = match Command::new("pkg-config")
        .args(["--cflags", "--libs", "matchy"])
        .env("PKG_CONFIG_PATH", lib.join("pkgconfig"))
        .output()
    {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_string(),
        _ => format!(
            "-I{} -L{} -lmatchy",
            prefix.path().join("include").display(),
            lib.display()
        ),
    };
    assert!(flags.contains("-lmatchy"), "{flags}");
    let exe = prefix.path().join("lookup");
    let status = Command::new(compiler(false))
        .arg(ffi_dir().join("examples/lookup.c"))
        .arg("-o")
        .arg(&exe)
        .args(flags.split_whitespace())
        .arg(format!("-Wl,-rpath,{}", lib.display()))
        .status()
        .unwrap();
    assert!(status.success());
    let dbs = databases();
    let out = Command::new(&exe)
        .arg(dbs.path().join("threats.mxy"))
        .arg("evil.com")
        .output()
        .unwrap();
    assert!(out.status.success());
    // The installed program loads the library by its soname.
    let needed = Command::new("objdump").arg("-p").arg(&exe).output();
    if let Ok(needed) = needed {
        let text = String::from_utf8_lossy(&needed.stdout);
        let want = format!("libmatchy.so.{}", soversion());
        assert!(text.contains(&want), "the program does not need {want}");
    }
}

/// For debugging a C test by hand: write its databases into `$MATCHY_FFI_DB_DIR`, then run
/// e.g. `target/tmp/matchy-ffi-bin/api_test $MATCHY_FFI_DB_DIR`.
#[test]
#[ignore = "a helper: MATCHY_FFI_DB_DIR=/some/dir cargo test -p matchy-ffi --test c_api -- --ignored write_test_databases"]
fn write_test_databases() {
    let to = PathBuf::from(std::env::var("MATCHY_FFI_DB_DIR").expect("set MATCHY_FFI_DB_DIR"));
    std::fs::create_dir_all(&to).unwrap();
    let dbs = databases();
    for entry in std::fs::read_dir(dbs.path()).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

/// The cases of the overhead measurements: (query kind, mode, what the C side calls).
const OVERHEAD_CASES: [(&str, &str, &str); 11] = [
    ("literal", "lookup", "matchy_lookup"),
    ("literal", "lookup_n", "matchy_lookup_n"),
    ("miss", "lookup", "matchy_lookup"),
    ("glob", "lookup", "matchy_lookup"),
    ("ip", "lookup", "matchy_lookup (IP as text)"),
    ("ip", "ip", "matchy_lookup_ip_bytes"),
    ("literal", "string", "+ matchy_result_get_string"),
    ("literal", "value", "+ matchy_result_get_value"),
    ("ip", "ip+string", "_ip_bytes + _get_string"),
    ("literal", "path", "+ matchy_result_get_string_at"),
    ("ip", "ip+path", "_ip_bytes + _get_string_at"),
];

/// The two programs of the overhead measurements, built, and their database and query files.
struct OverheadPrograms {
    dir: PathBuf,
    db_path: PathBuf,
    c_exe: PathBuf,
    rust_exe: PathBuf,
}

impl OverheadPrograms {
    /// Run `exe` (`c_exe` or `rust_exe`) for `n` lookups of the `kind` queries in `mode`, under
    /// `wrapper` (e.g. valgrind) if not empty: its stderr, and the hits it printed.
    fn run(&self, wrapper: &[&str], exe: &Path, kind: &str, mode: &str, n: usize) -> (String, u64) {
        let mut cmd = match wrapper.split_first() {
            Some((tool, args)) => {
                let mut cmd = Command::new(tool);
                cmd.args(args).arg(exe);
                cmd
            }
            None => Command::new(exe),
        };
        let out = cmd
            .arg(&self.db_path)
            .arg(self.dir.join(format!("{kind}.txt")))
            .arg(n.to_string())
            .arg(mode)
            .output()
            .unwrap();
        assert!(out.status.success(), "{exe:?} {kind} {mode} failed");
        let hits = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
        (String::from_utf8_lossy(&out.stderr).into_owned(), hits)
    }
}

fn overhead_programs() -> OverheadPrograms {
    // Kept in target/tmp for profiling, e.g. `valgrind --tool=callgrind
    // target/tmp/matchy-ffi-bin/bench target/tmp/matchy-ffi-bench/bench.mxy
    // target/tmp/matchy-ffi-bench/literal.txt 100000 string`.
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("matchy-ffi-bench");
    std::fs::create_dir_all(&dir).unwrap();
    let db_path = dir.join("bench.mxy");
    overhead_data::write_database(&db_path);
    for kind in overhead_data::KINDS {
        let queries = overhead_data::queries(kind);
        std::fs::write(dir.join(format!("{kind}.txt")), queries.join("\n") + "\n").unwrap();
    }
    let c_exe = {
        let lib = lib_dir(true);
        let exe = out_dir().join("bench");
        let out = Command::new(compiler(false))
            .args([
                "-std=c11",
                "-D_GNU_SOURCE",
                "-O2",
                "-Wall",
                "-Wextra",
                "-Werror",
                "-I",
            ])
            .arg(include_dir())
            .arg(ffi_dir().join("tests/c/bench.c"))
            .arg("-o")
            .arg(&exe)
            .arg("-L")
            .arg(lib)
            .arg(format!("-Wl,-rpath,{}", lib.display()))
            .arg("-lmatchy")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        exe
    };
    let rust_exe = {
        let target_dir = profile_dir().parent().unwrap().to_path_buf();
        let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args([
                "build",
                "--release",
                "-p",
                "matchy-ffi",
                "--example",
                "rust_lookup_loop",
            ])
            .arg("--target-dir")
            .arg(&target_dir)
            .current_dir(ffi_dir())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        target_dir.join("release/examples/rust_lookup_loop")
    };
    OverheadPrograms {
        dir,
        db_path,
        c_exe,
        rust_exe,
    }
}

/// The price of the C boundary in instructions, a repeatable companion to the criterion bench
/// `benches/overhead.rs` (which holds the timing claim): the same loop from C (-O2, against
/// libmatchy.so: ffi/tests/c/bench.c) and from Rust (ffi/examples/rust_lookup_loop.rs), on the
/// bench's database and queries, each counted by callgrind as the difference between 200,000
/// lookups and 100,000: the steady state, without one-off costs (setup, the IPv4 index both
/// sides build after their first 1000 IPv4 lookups, ~83 instructions per lookup over 100,000).
/// Prints a table; asserts only that both sides find the same. Run with
/// `cargo test --release -p matchy-ffi --test c_api -- --ignored overhead_instructions --nocapture`.
#[test]
#[ignore = "a measuring tool (needs valgrind): run in release with --ignored --nocapture"]
fn overhead_instructions() {
    if !have("valgrind") {
        eprintln!("overhead_instructions: valgrind is not installed");
        return;
    }
    let programs = overhead_programs();
    // (instructions, hits) of `n` lookups.
    let count = |exe: &Path, kind: &str, mode: &str, n: usize| -> (f64, u64) {
        let valgrind = [
            "valgrind",
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
        ];
        let (err, hits) = programs.run(&valgrind, exe, kind, mode, n);
        let line = err.lines().find(|l| l.contains("Collected :")).unwrap();
        let instructions = line.rsplit(' ').next().unwrap().trim().parse().unwrap();
        (instructions, hits)
    };
    let per_lookup = |exe: &Path, kind: &str, mode: &str| -> (f64, u64) {
        let n = 100_000;
        let (all, hits) = count(exe, kind, mode, 2 * n);
        ((all - count(exe, kind, mode, n).0) / n as f64, hits)
    };
    eprintln!("queries  mode       C calls                        Rust instr  C instr  overhead (per lookup)");
    for (kind, mode, calls) in OVERHEAD_CASES {
        let (rust, rust_hits) = per_lookup(&programs.rust_exe, kind, mode);
        let (c, c_hits) = per_lookup(&programs.c_exe, kind, mode);
        assert_eq!(c_hits, rust_hits, "{kind} {mode}: both sides find the same");
        eprintln!(
            "{kind:<8} {mode:<10} {calls:<30} {rust:>10.0} {c:>8.0} {:>+8.1}%",
            (c / rust - 1.0) * 100.0
        );
    }
}

/// The C boundary's price in time, as C users pay it: the C program against libmatchy.so (with
/// its PLT calls and `__tls_get_addr`) and the Rust program, each timing the second half of
/// 2,000,000 lookups (`overhead_instructions` has the details), run as alternating processes,
/// nine rounds per case. Prints the median time of each side and the median of the rounds'
/// C/Rust ratios; asserts only that both sides find the same. Run with
/// `cargo test --release -p matchy-ffi --test c_api -- --ignored overhead_time --nocapture`.
#[test]
#[ignore = "a measuring tool: run in release with --ignored --nocapture"]
fn overhead_time() {
    let programs = overhead_programs();
    // (ns per lookup, hits)
    let time = |exe: &Path, kind: &str, mode: &str| -> (f64, u64) {
        let (err, hits) = programs.run(&[], exe, kind, mode, 2_000_000);
        let ns = err
            .lines()
            .find_map(|l| l.strip_suffix(" ns/lookup"))
            .unwrap_or_else(|| panic!("{exe:?} printed no time: {err}"))
            .parse()
            .unwrap();
        (ns, hits)
    };
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    eprintln!("queries  mode       C calls                        Rust ns  C ns  C/Rust (median of 9 rounds)");
    for (kind, mode, calls) in OVERHEAD_CASES {
        let (mut rust, mut c, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
        for round in 0..9 {
            // Which side goes first alternates, so that neither always follows the other.
            let (r, ch) = if round % 2 == 0 {
                let ch = time(&programs.c_exe, kind, mode);
                (time(&programs.rust_exe, kind, mode), ch)
            } else {
                let r = time(&programs.rust_exe, kind, mode);
                (r, time(&programs.c_exe, kind, mode))
            };
            assert_eq!(ch.1, r.1, "{kind} {mode}: both sides find the same");
            rust.push(r.0);
            c.push(ch.0);
            ratios.push(ch.0 / r.0);
        }
        eprintln!(
            "{kind:<8} {mode:<10} {calls:<30} {:>7.1} {:>5.1}  {:.3}",
            median(rust),
            median(c),
            median(ratios)
        );
    }
}
