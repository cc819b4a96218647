//! The folder protocol, the only part that touches the file system's
//! names. A drop folder `<dir>` holds:
//!
//! - the files producers drop: written as `<name>.tmp` (or anywhere else
//!   on the same file system) and renamed to `<name>.<suffix>` when
//!   complete, so the hub never sees half a file;
//! - `processing/<stamp>-<name>`: a file the hub claimed (by an atomic
//!   rename, so two scans, or two hubs, never take the same file) and has
//!   not finished. `<stamp>` is the claim time (`20260315T101500123Z`);
//! - `archive/<stamp>-<sha12>-<name>`: the file once processed, with the
//!   first twelve hex digits of its SHA-256, so a file dropped again under
//!   the same name never overwrites an earlier one; beside it
//!   `<same>.summary.json`, what became of each request or receipt;
//! - `rejected/<stamp>-<sha12>-<name>.rejects.csv`: the rows that were not
//!   applied, each with why.
//!
//! Every file the hub writes is written as `.tmp` and renamed, so a crash
//! never leaves half a reject file or acknowledgement under its real name.
//! Names are all derived from the claim, so processing a file again after a
//! crash writes the same names over what the first attempt left.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use crate::Error;

pub(crate) const PROCESSING: &str = "processing";
pub(crate) const ARCHIVE: &str = "archive";
pub(crate) const REJECTED: &str = "rejected";
pub(crate) const SUBFOLDERS: [&str; 3] = [PROCESSING, ARCHIVE, REJECTED];

/// A file claimed into `processing/`.
#[derive(Debug, Clone)]
pub(crate) struct Claimed {
    /// Where it is now.
    pub(crate) path: PathBuf,
    /// `<stamp>`, fixed at the claim.
    pub(crate) stamp: String,
    /// The name it was dropped under.
    pub(crate) name: String,
}

impl Claimed {
    /// `<stamp>-<sha12>-<name>`: the archived file's name, and the stem of
    /// the reject file and the summary.
    pub(crate) fn archived_name(&self, sha: &str) -> String {
        let short = sha.get(..12).unwrap_or(sha);
        format!("{}-{short}-{}", self.stamp, self.name)
    }
}

/// One drop folder's layout.
#[derive(Debug, Clone)]
pub(crate) struct Folder {
    dir: PathBuf,
    suffixes: Vec<String>,
}

impl Folder {
    pub(crate) fn new(dir: PathBuf, suffixes: Vec<String>) -> Folder {
        Folder { dir, suffixes }
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    pub(crate) fn sub(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Files a crash left in `processing/`, oldest claim first.
    pub(crate) async fn leftovers(&self) -> Result<Vec<Claimed>, Error> {
        let mut out = Vec::new();
        for name in list_files(&self.sub(PROCESSING)).await? {
            if name.ends_with(".tmp") {
                continue;
            }
            // Ours are `<stamp>-<name>`; anything else put there by hand is
            // taken as it is, with a stamp of its own.
            let (stamp, original) = match name.split_once('-') {
                Some((stamp, original)) if is_stamp(stamp) && !original.is_empty() => {
                    (stamp.to_owned(), original.to_owned())
                }
                Some(_) | None => (String::from("00000000T000000000Z"), name.clone()),
            };
            out.push(Claimed {
                path: self.sub(PROCESSING).join(&name),
                stamp,
                name: original,
            });
        }
        Ok(out)
    }

    /// Files waiting in the folder, by name.
    pub(crate) async fn waiting(&self) -> Result<Vec<String>, Error> {
        Ok(list_files(&self.dir)
            .await?
            .into_iter()
            .filter(|name| {
                let lower = name.to_lowercase();
                !name.starts_with('.') && self.suffixes.iter().any(|s| lower.ends_with(s))
            })
            .collect())
    }

    /// Claims `name` by renaming it into `processing/`. `None` if it is
    /// gone (another hub claimed it first).
    pub(crate) async fn claim(
        &self,
        name: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Claimed>, Error> {
        let mut at = now;
        // A rename replaces its target, so the stamp is moved on until the
        // name is free (only a file of the same name dropped twice within a
        // millisecond needs it).
        let (stamp, target) = loop {
            let stamp = at.format("%Y%m%dT%H%M%S%3fZ").to_string();
            let target = self.sub(PROCESSING).join(format!("{stamp}-{name}"));
            if !exists(&target).await? {
                break (stamp, target);
            }
            at += chrono::Duration::milliseconds(1);
        };
        let from = self.dir.join(name);
        match tokio::fs::rename(&from, &target).await {
            Ok(()) => Ok(Some(Claimed {
                path: target,
                stamp,
                name: name.to_owned(),
            })),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(&from, e)),
        }
    }

    /// Moves a processed file into `archive/`; the last step, after which
    /// the file is never looked at again.
    pub(crate) async fn archive(&self, claimed: &Claimed, sha: &str) -> Result<PathBuf, Error> {
        let target = self.sub(ARCHIVE).join(claimed.archived_name(sha));
        tokio::fs::rename(&claimed.path, &target)
            .await
            .map_err(|e| Error::io(&claimed.path, e))?;
        Ok(target)
    }

    /// Where the reject file of `claimed` goes.
    pub(crate) fn reject_path(&self, claimed: &Claimed, sha: &str) -> PathBuf {
        self.sub(REJECTED)
            .join(format!("{}.rejects.csv", claimed.archived_name(sha)))
    }

    /// Where the summary of `claimed` goes.
    pub(crate) fn summary_path(&self, claimed: &Claimed, sha: &str) -> PathBuf {
        self.sub(ARCHIVE)
            .join(format!("{}.summary.json", claimed.archived_name(sha)))
    }
}

fn is_stamp(s: &str) -> bool {
    s.len() == 19 && s.ends_with('Z') && s.as_bytes().get(8) == Some(&b'T')
}

async fn exists(path: &Path) -> Result<bool, Error> {
    tokio::fs::try_exists(path)
        .await
        .map_err(|e| Error::io(path, e))
}

/// Names of the regular files in `dir`, sorted.
async fn list_files(dir: &Path) -> Result<Vec<String>, Error> {
    let mut entries = tokio::fs::read_dir(dir)
        .await
        .map_err(|e| Error::io(dir, e))?;
    let mut names = Vec::new();
    while let Some(entry) = entries.next_entry().await.map_err(|e| Error::io(dir, e))? {
        let kind = entry.file_type().await.map_err(|e| Error::io(dir, e))?;
        if !kind.is_file() {
            continue;
        }
        // A name that is not UTF-8 cannot be claimed under a name we can
        // write back; it is left alone (and logged once per scan).
        match entry.file_name().into_string() {
            Ok(name) => names.push(name),
            Err(raw) => {
                tracing::warn!(dir = %dir.display(), name = ?raw, "file name is not UTF-8; left alone");
            }
        }
    }
    names.sort();
    Ok(names)
}

/// Writes `bytes` to `path` as `<path>.tmp`, flushed to disk, then renamed:
/// readers see the whole file or none.
pub(crate) async fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    {
        use tokio::io::AsyncWriteExt;
        let mut file = tokio::fs::File::create(&tmp)
            .await
            .map_err(|e| Error::io(&tmp, e))?;
        file.write_all(bytes)
            .await
            .map_err(|e| Error::io(&tmp, e))?;
        file.sync_all().await.map_err(|e| Error::io(&tmp, e))?;
    }
    tokio::fs::rename(&tmp, path)
        .await
        .map_err(|e| Error::io(path, e))
}
