//! Which database file the mirror has open: its device and inode at open time, and whether
//! the configured path still names that file. A file deleted or replaced under a running
//! gateway would take every later write with it, so the writer checks after each commit.

use std::io;
use std::path::{Path, PathBuf};

/// How the files at the configured path stopped being the ones the mirror has open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FileChange {
    /// Nothing is at the path any more.
    #[error("the {0} was deleted while the gateway had it open")]
    Deleted(Part),
    /// Another file is at the path.
    #[error("the {0} was replaced by another file while the gateway had it open")]
    Replaced(Part),
    /// The path cannot be looked at.
    #[error("the {0} cannot be looked at: {1}")]
    Unreadable(Part, io::ErrorKind),
}

/// Which of the database's files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// `<path>`.
    Database,
    /// `<path>-wal`, where commits live until they are checkpointed.
    WriteAheadLog,
    /// `<path>-shm`, the log's index shared with other connections.
    SharedIndex,
}

impl std::fmt::Display for Part {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Part::Database => "database file",
            Part::WriteAheadLog => "write-ahead log (-wal)",
            Part::SharedIndex => "shared-memory index (-shm)",
        })
    }
}

/// One of the files, and its device and inode once seen.
#[derive(Debug, Clone)]
struct Tracked {
    part: Part,
    path: PathBuf,
    /// `None` for the log and index until they first exist (SQLite makes them on the first
    /// write); the database file's is taken at open.
    id: Option<Option<(u64, u64)>>,
}

impl Tracked {
    fn check(&mut self) -> Result<(), FileChange> {
        let metadata = match (std::fs::metadata(&self.path), self.id) {
            (Ok(metadata), _) => metadata,
            (Err(e), None) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            (Err(e), Some(_)) if e.kind() == io::ErrorKind::NotFound => return Err(FileChange::Deleted(self.part)),
            (Err(e), _) => return Err(FileChange::Unreadable(self.part, e.kind())),
        };
        let now = device_and_inode(&metadata);
        match self.id {
            None => {
                self.id = Some(now);
                Ok(())
            }
            Some(opened) if opened == now => Ok(()),
            Some(_) => Err(FileChange::Replaced(self.part)),
        }
    }
}

/// The files the mirror opened: the database, and its log and index once they exist.
#[derive(Debug, Clone)]
pub struct FileIdentity {
    files: [Tracked; 3],
}

impl FileIdentity {
    /// The database file now at `path` (and its `-wal` / `-shm` files, if there).
    ///
    /// # Errors
    /// The I/O error when the database file cannot be looked at.
    pub fn of(path: &Path) -> io::Result<FileIdentity> {
        let id = Some(device_and_inode(&std::fs::metadata(path)?));
        let side = |suffix: &str, part| {
            let mut name = path.as_os_str().to_owned();
            name.push(suffix);
            Tracked { part, path: name.into(), id: None }
        };
        let mut identity = FileIdentity {
            files: [
                Tracked { part: Part::Database, path: path.to_owned(), id },
                side("-wal", Part::WriteAheadLog),
                side("-shm", Part::SharedIndex),
            ],
        };
        identity.check().map_err(|e| io::Error::other(e.to_string()))?;
        Ok(identity)
    }

    /// Whether the paths still name the files that were opened (a log or index that has
    /// appeared since is remembered from now on).
    ///
    /// # Errors
    /// The first `FileChange` found.
    pub fn check(&mut self) -> Result<(), FileChange> {
        self.files.iter_mut().try_for_each(Tracked::check)
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
        let mut opened = FileIdentity::of(&path).unwrap();
        assert_eq!(opened.check(), Ok(()));
        std::fs::write(&path, b"rewritten in place").unwrap();
        assert_eq!(opened.check(), Ok(()), "the same file, written to");
        let other = dir.path().join("other.db");
        std::fs::write(&other, b"two").unwrap();
        std::fs::rename(&other, &path).unwrap();
        assert_eq!(opened.check(), Err(FileChange::Replaced(Part::Database)));
        std::fs::remove_file(&path).unwrap();
        assert_eq!(opened.check(), Err(FileChange::Deleted(Part::Database)));
    }

    #[test]
    fn the_log_is_watched_from_when_it_appears() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.db");
        std::fs::write(&path, b"db").unwrap();
        let mut opened = FileIdentity::of(&path).unwrap();
        let wal = dir.path().join("m.db-wal");
        assert_eq!(opened.check(), Ok(()), "no log yet is fine");
        std::fs::write(&wal, b"frames").unwrap();
        assert_eq!(opened.check(), Ok(()), "a new log is remembered");
        std::fs::remove_file(&wal).unwrap();
        assert_eq!(opened.check(), Err(FileChange::Deleted(Part::WriteAheadLog)));
    }
}
