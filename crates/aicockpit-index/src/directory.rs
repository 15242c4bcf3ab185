//! A tantivy directory that skips `fsync`.
//!
//! The index is a cache of the project's files: after a crash it is checked
//! on open and rebuilt if unusable. Durability is not worth what it costs
//! here: each commit fsyncs every new segment file and `meta.json`, which
//! took three quarters of the time from an edit to its being searchable.
//! Doc store files are read with `pread` rather than mapped (see
//! [`ReadAtFile`]); everything else is delegated to tantivy's `MmapDirectory`.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tantivy::directory::error::{DeleteError, LockError, OpenReadError, OpenWriteError};
use tantivy::directory::{
    AntiCallToken, Directory, DirectoryLock, FileHandle, Lock, MmapDirectory, OwnedBytes,
    TerminatingWrite, WatchCallback, WatchHandle, WritePtr,
};
use tantivy::HasLen;

#[derive(Clone, Debug)]
pub struct CacheDirectory {
    root: PathBuf,
    inner: MmapDirectory,
}

impl CacheDirectory {
    pub fn open(
        root: &Path,
    ) -> Result<CacheDirectory, tantivy::directory::error::OpenDirectoryError> {
        Ok(CacheDirectory {
            root: root.to_path_buf(),
            inner: MmapDirectory::open(root)?,
        })
    }
}

/// A doc store file, read with `pread` instead of mapped. Opening the index
/// reads every file's record from the doc store; through a mapping, every
/// page of it would stay resident as long as the index is open (160 MB of a
/// cargo registry's index, counted in the process's memory). Stored
/// documents are otherwise read a block at a time for search hits, where
/// one read call per block costs nothing next to decompressing it.
#[derive(Debug)]
struct ReadAtFile {
    file: File,
    len: usize,
}

impl FileHandle for ReadAtFile {
    fn read_bytes(&self, range: Range<usize>) -> io::Result<OwnedBytes> {
        use std::os::unix::fs::FileExt;
        let end = range.end.min(self.len);
        let start = range.start.min(end);
        let mut buffer = vec![0; end - start];
        self.file.read_exact_at(&mut buffer, start as u64)?;
        Ok(OwnedBytes::new(buffer))
    }
}

impl HasLen for ReadAtFile {
    fn len(&self) -> usize {
        self.len
    }
}

struct UnsyncedFile(File);

impl Write for UnsyncedFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl TerminatingWrite for UnsyncedFile {
    fn terminate_ref(&mut self, _: AntiCallToken) -> io::Result<()> {
        self.0.flush()
    }
}

impl Directory for CacheDirectory {
    fn get_file_handle(&self, path: &Path) -> Result<Arc<dyn FileHandle>, OpenReadError> {
        if path
            .extension()
            .is_some_and(|extension| extension == "store")
        {
            let file = File::open(self.root.join(path)).map_err(|error| {
                if error.kind() == io::ErrorKind::NotFound {
                    OpenReadError::FileDoesNotExist(path.to_path_buf())
                } else {
                    OpenReadError::wrap_io_error(error, path.to_path_buf())
                }
            })?;
            let len = file
                .metadata()
                .map_err(|error| OpenReadError::wrap_io_error(error, path.to_path_buf()))?
                .len() as usize;
            return Ok(Arc::new(ReadAtFile { file, len }));
        }
        self.inner.get_file_handle(path)
    }

    fn delete(&self, path: &Path) -> Result<(), DeleteError> {
        self.inner.delete(path)
    }

    fn exists(&self, path: &Path) -> Result<bool, OpenReadError> {
        self.inner.exists(path)
    }

    fn open_write(&self, path: &Path) -> Result<WritePtr, OpenWriteError> {
        let full = self.root.join(path);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&full)
            .map_err(|error| {
                if error.kind() == io::ErrorKind::AlreadyExists {
                    OpenWriteError::FileAlreadyExists(path.to_path_buf())
                } else {
                    OpenWriteError::wrap_io_error(error, path.to_path_buf())
                }
            })?;
        Ok(BufWriter::new(Box::new(UnsyncedFile(file))))
    }

    fn atomic_read(&self, path: &Path) -> Result<Vec<u8>, OpenReadError> {
        self.inner.atomic_read(path)
    }

    fn atomic_write(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        // Write beside the target, then rename: readers see the old or the new file, never half of one.
        let full = self.root.join(path);
        let temporary = full.with_extension(format!("tmp-{}", std::process::id()));
        std::fs::write(&temporary, data)?;
        std::fs::rename(&temporary, &full)
    }

    fn sync_directory(&self) -> io::Result<()> {
        Ok(())
    }

    fn acquire_lock(&self, lock: &Lock) -> Result<DirectoryLock, LockError> {
        self.inner.acquire_lock(lock)
    }

    fn watch(&self, watch_callback: WatchCallback) -> tantivy::Result<WatchHandle> {
        self.inner.watch(watch_callback)
    }
}
