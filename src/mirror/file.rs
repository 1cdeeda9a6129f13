//! Which database file the mirror has open: its device and inode at open time, and whether
//! the configured path still names that file. A file deleted or replaced under a running
//! gateway would take every later write with it, so the writer checks after each commit.

use std::io;
use std::path::{Path, PathBuf};

/// How the path stopped naming the file the mirror has open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FileChange {
    /// Nothing is at the path any more.
    #[error("the database file was deleted while the gateway had it open")]
    Deleted,
    /// Another file is at the path.
    #[error("the database file was replaced by another file while the gateway had it open")]
    Replaced,
    /// The path cannot be looked at.
    #[error("the database file cannot be looked at: {0}")]
    Unreadable(io::ErrorKind),
}

/// The file the mirror opened.
#[derive(Debug, Clone)]
pub struct FileIdentity {
    path: PathBuf,
    id: Option<(u64, u64)>,
}

impl FileIdentity {
    /// The file now at `path`.
    ///
    /// # Errors
    /// The I/O error when the path cannot be looked at.
    pub fn of(path: &Path) -> io::Result<FileIdentity> {
        Ok(FileIdentity { path: path.to_owned(), id: device_and_inode(&std::fs::metadata(path)?) })
    }

    /// Whether `path` still names the file that was opened.
    ///
    /// # Errors
    /// The `FileChange` when it does not.
    pub fn check(&self) -> Result<(), FileChange> {
        let metadata = match std::fs::metadata(&self.path) {
            Ok(metadata) => metadata,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(FileChange::Deleted),
            Err(e) => return Err(FileChange::Unreadable(e.kind())),
        };
        if device_and_inode(&metadata) == self.id { Ok(()) } else { Err(FileChange::Replaced) }
    }
}

#[cfg(unix)]
fn device_and_inode(metadata: &std::fs::Metadata) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    Some((metadata.dev(), metadata.ino()))
}

#[cfg(not(unix))]
fn device_and_inode(_metadata: &std::fs::Metadata) -> Option<(u64, u64)> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deleted_and_replaced_files_are_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.db");
        std::fs::write(&path, b"one").unwrap();
        let opened = FileIdentity::of(&path).unwrap();
        assert_eq!(opened.check(), Ok(()));
        std::fs::write(&path, b"rewritten in place").unwrap();
        assert_eq!(opened.check(), Ok(()), "the same file, written to");
        let other = dir.path().join("other.db");
        std::fs::write(&other, b"two").unwrap();
        std::fs::rename(&other, &path).unwrap();
        assert_eq!(opened.check(), Err(FileChange::Replaced));
        std::fs::remove_file(&path).unwrap();
        assert_eq!(opened.check(), Err(FileChange::Deleted));
    }
}
