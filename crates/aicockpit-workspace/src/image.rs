//! Building the default workspace image on the local engine, without a
//! registry: a `FROM scratch` image made of a static busybox (or any root
//! filesystem folder the user points at) with an unprivileged `dev` user.
//!
//! Invariant: nothing is pulled or downloaded; the build runs with network
//! mode `none` from a context assembled here in memory.

use std::path::{Path, PathBuf};

use bollard::query_parameters::BuildImageOptions;
use futures_util::StreamExt;

use crate::docker::DockerBackend;
use crate::error::WorkspaceError;

/// The tag `aicockpit image build` gives the image by default.
pub const DEFAULT_TAG: &str = "aicockpit/workspace:latest";

/// Where busybox-static puts its binary on Debian and elsewhere.
const BUSYBOX_CANDIDATES: &[&str] = &["/bin/busybox", "/usr/bin/busybox", "/sbin/busybox"];

/// What to build the image from.
#[derive(Clone, Debug, Default)]
pub struct ImageSource {
    /// A statically linked busybox; found on the host when `None`.
    pub busybox: Option<PathBuf>,
    /// Use this folder as the whole root filesystem instead (e.g. a debootstrap root).
    pub rootfs: Option<PathBuf>,
}

/// A finished build.
#[derive(Clone, Debug, serde::Serialize)]
pub struct BuiltImage {
    pub tag: String,
    pub id: String,
    /// What the root filesystem came from.
    pub source: String,
}

/// Find a statically linked busybox on the host.
pub fn find_busybox() -> Result<PathBuf, WorkspaceError> {
    for candidate in BUSYBOX_CANDIDATES {
        let path = Path::new(candidate);
        if path.is_file() {
            check_static(path)?;
            return Ok(path.to_path_buf());
        }
    }
    Err(WorkspaceError::InvalidRequest(
        "no busybox found to build the workspace image from: install busybox-static \
         (`apt-get install busybox-static`), pass --busybox PATH, or --rootfs DIR with a root filesystem"
            .into(),
    ))
}

/// Refuse a dynamically linked binary: it would not run in a `FROM scratch` image.
fn check_static(path: &Path) -> Result<(), WorkspaceError> {
    let bytes = std::fs::read(path).map_err(|e| WorkspaceError::io(path, e))?;
    if !has_no_interpreter(&bytes) {
        return Err(WorkspaceError::InvalidRequest(format!(
            "{} is dynamically linked and would not run in an empty image: install busybox-static \
             (`apt-get install busybox-static`) or pass --busybox with a static build",
            path.display()
        )));
    }
    Ok(())
}

/// True for a 64- or 32-bit little-endian ELF file with no `PT_INTERP` header.
fn has_no_interpreter(elf: &[u8]) -> bool {
    const PT_INTERP: u32 = 3;
    if elf.len() < 64 || &elf[..4] != b"\x7fELF" || elf[5] != 1 {
        return false;
    }
    let read = |offset: usize, width: usize| -> Option<u64> {
        let slice = elf.get(offset..offset.checked_add(width)?)?;
        let mut value = 0u64;
        for (i, byte) in slice.iter().enumerate() {
            value |= u64::from(*byte) << (8 * i);
        }
        Some(value)
    };
    let is_64 = elf[4] == 2;
    let (phoff, phentsize, phnum) = if is_64 {
        (read(0x20, 8), read(0x36, 2), read(0x38, 2))
    } else {
        (read(0x1c, 4), read(0x2a, 2), read(0x2c, 2))
    };
    let (Some(phoff), Some(phentsize), Some(phnum)) = (phoff, phentsize, phnum) else {
        return false;
    };
    (0..phnum).all(|i| {
        // A crafted header must not overflow the arithmetic: such a file is not static.
        let offset = i
            .checked_mul(phentsize)
            .and_then(|o| o.checked_add(phoff))
            .and_then(|o| usize::try_from(o).ok());
        offset
            .and_then(|offset| read(offset, 4))
            .is_some_and(|kind| kind as u32 != PT_INTERP)
    })
}

const DOCKERFILE: &str = "\
FROM scratch
COPY rootfs/ /
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/home/dev
WORKDIR /workspace
USER 1000:1000
LABEL org.opencontainers.image.title=\"AiCockpit workspace\" aicockpit.image=workspace
CMD [\"sleep\", \"infinity\"]
";

/// The build context: a Dockerfile and `rootfs/`, as an uncompressed tar.
pub fn build_context(source: &ImageSource) -> Result<(Vec<u8>, String), WorkspaceError> {
    let mut archive = tar::Builder::new(Vec::new());
    archive.follow_symlinks(false);
    let context_error = |e: std::io::Error| WorkspaceError::io("build context", e);
    add_file(&mut archive, "Dockerfile", DOCKERFILE.as_bytes(), 0o644).map_err(context_error)?;
    let description = if let Some(rootfs) = &source.rootfs {
        if !rootfs.join("bin/sh").exists() && !rootfs.join("usr/bin/sh").exists() {
            return Err(WorkspaceError::InvalidRequest(format!(
                "{} has no bin/sh: workspaces need a POSIX shell in the root filesystem",
                rootfs.display()
            )));
        }
        archive
            .append_dir_all("rootfs", rootfs)
            .map_err(|e| WorkspaceError::io(rootfs, e))?;
        format!("root filesystem {}", rootfs.display())
    } else {
        let busybox = match &source.busybox {
            Some(path) => {
                check_static(path)?;
                path.clone()
            }
            None => find_busybox()?,
        };
        add_busybox_root(&mut archive, &busybox)?;
        format!("busybox {}", busybox.display())
    };
    let bytes = archive.into_inner().map_err(context_error)?;
    Ok((bytes, description))
}

fn add_file(
    archive: &mut tar::Builder<Vec<u8>>,
    path: &str,
    bytes: &[u8],
    mode: u32,
) -> std::io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(bytes.len() as u64);
    header.set_mode(mode);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_mtime(0);
    archive.append_data(&mut header, path, bytes)
}

fn add_dir(
    archive: &mut tar::Builder<Vec<u8>>,
    path: &str,
    mode: u32,
    owner: u64,
) -> std::io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(0);
    header.set_mode(mode);
    header.set_uid(owner);
    header.set_gid(owner);
    header.set_entry_type(tar::EntryType::Directory);
    header.set_mtime(0);
    archive.append_data(&mut header, path, std::io::empty())
}

fn add_busybox_root(
    archive: &mut tar::Builder<Vec<u8>>,
    busybox: &Path,
) -> Result<(), WorkspaceError> {
    let binary = std::fs::read(busybox).map_err(|e| WorkspaceError::io(busybox, e))?;
    // The applet list comes from the binary itself, so the links match what it can do.
    let listing = std::process::Command::new(busybox)
        .arg("--list-full")
        .output()
        .map_err(|e| WorkspaceError::io(busybox, e))?;
    let applets = String::from_utf8_lossy(&listing.stdout).into_owned();
    let io = |e: std::io::Error| WorkspaceError::io("build context", e);
    for dir in [
        "bin", "sbin", "usr", "usr/bin", "usr/sbin", "etc", "root", "home", "proc", "sys", "dev",
        "run", "var",
    ] {
        add_dir(archive, &format!("rootfs/{dir}"), 0o755, 0).map_err(io)?;
    }
    add_dir(archive, "rootfs/tmp", 0o1777, 0).map_err(io)?;
    add_dir(archive, "rootfs/var/tmp", 0o1777, 0).map_err(io)?;
    add_dir(archive, "rootfs/home/dev", 0o755, 1000).map_err(io)?;
    add_dir(archive, "rootfs/workspace", 0o755, 1000).map_err(io)?;
    add_file(archive, "rootfs/bin/busybox", &binary, 0o755).map_err(io)?;
    add_file(
        archive,
        "rootfs/etc/passwd",
        b"root:x:0:0:root:/root:/bin/sh\ndev:x:1000:1000:dev:/home/dev:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
        0o644,
    )
    .map_err(io)?;
    add_file(
        archive,
        "rootfs/etc/group",
        b"root:x:0:\ndev:x:1000:\nnogroup:x:65534:\n",
        0o644,
    )
    .map_err(io)?;
    for applet in applets.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if applet == "bin/busybox" || applet.contains("..") || applet.starts_with('/') {
            continue;
        }
        let depth = applet.matches('/').count();
        let target = format!("{}bin/busybox", "../".repeat(depth));
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Symlink);
        header.set_size(0);
        header.set_mode(0o777);
        header.set_mtime(0);
        archive
            .append_link(&mut header, format!("rootfs/{applet}"), &target)
            .map_err(io)?;
    }
    Ok(())
}

/// Build the workspace image on the engine; `progress` gets the build's output lines.
pub async fn build_image(
    backend: &DockerBackend,
    tag: &str,
    source: &ImageSource,
    mut progress: impl FnMut(&str),
) -> Result<BuiltImage, WorkspaceError> {
    let (context, description) = build_context(source)?;
    let options = BuildImageOptions {
        t: Some(tag.to_string()),
        rm: true,
        forcerm: true,
        networkmode: Some("none".to_string()),
        ..Default::default()
    };
    let mut stream = backend.docker().build_image(
        options,
        None,
        Some(bollard::body_full(bytes::Bytes::from(context))),
    );
    let mut id = None;
    while let Some(item) = stream.next().await {
        let info = item.map_err(|e| WorkspaceError::Docker {
            action: format!("build image {tag}"),
            message: e.to_string(),
        })?;
        if let Some(detail) = info.error_detail.and_then(|d| d.message) {
            return Err(WorkspaceError::Docker {
                action: format!("build image {tag}"),
                message: detail,
            });
        }
        if let Some(line) = info.stream {
            let line = line.trim_end();
            if !line.is_empty() {
                progress(line);
            }
        }
        if let Some(image) = info.aux.and_then(|aux| aux.id) {
            id = Some(image);
        }
    }
    let id = match id {
        Some(id) => id,
        None => backend
            .docker()
            .inspect_image(tag)
            .await
            .map_err(|e| WorkspaceError::Docker {
                action: format!("inspect the built image {tag}"),
                message: e.to_string(),
            })?
            .id
            .unwrap_or_default(),
    };
    Ok(BuiltImage {
        tag: tag.to_string(),
        id,
        source: description,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal 64-bit little-endian ELF header with the given program header types.
    fn elf(program_headers: &[u32]) -> Vec<u8> {
        let mut bytes = vec![0u8; 64 + 56 * program_headers.len()];
        bytes[..4].copy_from_slice(b"\x7fELF");
        bytes[4] = 2; // 64-bit
        bytes[5] = 1; // little-endian
        bytes[0x20..0x28].copy_from_slice(&64u64.to_le_bytes());
        bytes[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        bytes[0x38..0x3a].copy_from_slice(&(program_headers.len() as u16).to_le_bytes());
        for (i, kind) in program_headers.iter().enumerate() {
            bytes[64 + 56 * i..64 + 56 * i + 4].copy_from_slice(&kind.to_le_bytes());
        }
        bytes
    }

    #[test]
    fn static_and_dynamic_binaries_are_told_apart() {
        const LOAD: u32 = 1;
        const INTERP: u32 = 3;
        assert!(has_no_interpreter(&elf(&[LOAD, LOAD])));
        assert!(!has_no_interpreter(&elf(&[LOAD, INTERP, LOAD])));
        assert!(!has_no_interpreter(
            b"not an elf file at all, just some text padding it out to 64 bytes."
        ));
        // A header that claims more program headers than the file holds is not trusted.
        let mut truncated = elf(&[LOAD]);
        truncated[0x38] = 9;
        assert!(!has_no_interpreter(&truncated));
        // Offsets near the end of the address space do not overflow.
        let mut huge = elf(&[LOAD]);
        huge[0x20..0x28].copy_from_slice(&u64::MAX.to_le_bytes());
        huge[0x36..0x38].copy_from_slice(&u16::MAX.to_le_bytes());
        assert!(!has_no_interpreter(&huge));
        // The test binary itself is dynamically linked on glibc hosts.
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        assert!(!has_no_interpreter(&me));
    }
}
