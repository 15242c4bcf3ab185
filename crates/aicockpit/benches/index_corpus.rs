//! `cargo bench --bench index_corpus`: index a large real corpus and compare
//! with universal-ctags, then measure query and one-file re-index latency.
//!
//! Corpora (each measured separately): by default the Python standard library
//! of the machine's `python3` (with the `site-packages` under it) and the cargo
//! registry sources (`$CARGO_HOME/registry/src`). `AICOCKPIT_BENCH_CORPUS`
//! (a `:`-separated list of folders) replaces them.
//!
//! For each corpus:
//! 1. the file list is built once with the index's own walk and read rules
//!    (known extensions, `.gitignore`, the 1 MiB default limit, no binary or
//!    non-UTF-8 files) and handed to ctags with `-L`, so both tools see the
//!    same files (reading them first also warms the page cache for both);
//! 2. `ctags -L list -f tags --fields=+nK`: wall time, CPU time, peak RSS;
//! 3. the parse floor: this binary re-executed, reading every listed file and
//!    parsing it with the index's grammar (`aicockpit_syntax::parse_only`) on
//!    as many threads as the indexer uses, nothing else; run before and after
//!    step 4 and averaged, so a change in the machine's load hits both sides;
//! 4. `aicockpit index <root> --json` with a fresh `AICOCKPIT_CACHE_DIR`:
//!    cold, then warm (nothing changed); wall time, CPU time, peak RSS;
//! 5. in-process over the same index: `search` (limit 20) and
//!    `workspace_symbols` (limit 128) latency over a fixed query list, and the
//!    symbol recall against ctags (the share of ctags' definitions of
//!    functions, methods and types, by file and name, that the index holds);
//! 6. in-process: 50 times `update_file` + `commit` of a mid-sized file with a
//!    new uniquely named function, timed until `search` finds it.
//!
//! The report is Markdown on stdout (progress goes to stderr) and, when
//! `AICOCKPIT_BENCH_OUT` is set, is also written to that file.
//! `AICOCKPIT_BENCH_INDEXER=lib` runs step 3 with this binary re-executed as a
//! child that calls the library directly instead of the CLI (same contract).
//! Peak RSS is the child's `ru_maxrss` from `wait4`, reaped by a small launcher
//! (a fresh copy of this binary) so that this process's memory does not count.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufWriter, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use aicockpit_index::{IndexOptions, ProjectIndex, SearchQuery};
use aicockpit_syntax::LanguageId;

/// The allocator of the shipped binaries (`aicockpit`, `aicockpit-lsp`), so
/// the in-process latencies are theirs (the parse-only worker, a re-executed
/// copy of this binary, uses it too, as the indexer does).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The command that produces this report.
const BENCH_COMMAND: &str = "cargo bench --bench index_corpus";
/// The index's default per-file size limit.
const MAX_FILE_BYTES: u64 = 1024 * 1024;
/// Timed runs of each query, after the warm-up runs.
const QUERY_RUNS: usize = 20;
const QUERY_WARMUP: usize = 3;
const SEARCH_LIMIT: usize = 20;
const SYMBOL_LIMIT: usize = 128;
/// Timed one-file re-indexes (after one warm-up).
const REINDEX_RUNS: usize = 50;
/// Give up on a marker that is not searchable after this long.
const MARKER_TIMEOUT: Duration = Duration::from_secs(10);

/// Targets (see docs/benchmarks.md).
/// Cold index wall time over the parse-only pass's.
const TARGET_PARSE_RATIO: f64 = 1.3;
const TARGET_RECALL: f64 = 0.95;
const TARGET_SEARCH_P99_MS: f64 = 10.0;
const TARGET_SYMBOLS_P99_MS: f64 = 10.0;
const TARGET_REINDEX_P99_MS: f64 = 20.0;
const TARGET_PEAK_RSS_KIB: u64 = 1024 * 1024;

/// Set on a re-executed copy of this binary that indexes one root with the library.
const WORKER_ENV: &str = "AICOCKPIT_BENCH_WORKER_ROOT";
/// Set on a re-executed copy of this binary that parses the files of a list (the parse floor).
const PARSE_ENV: &str = "AICOCKPIT_BENCH_PARSE_LIST";
/// ctags kinds (`--fields=+K`) counted for the symbol recall: definitions of
/// functions, methods and types, which every indexed language's query covers.
const RECALL_KINDS: &[&str] = &[
    "class",
    "function",
    "method",
    "member",
    "struct",
    "enum",
    "interface",
    "trait",
    "macro",
    "union",
];
/// With the parse list: run the index's whole syntax step (`analyze`) instead
/// of the parse alone (a diagnostic: `AICOCKPIT_BENCH_PARSE_LIST=<list>
/// AICOCKPIT_BENCH_PARSE_ANALYZE=1 <bench binary>`).
const ANALYZE_ENV: &str = "AICOCKPIT_BENCH_PARSE_ANALYZE";
/// Set on a re-executed copy of this binary that runs and measures one command.
const MEASURE_ENV: &str = "AICOCKPIT_BENCH_MEASURE";

const PYTHON_QUERIES: &[&str] = &[
    "http request",
    "parse",
    "json decode",
    "thread pool",
    "a",
    "Path",
    "urlopen",
    "TestCase setUp",
    "e",
    "__init__",
    "get",
    "open file",
    "socket connect",
    "HTTPConnection",
    "base64 encode",
    "datetime",
    "logging handler",
    "subprocess run",
    "ZipFile",
    "deepcopy",
    "regex compile",
    "async def await",
    "Thread",
    "sqlite3 cursor execute",
    "unittest mock patch",
    "tokenize",
    "OrderedDict",
    "email message parser",
    "ssl context wrap socket",
    "read_text encoding",
];

const SYSTEMS_QUERIES: &[&str] = &[
    "http request",
    "parse",
    "serialize",
    "thread pool",
    "a",
    "Vec",
    "from_str",
    "Iterator next",
    "x",
    "new",
    "read file",
    "spawn",
    "HashMap",
    "deserialize_any",
    "impl Display fmt",
    "Error",
    "tokio runtime",
    "encode utf8",
    "Mutex lock",
    "visit_map",
    "syn parse stream",
    "regex compile",
    "Arc",
    "as_ref",
    "write_all",
    "buffer capacity",
    "TcpStream connect",
    "raw pointer cast",
    "tree sitter language",
    "hash map entry",
];

fn main() -> ExitCode {
    if let Some(result_path) = std::env::var_os(MEASURE_ENV) {
        return match measure_child(Path::new(&result_path)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("index_corpus launcher: {error}");
                ExitCode::FAILURE
            }
        };
    }
    if let Some(list) = std::env::var_os(PARSE_ENV) {
        return match parse_worker(Path::new(&list)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("index_corpus parse worker: {error}");
                ExitCode::FAILURE
            }
        };
    }
    if let Some(root) = std::env::var_os(WORKER_ENV) {
        return match worker(Path::new(&root)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("index_corpus worker: {error}");
                ExitCode::FAILURE
            }
        };
    }
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("index_corpus: error: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let ctags_version = check_ctags()?;
    let corpora = corpora()?;
    let indexer = Indexer::from_env()?;
    let scratch = tempfile::Builder::new()
        .prefix("aicockpit-bench-")
        .tempdir()
        .map_err(|error| format!("cannot create a temporary folder: {error}"))?;

    let mut report = String::new();
    header(&mut report, &ctags_version, indexer);
    print!("{report}");
    for (number, corpus) in corpora.iter().enumerate() {
        let work = scratch.path().join(format!("corpus-{number}"));
        std::fs::create_dir_all(&work)
            .map_err(|error| format!("cannot create {}: {error}", work.display()))?;
        let section = render(corpus, &bench_corpus(corpus, &work, indexer)?);
        print!("{section}");
        report.push_str(&section);
        // Index folders of a large corpus are hundreds of MB: drop them as we go.
        let _ = std::fs::remove_dir_all(&work);
    }
    if let Some(out) = std::env::var_os("AICOCKPIT_BENCH_OUT").filter(|v| !v.is_empty()) {
        std::fs::write(&out, &report).map_err(|error| {
            format!(
                "cannot write the report to {}: {error}",
                Path::new(&out).display()
            )
        })?;
        eprintln!("report written to {}", Path::new(&out).display());
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Corpora and the file list

struct Corpus {
    label: String,
    root: PathBuf,
    /// How the root was found, for the report: a recipe any machine can
    /// follow, never this machine's folder names.
    origin: String,
}

fn corpora() -> Result<Vec<Corpus>, String> {
    if let Some(list) = std::env::var_os("AICOCKPIT_BENCH_CORPUS").filter(|v| !v.is_empty()) {
        let list = list
            .into_string()
            .map_err(|_| "AICOCKPIT_BENCH_CORPUS is not valid UTF-8".to_string())?;
        let mut out = Vec::new();
        for dir in list.split(':').filter(|d| !d.is_empty()) {
            let root = canonical_dir(Path::new(dir))
                .map_err(|error| format!("AICOCKPIT_BENCH_CORPUS entry {dir}: {error}"))?;
            let label = root
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or(dir)
                .to_string();
            out.push(Corpus {
                origin: format!("the folder `{label}` given in `AICOCKPIT_BENCH_CORPUS`"),
                label,
                root,
            });
        }
        if out.is_empty() {
            return Err("AICOCKPIT_BENCH_CORPUS names no folder".into());
        }
        return Ok(out);
    }

    let mut out = Vec::new();
    match python_stdlib() {
        Ok(corpus) => out.push(corpus),
        Err(error) => eprintln!("skipping the Python corpus: {error}"),
    }
    match cargo_registry() {
        Ok(corpus) => out.push(corpus),
        Err(error) => eprintln!("skipping the cargo registry corpus: {error}"),
    }
    if out.is_empty() {
        return Err(
            "no corpus found: install python3 or populate the cargo registry, \
             or set AICOCKPIT_BENCH_CORPUS=/some/dir:/other/dir"
                .into(),
        );
    }
    Ok(out)
}

fn python_stdlib() -> Result<Corpus, String> {
    let output = Command::new("python3")
        .args([
            "-c",
            "import sys, sysconfig; print(sysconfig.get_paths()['stdlib']); \
             print('%d.%d.%d' % sys.version_info[:3])",
        ])
        .output()
        .map_err(|error| format!("cannot run python3: {error}"))?;
    if !output.status.success() {
        return Err(format!(
            "python3 failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let mut lines = stdout.lines();
    let dir = lines.next().unwrap_or("").trim().to_string();
    let version = lines.next().unwrap_or("?").trim().to_string();
    let root = canonical_dir(Path::new(&dir))?;
    Ok(Corpus {
        label: format!("Python {version} standard library (with site-packages)"),
        root,
        origin: "`python3 -c 'import sysconfig; print(sysconfig.get_paths()[\"stdlib\"])'`".into(),
    })
}

fn cargo_registry() -> Result<Corpus, String> {
    let cargo_home = match std::env::var_os("CARGO_HOME").filter(|v| !v.is_empty()) {
        Some(home) => PathBuf::from(home),
        None => std::env::var_os("HOME")
            .filter(|v| !v.is_empty())
            .map(|home| PathBuf::from(home).join(".cargo"))
            .ok_or("neither CARGO_HOME nor HOME is set")?,
    };
    let root = canonical_dir(&cargo_home.join("registry").join("src"))?;
    Ok(Corpus {
        label: "Cargo registry sources".into(),
        root,
        origin: "`$CARGO_HOME/registry/src` (default `~/.cargo/registry/src`)".into(),
    })
}

fn canonical_dir(path: &Path) -> Result<PathBuf, String> {
    let root = path
        .canonicalize()
        .map_err(|error| format!("{}: {error}", path.display()))?;
    if !root.is_dir() {
        return Err(format!("{} is not a folder", root.display()));
    }
    Ok(root)
}

/// The files the index considers, read once.
struct FileList {
    /// `ctags -L` input: one absolute path a line.
    list_file: PathBuf,
    files: Vec<ListedFile>,
    lines: u64,
    bytes: u64,
    /// Left out by the walk (too large) or by the read rules (binary, not UTF-8, unreadable).
    skipped: usize,
    /// Files per language, most first.
    languages: Vec<(LanguageId, usize)>,
}

struct ListedFile {
    rel: String,
    abs: PathBuf,
    lang: LanguageId,
    size: u64,
}

fn file_list(root: &Path, work: &Path) -> Result<FileList, String> {
    let (entries, walk_skipped) = aicockpit_index::walk(root, MAX_FILE_BYTES);
    let list_file = work.join("files.txt");
    let handle = File::create(&list_file)
        .map_err(|error| format!("cannot create {}: {error}", list_file.display()))?;
    let mut writer = BufWriter::new(handle);
    let mut files = Vec::with_capacity(entries.len());
    let (mut lines, mut bytes, mut skipped) = (0u64, 0u64, walk_skipped.len());
    let mut counts = std::collections::BTreeMap::<LanguageId, usize>::new();
    for entry in entries {
        let Some(abs) = entry.abs.to_str().filter(|p| !p.contains('\n')) else {
            skipped += 1;
            continue;
        };
        let text = match aicockpit_index::read_project_file(root, &entry.rel, MAX_FILE_BYTES) {
            Ok(text) => text,
            Err(_) => {
                skipped += 1;
                continue;
            }
        };
        writeln!(writer, "{abs}")
            .map_err(|error| format!("cannot write {}: {error}", list_file.display()))?;
        lines += line_count(&text);
        bytes += text.len() as u64;
        *counts.entry(entry.lang).or_default() += 1;
        files.push(ListedFile {
            rel: entry.rel,
            abs: entry.abs,
            lang: entry.lang,
            size: text.len() as u64,
        });
    }
    writer
        .flush()
        .map_err(|error| format!("cannot write {}: {error}", list_file.display()))?;
    if files.is_empty() {
        return Err(format!(
            "{} holds no file of a language AiCockpit indexes",
            root.display()
        ));
    }
    let mut languages: Vec<(LanguageId, usize)> = counts.into_iter().collect();
    languages.sort_by_key(|&(_, files)| std::cmp::Reverse(files));
    Ok(FileList {
        list_file,
        files,
        lines,
        bytes,
        skipped,
        languages,
    })
}

fn line_count(text: &str) -> u64 {
    let newlines = text.bytes().filter(|&b| b == b'\n').count() as u64;
    newlines + u64::from(!text.is_empty() && !text.ends_with('\n'))
}

// ---------------------------------------------------------------------------
// Child processes, measured with wait4

struct ChildRun {
    wall: Duration,
    cpu: Duration,
    max_rss_kib: u64,
    stdout: String,
    stderr: String,
}

/// Run a command to completion with stdout and stderr captured in files under
/// `work`: wall time from spawn to reaping, CPU time and peak RSS from `wait4`.
///
/// The command is started by a fresh copy of this binary ([`measure_child`]),
/// not by this process: Linux carries the RSS high-water mark of the process
/// that forks over into the child's `ru_maxrss`, and this one holds indexes.
fn run_measured(command: Command, name: &str, work: &Path) -> Result<ChildRun, String> {
    let program = command.get_program().to_string_lossy().into_owned();
    let out_path = work.join(format!("{name}.stdout"));
    let err_path = work.join(format!("{name}.stderr"));
    let result_path = work.join(format!("{name}.rusage"));
    let create = |path: &Path| {
        File::create(path).map_err(|error| format!("cannot create {}: {error}", path.display()))
    };
    let exe = std::env::current_exe()
        .map_err(|error| format!("cannot find this bench binary: {error}"))?;
    let mut launcher = Command::new(exe);
    launcher.arg(command.get_program()).args(command.get_args());
    for (key, value) in command.get_envs() {
        match value {
            Some(value) => launcher.env(key, value),
            None => launcher.env_remove(key),
        };
    }
    launcher
        .env(MEASURE_ENV, &result_path)
        .stdin(Stdio::null())
        .stdout(create(&out_path)?)
        .stderr(create(&err_path)?);
    let status = launcher
        .status()
        .map_err(|error| format!("cannot run this bench binary to launch {program}: {error}"))?;
    let stdout = std::fs::read_to_string(&out_path).unwrap_or_default();
    let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
    let result = std::fs::read_to_string(&result_path).unwrap_or_default();
    let fields: Vec<&str> = result.split_whitespace().collect();
    let parsed = match fields[..] {
        [ok, wall, cpu, rss, ref how @ ..] => Some((
            ok == "ok",
            wall.parse::<u64>().ok(),
            cpu.parse::<u64>().ok(),
            rss.parse::<u64>().ok(),
            how.join(" "),
        )),
        _ => None,
    };
    let Some((true, Some(wall), Some(cpu), Some(max_rss_kib), _)) = parsed else {
        let how = match parsed {
            Some((_, _, _, _, how)) => how,
            None => format!("launcher {status}"),
        };
        return Err(format!(
            "{program} failed ({how}); stderr:\n{}",
            tail(&stderr, 40)
        ));
    };
    Ok(ChildRun {
        wall: Duration::from_nanos(wall),
        cpu: Duration::from_nanos(cpu),
        max_rss_kib,
        stdout,
        stderr,
    })
}

/// `AICOCKPIT_BENCH_MEASURE=<file> index_corpus <program> <args>…`: run the
/// program with this process's stdio and environment, reap it with `wait4`,
/// and write `ok|failed <wall ns> <cpu ns> <max rss KiB> <how it ended>` to the file.
fn measure_child(result_path: &Path) -> Result<(), String> {
    let mut args = std::env::args_os().skip(1);
    let program = args.next().ok_or("no program to run")?;
    let mut command = Command::new(&program);
    command.args(args).env_remove(MEASURE_ENV);
    let started = Instant::now();
    let child = command
        .spawn()
        .map_err(|error| format!("cannot run {}: {error}", program.to_string_lossy()))?;
    let pid = child.id() as libc::pid_t;
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is plain old data; all-zero is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: pid is our own child, not yet reaped; both pointers are valid.
        let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if reaped == pid {
            break;
        }
        let error = std::io::Error::last_os_error();
        if error.kind() != std::io::ErrorKind::Interrupted {
            return Err(format!("wait4: {error}"));
        }
    }
    let wall = started.elapsed();
    // Already reaped by wait4: dropping the handle does not wait.
    drop(child);
    let ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    let how = if libc::WIFEXITED(status) {
        format!("exit status {}", libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        format!("signal {}", libc::WTERMSIG(status))
    } else {
        format!("wait status {status}")
    };
    let timeval = |tv: libc::timeval| {
        Duration::from_secs(tv.tv_sec.max(0) as u64)
            + Duration::from_micros(tv.tv_usec.max(0) as u64)
    };
    let cpu = timeval(usage.ru_utime) + timeval(usage.ru_stime);
    let line = format!(
        "{} {} {} {} {how}\n",
        if ok { "ok" } else { "failed" },
        wall.as_nanos(),
        cpu.as_nanos(),
        // Linux reports ru_maxrss in KiB.
        usage.ru_maxrss.max(0)
    );
    std::fs::write(result_path, line)
        .map_err(|error| format!("cannot write {}: {error}", result_path.display()))
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn check_ctags() -> Result<String, String> {
    const INSTALL: &str =
        "universal-ctags is needed as the baseline: apt-get install universal-ctags";
    let output = match Command::new("ctags").arg("--version").output() {
        Ok(output) => output,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!("ctags not found. {INSTALL}"))
        }
        Err(error) => return Err(format!("cannot run ctags ({error}). {INSTALL}")),
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let first = stdout.lines().next().unwrap_or("").trim().to_string();
    if !output.status.success() || !first.contains("Universal Ctags") {
        return Err(format!(
            "`ctags --version` does not say Universal Ctags (it says {first:?}). {INSTALL}"
        ));
    }
    let version = first.split(", Copyright").next().unwrap_or(&first);
    Ok(version.trim_end_matches(',').to_string())
}

struct CtagsRun {
    run: ChildRun,
    tags: u64,
    /// (file as listed, name, kind) of the definitions counted for the recall.
    definitions: std::collections::BTreeSet<(String, String, String)>,
}

fn run_ctags(list: &FileList, work: &Path) -> Result<CtagsRun, String> {
    let tags_file = work.join("tags");
    let mut command = Command::new("ctags");
    command
        .arg("-L")
        .arg(&list.list_file)
        .arg("-f")
        .arg(&tags_file)
        .arg("--fields=+nK");
    let run = run_measured(command, "ctags", work)?;
    let bytes = std::fs::read(&tags_file)
        .map_err(|error| format!("ctags wrote no {}: {error}", tags_file.display()))?;
    let text = String::from_utf8_lossy(&bytes);
    let mut tags = 0u64;
    let mut definitions = std::collections::BTreeSet::new();
    for line in text.lines() {
        if line.is_empty() || line.starts_with("!_TAG_") {
            continue;
        }
        tags += 1;
        // name TAB file TAB address;" TAB kind TAB fields…
        let mut columns = line.split('\t');
        let (Some(name), Some(file)) = (columns.next(), columns.next()) else {
            continue;
        };
        let kind = line
            .split_once(";\"\t")
            .and_then(|(_, rest)| rest.split('\t').next())
            .unwrap_or("");
        if RECALL_KINDS.contains(&kind) {
            definitions.insert((file.to_string(), name.to_string(), kind.to_string()));
        }
    }
    let _ = std::fs::remove_file(&tags_file);
    Ok(CtagsRun {
        run,
        tags,
        definitions,
    })
}

/// The share of ctags' definitions (by file and name) the index holds, and
/// per ctags kind (found, of).
struct Recall {
    share: f64,
    of: usize,
    by_kind: Vec<(String, usize, usize)>,
}

fn symbol_recall(index: &ProjectIndex, list: &FileList, ctags: &CtagsRun) -> Recall {
    let rel_of: std::collections::HashMap<&str, &str> = list
        .files
        .iter()
        .filter_map(|f| Some((f.abs.to_str()?, f.rel.as_str())))
        .collect();
    let mut names: std::collections::HashMap<&str, std::collections::HashSet<String>> =
        std::collections::HashMap::new();
    let mut kinds = std::collections::BTreeMap::<String, (usize, usize)>::new();
    let (mut found, mut of) = (0usize, 0usize);
    let mut seen = std::collections::HashSet::new();
    for (file, name, kind) in &ctags.definitions {
        let Some(&rel) = rel_of.get(file.as_str()) else {
            continue;
        };
        if !seen.insert((rel, name.as_str())) {
            continue;
        }
        let held = names.entry(rel).or_insert_with(|| {
            index
                .file(rel)
                .map(|record| record.symbols.iter().map(|s| s.name.to_string()).collect())
                .unwrap_or_default()
        });
        let hit = held.contains(name);
        of += 1;
        found += usize::from(hit);
        let entry = kinds.entry(kind.clone()).or_default();
        entry.0 += usize::from(hit);
        entry.1 += 1;
    }
    Recall {
        share: if of == 0 {
            1.0
        } else {
            found as f64 / of as f64
        },
        of,
        by_kind: kinds.into_iter().map(|(k, (f, o))| (k, f, o)).collect(),
    }
}

/// The parse floor: this binary re-executed to read and parse every file of
/// the list on as many threads as the indexer uses.
fn run_parse_only(list: &FileList, name: &str, work: &Path) -> Result<ChildRun, String> {
    let exe = std::env::current_exe()
        .map_err(|error| format!("cannot find this bench binary: {error}"))?;
    let mut command = Command::new(exe);
    command.env(PARSE_ENV, &list.list_file);
    run_measured(command, name, work)
}

/// `AICOCKPIT_BENCH_PARSE_LIST=<file>`: read and parse every listed file, one
/// thread per core (the indexer's default), and print how many parsed.
fn parse_worker(list_file: &Path) -> Result<(), String> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let list = std::fs::read_to_string(list_file)
        .map_err(|error| format!("cannot read {}: {error}", list_file.display()))?;
    let paths: Vec<&str> = list.lines().filter(|l| !l.is_empty()).collect();
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    // A diagnostic, not part of the report: the whole syntax step of the
    // index (parse, tags query, chunks, docs) instead of the parse alone.
    let analyze = std::env::var_os(ANALYZE_ENV).is_some_and(|v| v == "1");
    let next = AtomicUsize::new(0);
    let parsed = AtomicUsize::new(0);
    let symbols = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                let Some(path) = paths.get(n) else { break };
                let path = Path::new(path);
                let Some(lang) = LanguageId::from_path(path) else {
                    continue;
                };
                let Ok(text) = std::fs::read_to_string(path) else {
                    continue;
                };
                let ok = if analyze {
                    let syntax = aicockpit_syntax::analyze(lang, &text);
                    symbols.fetch_add(syntax.symbols.len(), Ordering::Relaxed);
                    !syntax.symbols.is_empty() || !syntax.chunks.is_empty()
                } else {
                    aicockpit_syntax::parse_only(lang, &text)
                };
                if ok {
                    parsed.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    });
    println!("{} of {} files parsed", parsed.into_inner(), paths.len());
    if analyze {
        println!("{} symbols", symbols.into_inner());
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// The indexer: the CLI (default) or this binary calling the library

#[derive(Clone, Copy, PartialEq, Eq)]
enum Indexer {
    Cli,
    Library,
}

impl Indexer {
    fn from_env() -> Result<Indexer, String> {
        match std::env::var("AICOCKPIT_BENCH_INDEXER").as_deref() {
            Err(_) | Ok("") | Ok("cli") => Ok(Indexer::Cli),
            Ok("lib") => Ok(Indexer::Library),
            Ok(other) => Err(format!(
                "AICOCKPIT_BENCH_INDEXER={other}: expected `cli` (default) or `lib`"
            )),
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Indexer::Cli => "`aicockpit index <root> --json` (the release CLI)",
            Indexer::Library => {
                "this bench binary re-executed, calling `ProjectIndex::open` + `refresh` \
                 (AICOCKPIT_BENCH_INDEXER=lib)"
            }
        }
    }
}

/// What `aicockpit index --json` reports.
struct IndexRun {
    run: ChildRun,
    index_dir: PathBuf,
    files: u64,
    parsed: u64,
    skipped: u64,
    symbols: u64,
    chunks: u64,
    bytes_parsed: u64,
    elapsed_ms: f64,
}

fn run_index(
    indexer: Indexer,
    root: &Path,
    cache: &Path,
    name: &str,
    work: &Path,
) -> Result<IndexRun, String> {
    let mut command = match indexer {
        Indexer::Cli => {
            let mut command = Command::new(env!("CARGO_BIN_EXE_aicockpit"));
            command.arg("index").arg(root).arg("--json");
            command
        }
        Indexer::Library => {
            let exe = std::env::current_exe()
                .map_err(|error| format!("cannot find this bench binary: {error}"))?;
            let mut command = Command::new(exe);
            command.env(WORKER_ENV, root);
            command
        }
    };
    // Default settings: no user config file, a scratch data folder.
    command
        .env("AICOCKPIT_CACHE_DIR", cache)
        .env("AICOCKPIT_CONFIG", work.join("no-config.toml"))
        .env("AICOCKPIT_DATA_DIR", work.join("data"))
        .env("RUST_LOG", "warn")
        .env_remove("RUST_BACKTRACE");
    let run = run_measured(command, name, work)?;
    let json = run
        .stdout
        .lines()
        .rev()
        .find(|line| line.trim_start().starts_with('{'))
        .ok_or_else(|| {
            format!(
                "`aicockpit index --json` printed no JSON object (is the `index` command \
                 built? AICOCKPIT_BENCH_INDEXER=lib measures the library instead); stdout:\n{}\nstderr:\n{}",
                tail(&run.stdout, 10),
                tail(&run.stderr, 10)
            )
        })?;
    let value: serde_json::Value = serde_json::from_str(json).map_err(|error| {
        format!("`aicockpit index --json` output is not JSON ({error}): {json}")
    })?;
    let number = |key: &str| -> Result<u64, String> {
        match &value[key] {
            serde_json::Value::Number(n) => n
                .as_u64()
                .or_else(|| n.as_f64().map(|f| f as u64))
                .ok_or_else(|| format!("`{key}` is not a count in {json}")),
            // `skipped` may be the list of skipped files.
            serde_json::Value::Array(items) => Ok(items.len() as u64),
            _ => Err(format!("`aicockpit index --json` has no `{key}`: {json}")),
        }
    };
    let index_dir = value["index_dir"]
        .as_str()
        .map(PathBuf::from)
        .ok_or_else(|| format!("`aicockpit index --json` has no `index_dir`: {json}"))?;
    Ok(IndexRun {
        index_dir,
        files: number("files")?,
        parsed: number("parsed")?,
        skipped: number("skipped")?,
        symbols: number("symbols")?,
        chunks: number("chunks")?,
        bytes_parsed: number("bytes_parsed")?,
        elapsed_ms: value["elapsed_ms"].as_f64().unwrap_or(f64::NAN),
        run,
    })
}

/// `AICOCKPIT_BENCH_INDEXER=lib`: index one root with the library and print
/// the same JSON object as `aicockpit index --json`.
fn worker(root: &Path) -> Result<(), String> {
    let cache = std::env::var_os("AICOCKPIT_CACHE_DIR").ok_or("AICOCKPIT_CACHE_DIR is not set")?;
    let (index, _) = ProjectIndex::open(IndexOptions::new(root, PathBuf::from(cache)))
        .map_err(|error| error.to_string())?;
    let stats = index.refresh(&|_| {}).map_err(|error| error.to_string())?;
    let json = serde_json::json!({
        "root": index.root(),
        "index_dir": index.dir(),
        "files": stats.files,
        "parsed": stats.parsed,
        "unchanged": stats.unchanged,
        "removed": stats.removed,
        "skipped": stats.skipped.len(),
        "symbols": stats.symbols,
        "chunks": stats.chunks,
        "bytes_parsed": stats.bytes_parsed,
        "elapsed_ms": stats.elapsed.as_secs_f64() * 1000.0,
    });
    println!("{json}");
    Ok(())
}

// ---------------------------------------------------------------------------
// In-process latency

struct Latency {
    p50: f64,
    p99: f64,
    max: f64,
    /// CPU time of this process (all its threads) per run: the work done,
    /// whatever the other processes on the machine take of the cores.
    cpu: (f64, f64),
    /// The query with the highest median, and that median.
    slowest: (String, f64),
    /// Queries that found nothing.
    empty: Vec<String>,
}

fn measure_queries(
    queries: &[&str],
    mut run: impl FnMut(&str) -> Result<usize, String>,
) -> Result<Latency, String> {
    let mut all = Vec::with_capacity(queries.len() * QUERY_RUNS);
    let mut cpu = Vec::with_capacity(queries.len() * QUERY_RUNS);
    let mut slowest = (String::new(), 0.0);
    let mut empty = Vec::new();
    for &query in queries {
        let mut hits = 0;
        for _ in 0..QUERY_WARMUP {
            hits = run(query)?;
        }
        if hits == 0 {
            empty.push(query.to_string());
        }
        let mut samples = Vec::with_capacity(QUERY_RUNS);
        for _ in 0..QUERY_RUNS {
            let cpu_started = process_cpu();
            let started = Instant::now();
            run(query)?;
            samples.push(ms(started.elapsed()));
            cpu.push(ms(process_cpu().saturating_sub(cpu_started)));
        }
        let median = percentile(&mut samples, 50.0);
        if median > slowest.1 {
            slowest = (query.to_string(), median);
        }
        all.extend(samples);
    }
    Ok(Latency {
        p50: percentile(&mut all, 50.0),
        p99: percentile(&mut all, 99.0),
        max: percentile(&mut all, 100.0),
        cpu: (percentile(&mut cpu, 50.0), percentile(&mut cpu, 99.0)),
        slowest,
        empty,
    })
}

struct Reindex {
    rel: String,
    size: u64,
    lines: u64,
    total: (f64, f64),
    update: (f64, f64),
    commit: (f64, f64),
    /// Searches needed until the marker showed, at most.
    max_searches: usize,
    /// One `persist` of the last edit to the index on disk.
    persist: f64,
    /// CPU time of this process per run (p50, p99).
    cpu: (f64, f64),
}

fn measure_reindex(index: &ProjectIndex, file: &ListedFile) -> Result<Reindex, String> {
    let original = index
        .read(&file.rel)
        .map_err(|reason| format!("cannot read {}: {reason}", file.abs.display()))?;
    let (mut total, mut update, mut commit) = (Vec::new(), Vec::new(), Vec::new());
    let mut cpu = Vec::new();
    let mut max_searches = 0;
    for run in 0..=REINDEX_RUNS {
        // Run 0 is a warm-up; the marker names differ on every run.
        let marker = format!("aicockpit_bench_marker_{run}");
        let text = format!("{original}{}", marker_source(file.lang, &marker));
        let cpu_started = process_cpu();
        let started = Instant::now();
        index
            .update_file(&file.rel, file.lang, &text)
            .map_err(|error| format!("update_file({}): {error}", file.rel))?;
        let updated = started.elapsed();
        index.commit().map_err(|error| format!("commit: {error}"))?;
        let committed = started.elapsed();
        let query = SearchQuery {
            limit: SEARCH_LIMIT,
            ..SearchQuery::new(marker.as_str())
        };
        let mut searches = 0;
        loop {
            searches += 1;
            let hits = index
                .search(&query)
                .map_err(|error| format!("search({marker}): {error}"))?;
            let found = hits.iter().any(|hit| {
                hit.path == file.rel
                    && (hit.symbol.as_ref().is_some_and(|s| *s.name == *marker)
                        || hit.snippet.contains(&marker))
            });
            if found {
                break;
            }
            if started.elapsed() > MARKER_TIMEOUT {
                return Err(format!(
                    "`{marker}` appended to {} was not searchable after {:?}",
                    file.rel, MARKER_TIMEOUT
                ));
            }
        }
        let elapsed = started.elapsed();
        let cpu_used = process_cpu().saturating_sub(cpu_started);
        if run > 0 {
            cpu.push(ms(cpu_used));
            total.push(ms(elapsed));
            update.push(ms(updated));
            commit.push(ms(committed - updated));
            max_searches = max_searches.max(searches);
        }
    }
    // The batched write of the pending edit to the index on disk (which
    // the index's background thread does a few seconds after an edit).
    let persisting = Instant::now();
    index
        .persist()
        .map_err(|error| format!("persist: {error}"))?;
    let persist = ms(persisting.elapsed());
    // Leave the index as the disk has it.
    index
        .update_file(&file.rel, file.lang, &original)
        .and_then(|_| index.persist())
        .map_err(|error| format!("restoring {}: {error}", file.rel))?;
    let pair = |samples: &mut Vec<f64>| (percentile(samples, 50.0), percentile(samples, 99.0));
    Ok(Reindex {
        rel: file.rel.clone(),
        size: file.size,
        lines: line_count(&original),
        total: pair(&mut total),
        update: pair(&mut update),
        commit: pair(&mut commit),
        max_searches,
        persist,
        cpu: pair(&mut cpu),
    })
}

/// A new top-level function named `name`, in the file's language.
fn marker_source(lang: LanguageId, name: &str) -> String {
    match lang {
        LanguageId::Python => format!("\n\ndef {name}():\n    return 0\n"),
        LanguageId::Rust => format!("\n\nfn {name}() {{}}\n"),
        LanguageId::Go => format!("\n\nfunc {name}() {{}}\n"),
        LanguageId::Java => format!("\n\nclass {name} {{}}\n"),
        LanguageId::C | LanguageId::Cpp => format!("\n\nint {name}(void) {{ return 0; }}\n"),
        LanguageId::JavaScript | LanguageId::TypeScript | LanguageId::Tsx => {
            format!("\n\nfunction {name}() {{}}\n")
        }
    }
}

/// A mid-sized file of the corpus's main language: the byte-weighted median
/// (half of that language's bytes are in smaller files), a typical file to edit.
fn mid_sized_file(list: &FileList) -> &ListedFile {
    let main = list.languages[0].0;
    let mut candidates: Vec<&ListedFile> = list.files.iter().filter(|f| f.lang == main).collect();
    candidates.sort_by_key(|f| (f.size, f.rel.as_str()));
    let half = candidates.iter().map(|f| f.size).sum::<u64>() / 2;
    let mut seen = 0;
    for file in &candidates {
        seen += file.size;
        if seen >= half {
            return file;
        }
    }
    candidates[candidates.len() / 2]
}

// ---------------------------------------------------------------------------
// One corpus

/// Measure one corpus.
fn bench_corpus(corpus: &Corpus, work: &Path, indexer: Indexer) -> Result<CorpusResult, String> {
    let root = &corpus.root;
    eprintln!("== {} ({})", corpus.label, root.display());

    eprintln!("building the file list…");
    let list = file_list(root, work)?;
    let mb = list.bytes as f64 / 1e6;
    eprintln!(
        "{} files, {} lines, {mb:.1} MB",
        group(list.files.len() as u64),
        group(list.lines)
    );

    eprintln!("ctags…");
    let ctags = run_ctags(&list, work)?;
    eprintln!("ctags: {:.2} s", ctags.run.wall.as_secs_f64());
    eprintln!("parse only (before the index)…");
    let parse_before = run_parse_only(&list, "parse-before", work)?;
    eprintln!("parse only: {:.2} s", parse_before.wall.as_secs_f64());

    let cache = work.join("cache");
    std::fs::create_dir_all(&cache)
        .map_err(|error| format!("cannot create {}: {error}", cache.display()))?;
    eprintln!("aicockpit index (cold)…");
    let cold = run_index(indexer, root, &cache, "index-cold", work)?;
    eprintln!("cold: {:.2} s", cold.run.wall.as_secs_f64());
    eprintln!("parse only (after the index)…");
    let parse_after = run_parse_only(&list, "parse-after", work)?;
    eprintln!("parse only: {:.2} s", parse_after.wall.as_secs_f64());
    eprintln!("aicockpit index (warm)…");
    let warm = run_index(indexer, root, &cache, "index-warm", work)?;
    eprintln!("warm: {:.2} s", warm.run.wall.as_secs_f64());
    let index_bytes = dir_size(&cold.index_dir);

    eprintln!("query latency…");
    let queries = if list.languages[0].0 == LanguageId::Python {
        PYTHON_QUERIES
    } else {
        SYSTEMS_QUERIES
    };
    let options = IndexOptions {
        read_only: true,
        ..IndexOptions::new(root, &cache)
    };
    let opening = Instant::now();
    let (index, _) = ProjectIndex::open(options)
        .map_err(|error| format!("opening the index read-only: {error}"))?;
    let open_time = opening.elapsed();
    let rss_open_kib = current_rss_kib();
    let indexed_files = index.stats().files;
    let recall = symbol_recall(&index, &list, &ctags);
    let search = measure_queries(queries, |text| {
        let query = SearchQuery {
            limit: SEARCH_LIMIT,
            ..SearchQuery::new(text)
        };
        index
            .search(&query)
            .map(|hits| hits.len())
            .map_err(|error| format!("search({text:?}): {error}"))
    })?;
    let symbols = measure_queries(queries, |text| {
        Ok(index.workspace_symbols(text, SYMBOL_LIMIT).len())
    })?;
    drop(index);

    eprintln!("one-file re-index…");
    let (index, _) = ProjectIndex::open(IndexOptions::new(root, &cache))
        .map_err(|error| format!("opening the index read-write: {error}"))?;
    if index.is_read_only() {
        return Err("the index opened read-only (its writer lock is held elsewhere)".into());
    }
    let reindex = measure_reindex(&index, mid_sized_file(&list))?;
    drop(index);

    Ok(CorpusResult {
        list,
        ctags,
        parse: [parse_before, parse_after],
        recall,
        cold,
        warm,
        index_bytes,
        queries,
        open_time,
        rss_open_kib,
        indexed_files,
        search,
        symbols,
        reindex,
    })
}

/// Everything measured on one corpus.
struct CorpusResult {
    list: FileList,
    ctags: CtagsRun,
    /// The parse-only pass before and after the cold index.
    parse: [ChildRun; 2],
    recall: Recall,
    cold: IndexRun,
    warm: IndexRun,
    index_bytes: Option<u64>,
    queries: &'static [&'static str],
    open_time: Duration,
    rss_open_kib: Option<u64>,
    indexed_files: usize,
    search: Latency,
    symbols: Latency,
    reindex: Reindex,
}

/// The Markdown section of one corpus.
fn render(corpus: &Corpus, result: &CorpusResult) -> String {
    let CorpusResult {
        list,
        ctags,
        parse,
        recall,
        cold,
        warm,
        index_bytes,
        queries,
        open_time,
        rss_open_kib,
        indexed_files,
        search,
        symbols,
        reindex,
    } = result;
    let mb = list.bytes as f64 / 1e6;
    let mut md = String::new();
    let w = &mut md;
    let _ = writeln!(w, "### {}\n", corpus.label);
    let _ = writeln!(w, "Root: {}\n", corpus.origin);
    let languages: Vec<String> = list
        .languages
        .iter()
        .map(|(lang, n)| format!("{lang} {}", group(*n as u64)))
        .collect();
    let _ = writeln!(w, "| Corpus (files the index considers) | |");
    let _ = writeln!(w, "|---|---:|");
    let _ = writeln!(w, "| Files | {} |", group(list.files.len() as u64));
    let _ = writeln!(w, "| Lines | {} |", group(list.lines));
    let _ = writeln!(w, "| Size | {mb:.1} MB |");
    let _ = writeln!(w, "| Languages | {} |", languages.join(", "));
    let _ = writeln!(
        w,
        "| Left out (over 1 MiB, binary, not UTF-8) | {} |\n",
        group(list.skipped as u64)
    );

    let ratio = cold.run.wall.as_secs_f64() / ctags.run.wall.as_secs_f64();
    let parse_wall = (parse[0].wall + parse[1].wall) / 2;
    let parse_cpu = (parse[0].cpu + parse[1].cpu) / 2;
    let parse_ratio = cold.run.wall.as_secs_f64() / parse_wall.as_secs_f64();
    // CPU time is steadier than wall time when other processes share the cores.
    let parse_cpu_ratio = cold.run.cpu.as_secs_f64() / parse_cpu.as_secs_f64();
    let _ = writeln!(
        w,
        "| Full index | ctags | parse only | AiCockpit cold | AiCockpit warm |"
    );
    let _ = writeln!(w, "|---|---:|---:|---:|---:|");
    let _ = writeln!(
        w,
        "| Wall time | {} | {} (before {}, after {}) | {} (**{parse_ratio:.2}x parse**, {ratio:.2}x ctags) | {} |",
        secs(ctags.run.wall),
        secs(parse_wall),
        secs(parse[0].wall),
        secs(parse[1].wall),
        secs(cold.run.wall),
        secs(warm.run.wall)
    );
    let _ = writeln!(
        w,
        "| CPU time (user+sys) | {} | {} | {} ({parse_cpu_ratio:.2}x parse) | {} |",
        secs(ctags.run.cpu),
        secs(parse_cpu),
        secs(cold.run.cpu),
        secs(warm.run.cpu)
    );
    let _ = writeln!(
        w,
        "| Throughput | {:.1} MB/s | {:.1} MB/s | {:.1} MB/s | |",
        mb / ctags.run.wall.as_secs_f64(),
        mb / parse_wall.as_secs_f64(),
        mb / cold.run.wall.as_secs_f64()
    );
    let _ = writeln!(
        w,
        "| Peak RSS | {} | {} | {} | {} |",
        mib(ctags.run.max_rss_kib),
        mib(parse[0].max_rss_kib.max(parse[1].max_rss_kib)),
        mib(cold.run.max_rss_kib),
        mib(warm.run.max_rss_kib)
    );
    let _ = writeln!(
        w,
        "| Files indexed / parsed | {} | {} | {} / {} | {} / {} |",
        group(list.files.len() as u64),
        parse[0].stdout.trim().split(' ').next().unwrap_or("?"),
        group(cold.files),
        group(cold.parsed),
        group(warm.files),
        group(warm.parsed)
    );
    let _ = writeln!(
        w,
        "| Tags / symbols | {} | | {} | |",
        group(ctags.tags),
        group(cold.symbols)
    );
    let _ = writeln!(w, "| Chunks | | | {} | |", group(cold.chunks));
    let _ = writeln!(
        w,
        "| Skipped by the indexer | | | {} | |",
        group(cold.skipped)
    );
    let _ = writeln!(
        w,
        "| Refresh time reported by the indexer | | | {:.0} ms ({:.1} MB parsed) | {:.0} ms |",
        cold.elapsed_ms,
        cold.bytes_parsed as f64 / 1e6,
        warm.elapsed_ms
    );
    let _ = writeln!(
        w,
        "| Output on disk | | | {} index | |\n",
        index_bytes.map_or("?".to_string(), |b| format!("{:.0} MB", b as f64 / 1e6))
    );

    let _ = writeln!(
        w,
        "Symbol recall against ctags: {:.3} of {} ctags definitions ({}) are symbols of \
         the index in the same file; by ctags kind: {}.\n",
        recall.share,
        group(recall.of as u64),
        RECALL_KINDS.join(", "),
        recall
            .by_kind
            .iter()
            .map(|(kind, found, of)| format!(
                "{kind} {:.3} ({} of {})",
                *found as f64 / (*of).max(1) as f64,
                group(*found as u64),
                group(*of as u64)
            ))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let _ = writeln!(
        w,
        "In-process over the built index ({} files; read-only open: {:.0} ms, \
         process RSS after open: {}); {} queries, each run {QUERY_RUNS} times after \
         {QUERY_WARMUP} warm-up runs:\n",
        group(*indexed_files as u64),
        ms(*open_time),
        rss_open_kib.map_or_else(|| "?".to_string(), mib),
        queries.len()
    );
    let _ = writeln!(
        w,
        "| Latency (ms) | p50 | p99 | max | CPU p50 / p99 | slowest query (its p50) |"
    );
    let _ = writeln!(w, "|---|---:|---:|---:|---:|---|");
    for (name, latency) in [
        (format!("`search` (limit {SEARCH_LIMIT})"), &search),
        (
            format!("`workspace_symbols` (limit {SYMBOL_LIMIT})"),
            &symbols,
        ),
    ] {
        let _ = writeln!(
            w,
            "| {name} | {:.2} | {:.2} | {:.2} | {:.2} / {:.2} | `{}` ({:.2}) |",
            latency.p50,
            latency.p99,
            latency.max,
            latency.cpu.0,
            latency.cpu.1,
            latency.slowest.0,
            latency.slowest.1
        );
    }
    let _ = writeln!(
        w,
        "| One-file re-index (`update_file` + `commit` until `search` finds the new function) \
         | {:.2} | {:.2} | | {:.2} / {:.2} | of which `update_file` p50 {:.2}, `commit` p50 {:.2} |",
        reindex.total.0,
        reindex.total.1,
        reindex.cpu.0,
        reindex.cpu.1,
        reindex.update.0,
        reindex.commit.0
    );
    let _ = writeln!(w);
    let _ = writeln!(
        w,
        "Queries: {}.",
        queries
            .iter()
            .map(|q| format!("`{q}`"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    for (name, latency) in [("search", &search), ("workspace_symbols", &symbols)] {
        if !latency.empty.is_empty() {
            let _ = writeln!(
                w,
                "No `{name}` result for: {}.",
                latency
                    .empty
                    .iter()
                    .map(|q| format!("`{q}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    let _ = writeln!(
        w,
        "Re-indexed file: `{}` ({}, {} lines), {REINDEX_RUNS} runs after one warm-up; \
         `commit` p99 {:.2} ms, `update_file` p99 {:.2} ms; the marker was found by the \
         first search after the commit{}. `commit` makes the edit searchable from the \
         in-memory overlay; writing it to the index on disk (`persist`, done in the \
         background a few seconds after an edit) took {:.2} ms once the runs were over.\n",
        reindex.rel,
        kib(reindex.size),
        group(reindex.lines),
        reindex.commit.1,
        reindex.update.1,
        if reindex.max_searches > 1 {
            format!(" (at worst after {} searches)", reindex.max_searches)
        } else {
            String::new()
        },
        reindex.persist
    );

    let peak = cold.run.max_rss_kib.max(warm.run.max_rss_kib);
    let _ = writeln!(w, "| Target | Goal | Measured | Result |");
    let _ = writeln!(w, "|---|---|---:|---|");
    let rows = [
        (
            "Cold index vs the parse-only pass",
            format!("<= {TARGET_PARSE_RATIO:.1}x parse"),
            format!("{parse_ratio:.2}x wall, {parse_cpu_ratio:.2}x CPU ({ratio:.2}x ctags)"),
            parse_ratio <= TARGET_PARSE_RATIO,
        ),
        (
            "Symbol recall against ctags",
            format!(">= {TARGET_RECALL:.2}"),
            format!("{:.3}", recall.share),
            recall.share >= TARGET_RECALL,
        ),
        (
            "`search` p99",
            format!("< {TARGET_SEARCH_P99_MS:.0} ms"),
            format!("{:.2} ms", search.p99),
            search.p99 < TARGET_SEARCH_P99_MS,
        ),
        (
            "`workspace/symbol` p99",
            format!("< {TARGET_SYMBOLS_P99_MS:.0} ms"),
            format!("{:.2} ms", symbols.p99),
            symbols.p99 < TARGET_SYMBOLS_P99_MS,
        ),
        (
            "One-file re-index p99",
            format!("< {TARGET_REINDEX_P99_MS:.0} ms"),
            format!("{:.2} ms", reindex.total.1),
            reindex.total.1 < TARGET_REINDEX_P99_MS,
        ),
        (
            "Peak memory (index runs)",
            "< 1 GiB".to_string(),
            mib(peak),
            peak < TARGET_PEAK_RSS_KIB,
        ),
    ];
    for (name, goal, measured, pass) in rows {
        let _ = writeln!(
            w,
            "| {name} | {goal} | {measured} | {} |",
            if pass { "pass" } else { "**FAIL**" }
        );
    }
    let _ = writeln!(w);
    md
}

// ---------------------------------------------------------------------------
// The report header and small helpers

fn header(w: &mut String, ctags_version: &str, indexer: Indexer) {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split(':').nth(1))
                .map(|model| model.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|line| line.starts_with("MemTotal:"))
                .and_then(|line| line.split_whitespace().nth(1))
                .and_then(|kib| kib.parse::<u64>().ok())
        })
        .map_or("? GiB".to_string(), |kib| {
            format!("{:.0} GiB", kib as f64 / 1024.0 / 1024.0)
        });
    let revision = Command::new("git")
        .args(["describe", "--always", "--dirty"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|| "unknown".into());
    let _ = writeln!(w, "## Index benchmark: large corpora\n");
    let _ = writeln!(w, "Command: `{BENCH_COMMAND}`\n");
    let _ = writeln!(
        w,
        "Run on {} (UTC): {cores} cores ({cpu}), {memory} RAM, {} {}; AiCockpit {} \
         (revision {revision}); baseline {ctags_version}.\n",
        today(),
        std::env::consts::OS,
        std::env::consts::ARCH,
        env!("CARGO_PKG_VERSION"),
    );
    let _ = writeln!(
        w,
        "Both tools get the same explicit file list (the index's walk: known extensions, \
         `.gitignore`, files up to 1 MiB, no binary or non-UTF-8 files), read once before \
         timing so the page cache is warm for both. Baseline: `ctags -L <list> -f <tags> \
         --fields=+nK` (single-threaded). Parse floor: this bench binary re-executed, reading \
         and parsing every listed file with the index's grammars on {cores} threads (the \
         indexer's default), run before and after the cold index and averaged. AiCockpit: {} \
         with a fresh empty `AICOCKPIT_CACHE_DIR` and `RUST_LOG=warn`, parsing on all cores. \
         Wall time is spawn to exit; peak RSS is the child's `ru_maxrss` from `wait4` \
         (started by a small launcher process, so the bench's own memory does not count). \
         Latencies are measured in-process through `aicockpit-index`, with the binaries' allocator (mimalloc). Load average when the \
         run started: {load} (other processes on the machine compete for the same cores; \
         the ratios compare runs taken back to back under the same load).\n",
        indexer.describe()
    );
}

/// Sum of file sizes under a folder.
fn dir_size(dir: &Path) -> Option<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).ok()? {
        let entry = entry.ok()?;
        let metadata = entry.metadata().ok()?;
        total += if metadata.is_dir() {
            dir_size(&entry.path())?
        } else {
            metadata.len()
        };
    }
    Some(total)
}

fn current_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find(|line| line.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Nearest-rank percentile; sorts the samples.
fn percentile(samples: &mut [f64], p: f64) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    samples.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * samples.len() as f64).ceil() as usize;
    samples[rank.clamp(1, samples.len()) - 1]
}

/// CPU time used so far by this process, all threads.
fn process_cpu() -> Duration {
    // SAFETY: timespec is plain old data; all-zero is a valid value.
    let mut now: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: a valid clock id and a valid pointer to a timespec we own.
    let status = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut now) };
    if status != 0 {
        return Duration::ZERO;
    }
    Duration::new(
        now.tv_sec.max(0) as u64,
        now.tv_nsec.clamp(0, 999_999_999) as u32,
    )
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn secs(duration: Duration) -> String {
    format!("{:.2} s", duration.as_secs_f64())
}

fn mib(kib: u64) -> String {
    format!("{:.0} MiB", kib as f64 / 1024.0)
}

fn kib(bytes: u64) -> String {
    format!("{:.1} KiB", bytes as f64 / 1024.0)
}

/// `12345678` as `12,345,678`.
fn group(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, c) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Today's date (UTC) as `YYYY-MM-DD`.
fn today() -> String {
    let days = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / 86_400) as i64;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}
