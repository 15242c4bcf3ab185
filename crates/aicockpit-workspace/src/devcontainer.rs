//! Reading a user's `devcontainer.json` (JSON with comments) into the few
//! settings AiCockpit acts on.
//!
//! Invariant: a configuration that asks for weaker isolation than a
//! workspace has by default (`privileged`, `capAdd`, `securityOpt`,
//! `runArgs`, `mounts`, `workspaceMount`, `build.options`) is refused as a
//! whole, never silently trimmed, so a user is never led to believe a
//! setting took effect when it did not. Fields that are harmless but not
//! acted on are listed in [`DevContainer::ignored`]. The file is read beneath
//! the workspace root through `cap-std`, so a symlink cannot make us read a
//! host file.
//!
//! Variables such as `${localEnv:HOME}` are passed through untouched; the
//! caller decides whether to substitute them.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use cap_std::fs::Dir;
use serde::Serialize;
use serde_json::{Map, Value};

/// The places a devcontainer configuration is looked for, in order, relative to the workspace root.
pub const CANDIDATES: [&str; 2] = [".devcontainer/devcontainer.json", ".devcontainer.json"];

/// Files larger than this are refused rather than read: a real configuration is a few kilobytes.
pub const MAX_BYTES: u64 = 1024 * 1024;

/// The settings of a devcontainer.json that AiCockpit acts on.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DevContainer {
    /// The image to run. When `build` is also given, the build takes precedence.
    pub image: Option<String>,
    pub build: Option<DevContainerBuild>,
    pub container_env: BTreeMap<String, String>,
    pub remote_user: Option<String>,
    pub container_user: Option<String>,
    pub post_create_command: Option<LifecycleCommand>,
    pub workspace_folder: Option<String>,
    /// Names of fields that were present but are not acted on (for example
    /// `forwardPorts`, `features`, `customizations`), sorted, so the user can
    /// be told. Nested fields are written with a dot, like `build.target`.
    pub ignored: Vec<String>,
}

/// How to build the workspace image from a Dockerfile.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DevContainerBuild {
    /// Path of the Dockerfile, relative to the devcontainer.json, as written.
    pub dockerfile: String,
    /// Build context, relative to the devcontainer.json, as written.
    pub context: Option<String>,
    pub args: BTreeMap<String, String>,
}

/// A lifecycle command such as `postCreateCommand`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum LifecycleCommand {
    /// A string, run by a shell.
    Shell(String),
    /// An array, run directly without a shell: the first element is the program.
    Args(Vec<String>),
    /// An object of named commands that the specification runs in parallel.
    /// Its values are never themselves `Parallel`.
    Parallel(BTreeMap<String, LifecycleCommand>),
}

/// Why a devcontainer.json could not be used.
#[derive(Debug, thiserror::Error)]
pub enum DevContainerError {
    #[error("devcontainer.json, line {line}, column {column}: {message}")]
    Syntax {
        /// 1-based line in the original text.
        line: usize,
        /// 1-based column in characters in the original text.
        column: usize,
        message: String,
    },
    #[error("devcontainer.json: `{field}` {message}")]
    Invalid { field: String, message: String },
    #[error("devcontainer.json asks for `{field}`, which AiCockpit refuses: {reason}")]
    Refused {
        field: &'static str,
        reason: &'static str,
    },
    #[error("devcontainer.json uses `{field}`, which AiCockpit does not support: {reason}")]
    Unsupported {
        field: &'static str,
        reason: &'static str,
    },
    #[error("{path} is larger than the {limit}-byte limit for a devcontainer.json")]
    TooLarge { path: PathBuf, limit: u64 },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

/// Where the workspace's devcontainer.json is: `.devcontainer/devcontainer.json`,
/// then `.devcontainer.json`. `None` when neither is a file beneath `root`.
pub fn find(root: &Path) -> Option<PathBuf> {
    let dir = Dir::open_ambient_dir(root, cap_std::ambient_authority()).ok()?;
    CANDIDATES
        .iter()
        .find(|candidate| {
            dir.metadata(candidate)
                .map(|metadata| metadata.is_file())
                .unwrap_or(false)
        })
        .map(|candidate| root.join(candidate))
}

/// Read and parse the workspace's devcontainer.json. `Ok(None)` when there is none.
///
/// The folder is the container's to change: the file is reached through
/// directory handles with no symlink followed, must be a regular file (a
/// FIFO is refused without blocking) and is read up to [`MAX_BYTES`].
pub fn load(root: &Path) -> Result<Option<DevContainer>, DevContainerError> {
    let folder = crate::confined::Folder::open_no_symlinks(root).map_err(|source| {
        DevContainerError::Io {
            path: root.to_path_buf(),
            source,
        }
    })?;
    for candidate in CANDIDATES {
        let path = root.join(candidate);
        let io_error = |source| DevContainerError::Io {
            path: path.clone(),
            source,
        };
        let relative = Path::new(candidate);
        let (Some(parent), Some(name)) = (relative.parent(), relative.file_name()) else {
            continue;
        };
        let holder = match folder.open_dir_path(parent) {
            Ok(holder) => holder,
            Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
            Err(error) => return Err(io_error(error)),
        };
        match holder.entry(name).map_err(io_error)? {
            Some(crate::confined::EntryType::File) => {}
            Some(crate::confined::EntryType::Symlink) => {
                return Err(io_error(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "it is a symlink, which is not followed in a workspace folder",
                )))
            }
            Some(_) | None => continue,
        }
        let (file, _, size) = holder.open_file(name).map_err(io_error)?;
        if size > MAX_BYTES {
            return Err(DevContainerError::TooLarge {
                path,
                limit: MAX_BYTES,
            });
        }
        let bytes =
            crate::confined::read_bounded(file, size, MAX_BYTES, name).map_err(|error| {
                if error.kind() == io::ErrorKind::InvalidData {
                    DevContainerError::TooLarge {
                        path: path.clone(),
                        limit: MAX_BYTES,
                    }
                } else {
                    io_error(error)
                }
            })?;
        let text = String::from_utf8(bytes).map_err(|_| {
            io_error(io::Error::new(
                io::ErrorKind::InvalidData,
                "the file is not UTF-8 text",
            ))
        })?;
        return parse(&text).map(Some);
    }
    Ok(None)
}

/// Parse the text of a devcontainer.json (comments and trailing commas allowed).
pub fn parse(text: &str) -> Result<DevContainer, DevContainerError> {
    // A byte-order mark is legal in a file but not in JSON.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let plain = strip_jsonc(text)?;
    let value: Value = serde_json::from_str(&plain).map_err(|error| syntax_error(text, &error))?;
    let Value::Object(object) = value else {
        return Err(invalid("(top level)", "must be an object"));
    };
    refuse_weaker_isolation(&object)?;
    if object.contains_key("dockerComposeFile") {
        return Err(DevContainerError::Unsupported {
            field: "dockerComposeFile",
            reason: "a workspace is one container, not a Docker Compose project",
        });
    }
    interpret(&object)
}

/// Fields that would weaken isolation, in the order they are checked, with
/// the JSON type each has and why each is refused. Only the first one present
/// is reported, so the error is the same on every run.
const REFUSED: [(&str, Shape, &str); 6] = [
    (
        "privileged",
        Shape::Flag,
        "a privileged container can take over the host",
    ),
    (
        "capAdd",
        Shape::List,
        "workspaces run with every capability dropped",
    ),
    (
        "securityOpt",
        Shape::List,
        "workspaces keep their seccomp profile and no-new-privileges setting",
    ),
    (
        "runArgs",
        Shape::List,
        "raw `docker run` arguments could undo the workspace's isolation",
    ),
    (
        "mounts",
        Shape::List,
        "workspaces see only their own files; host folders are never mounted",
    ),
    (
        "workspaceMount",
        Shape::Text,
        "AiCockpit decides where the workspace's files are mounted",
    ),
];

/// The JSON type of a refusable field.
#[derive(Clone, Copy)]
enum Shape {
    Flag,
    List,
    Text,
}

/// Top-level fields that are read or checked here, so they never count as ignored.
const UNDERSTOOD: [&str; 16] = [
    "image",
    "build",
    "dockerFile",
    "context",
    "containerEnv",
    "remoteUser",
    "containerUser",
    "postCreateCommand",
    "workspaceFolder",
    "privileged",
    "capAdd",
    "securityOpt",
    "runArgs",
    "mounts",
    "workspaceMount",
    "dockerComposeFile",
];

fn refuse_weaker_isolation(object: &Map<String, Value>) -> Result<(), DevContainerError> {
    for (field, shape, reason) in REFUSED {
        let Some(value) = object.get(field) else {
            continue;
        };
        if asks_for_something(field, shape, value)? {
            return Err(DevContainerError::Refused { field, reason });
        }
    }
    if let Some(Value::Object(build)) = object.get("build") {
        if let Some(options) = build.get("options") {
            if asks_for_something("build.options", Shape::List, options)? {
                return Err(DevContainerError::Refused {
                    field: "build.options",
                    reason: "raw `docker build` arguments could give the build host access",
                });
            }
        }
    }
    Ok(())
}

/// Whether a refusable field asks for anything: `true`, a non-empty array or
/// a non-empty string. `false`, `null` and empty values ask for nothing; a
/// value of another type is invalid rather than guessed at.
fn asks_for_something(field: &str, shape: Shape, value: &Value) -> Result<bool, DevContainerError> {
    match (shape, value) {
        (_, Value::Null) => Ok(false),
        (Shape::Flag, Value::Bool(flag)) => Ok(*flag),
        (Shape::List, Value::Array(items)) => Ok(!items.is_empty()),
        (Shape::Text, Value::String(text)) => Ok(!text.is_empty()),
        (Shape::Flag, _) => Err(invalid(field, "must be true or false")),
        (Shape::List, _) => Err(invalid(field, "must be an array")),
        (Shape::Text, _) => Err(invalid(field, "must be a string")),
    }
}

fn interpret(object: &Map<String, Value>) -> Result<DevContainer, DevContainerError> {
    let mut config = DevContainer {
        image: optional_string(object, "image", "image")?,
        container_env: string_map(object, "containerEnv", "containerEnv")?,
        remote_user: optional_string(object, "remoteUser", "remoteUser")?,
        container_user: optional_string(object, "containerUser", "containerUser")?,
        workspace_folder: optional_string(object, "workspaceFolder", "workspaceFolder")?,
        post_create_command: match object.get("postCreateCommand") {
            None | Some(Value::Null) => None,
            Some(value) => Some(lifecycle_command("postCreateCommand", value, true)?),
        },
        ..DevContainer::default()
    };
    config.build = build(object, &mut config.ignored)?;
    config.ignored.extend(
        object
            .keys()
            .filter(|key| !UNDERSTOOD.contains(&key.as_str()))
            .cloned(),
    );
    config.ignored.sort();
    Ok(config)
}

/// The build section, merged with the older top-level `dockerFile` and `context`.
fn build(
    object: &Map<String, Value>,
    ignored: &mut Vec<String>,
) -> Result<Option<DevContainerBuild>, DevContainerError> {
    let empty = Map::new();
    let section = match object.get("build") {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(section)) => section,
        Some(_) => return Err(invalid("build", "must be an object")),
    };
    let dockerfile = match optional_string(section, "dockerfile", "build.dockerfile")? {
        Some(dockerfile) => Some(dockerfile),
        None => optional_string(object, "dockerFile", "dockerFile")?,
    };
    let context = match optional_string(section, "context", "build.context")? {
        Some(context) => Some(context),
        None => optional_string(object, "context", "context")?,
    };
    let args = string_map(section, "args", "build.args")?;
    ignored.extend(
        section
            .keys()
            .filter(|key| !["dockerfile", "context", "args", "options"].contains(&key.as_str()))
            .map(|key| format!("build.{key}")),
    );
    match dockerfile {
        Some(dockerfile) => Ok(Some(DevContainerBuild {
            dockerfile,
            context,
            args,
        })),
        None if section.is_empty() && context.is_none() => Ok(None),
        None => Err(invalid(
            "build.dockerfile",
            "is missing: a build needs a Dockerfile",
        )),
    }
}

fn optional_string(
    object: &Map<String, Value>,
    key: &str,
    field: &str,
) -> Result<Option<String>, DevContainerError> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(_) => Err(invalid(field, "must be a string")),
    }
}

fn string_map(
    object: &Map<String, Value>,
    key: &str,
    field: &str,
) -> Result<BTreeMap<String, String>, DevContainerError> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(BTreeMap::new()),
        Some(Value::Object(entries)) => entries
            .iter()
            .map(|(name, value)| match value {
                Value::String(text) => Ok((name.clone(), text.clone())),
                _ => Err(invalid(&format!("{field}.{name}"), "must be a string")),
            })
            .collect(),
        Some(_) => Err(invalid(field, "must be an object of strings")),
    }
}

/// A lifecycle command; `allow_parallel` is false for the values of an
/// object of named commands, which the specification does not nest.
fn lifecycle_command(
    field: &str,
    value: &Value,
    allow_parallel: bool,
) -> Result<LifecycleCommand, DevContainerError> {
    match value {
        Value::String(text) => Ok(LifecycleCommand::Shell(text.clone())),
        Value::Array(items) => {
            if items.is_empty() {
                return Err(invalid(field, "is an empty command"));
            }
            items
                .iter()
                .map(|item| match item {
                    Value::String(text) => Ok(text.clone()),
                    _ => Err(invalid(field, "must be an array of strings")),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(LifecycleCommand::Args)
        }
        Value::Object(commands) if allow_parallel => commands
            .iter()
            .map(|(name, command)| {
                lifecycle_command(&format!("{field}.{name}"), command, false)
                    .map(|command| (name.clone(), command))
            })
            .collect::<Result<BTreeMap<_, _>, _>>()
            .map(LifecycleCommand::Parallel),
        _ => Err(invalid(
            field,
            "must be a string, an array of strings or an object of those",
        )),
    }
}

fn invalid(field: &str, message: &str) -> DevContainerError {
    DevContainerError::Invalid {
        field: field.to_string(),
        message: message.to_string(),
    }
}

/// Turn JSON-with-comments into plain JSON of exactly the same byte length:
/// comments and trailing commas become spaces, line breaks are kept, so
/// every position reported by the JSON parser is a position in `text`.
fn strip_jsonc(text: &str) -> Result<String, DevContainerError> {
    let bytes = text.as_bytes();
    let mut out = bytes.to_vec();
    let mut index = 0;
    let mut in_string = false;
    while index < bytes.len() {
        let byte = bytes[index];
        if in_string {
            match byte {
                b'\\' => index += 1,
                b'"' => in_string = false,
                _ => {}
            }
            index += 1;
            continue;
        }
        match (byte, bytes.get(index + 1).copied()) {
            (b'"', _) => {
                in_string = true;
                index += 1;
            }
            (b'/', Some(b'/')) => {
                while index < bytes.len() && bytes[index] != b'\n' && bytes[index] != b'\r' {
                    out[index] = b' ';
                    index += 1;
                }
            }
            (b'/', Some(b'*')) => {
                let start = index;
                let Some(length) = text[start + 2..].find("*/") else {
                    let (line, column) = line_and_column(text, start);
                    return Err(DevContainerError::Syntax {
                        line,
                        column,
                        message: "a /* comment is never closed".to_string(),
                    });
                };
                let end = start + 2 + length + 2;
                for slot in &mut out[start..end] {
                    if *slot != b'\n' && *slot != b'\r' {
                        *slot = b' ';
                    }
                }
                index = end;
            }
            _ => index += 1,
        }
    }
    remove_trailing_commas(&mut out);
    // Only whole comments (ASCII delimiters and everything between them) were
    // replaced by ASCII spaces, so the bytes are still UTF-8; the fallback
    // keeps this function free of panics all the same.
    String::from_utf8(out).map_err(|_| DevContainerError::Syntax {
        line: 1,
        column: 1,
        message: "the text is not UTF-8".to_string(),
    })
}

/// Blank out every comma that follows a value and precedes `}` or `]`.
/// Commas after `[`, `{` or another comma are left for the parser to reject.
fn remove_trailing_commas(bytes: &mut [u8]) {
    let mut in_string = false;
    let mut escaped = false;
    let mut previous_significant = 0u8;
    for index in 0..bytes.len() {
        let byte = bytes[index];
        if in_string {
            if escaped {
                escaped = false;
            } else if byte == b'\\' {
                escaped = true;
            } else if byte == b'"' {
                in_string = false;
                previous_significant = b'"';
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b' ' | b'\t' | b'\n' | b'\r' => {}
            b',' if !matches!(previous_significant, b'[' | b'{' | b',' | 0) => {
                let next = bytes[index + 1..]
                    .iter()
                    .find(|byte| !matches!(byte, b' ' | b'\t' | b'\n' | b'\r'));
                if matches!(next, Some(b'}') | Some(b']')) {
                    bytes[index] = b' ';
                } else {
                    previous_significant = b',';
                }
            }
            _ => previous_significant = byte,
        }
    }
}

/// Convert a serde_json error into a `Syntax` error with a character column.
fn syntax_error(text: &str, error: &serde_json::Error) -> DevContainerError {
    let line = error.line().max(1);
    let byte_column = error.column();
    // serde_json's Display appends " at line L column C"; the position is reported separately.
    let full = error.to_string();
    let suffix = format!(" at line {} column {}", error.line(), error.column());
    let message = full.strip_suffix(&suffix).unwrap_or(&full).to_string();
    let line_text = text.split('\n').nth(line - 1).unwrap_or("");
    let mut boundary = byte_column.min(line_text.len());
    while !line_text.is_char_boundary(boundary) {
        boundary -= 1;
    }
    let column = line_text[..boundary].chars().count().max(1);
    DevContainerError::Syntax {
        line,
        column,
        message,
    }
}

/// 1-based line and character column of a byte offset.
fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|index| index + 1).unwrap_or(0);
    (line, before[line_start..].chars().count() + 1)
}
