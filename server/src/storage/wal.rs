//! The write-ahead log: every committed write is appended here and fsynced before the client
//! hears that it succeeded.
//!
//! The log is a directory of files named by the first log sequence number (LSN) they hold.
//! A record on disk is `len: u32 | crc32: u32 | lsn: u64 | payload[len]`, little endian, with
//! the checksum over the LSN and payload. A record cut short or failing its checksum ends the
//! log: it can only be the tail of a write that was never acknowledged, so recovery truncates
//! it away and appends after the last good record.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// A file is closed and a new one started once it grows past this size.
const FILE_BYTES_TARGET: u64 = 64 << 20;
/// Larger records are refused: a payload this big can only come from a corrupt length field.
const RECORD_BYTES_MAX: u32 = 1 << 30;
const HEADER_BYTES: usize = 16;

pub struct Wal {
    dir: PathBuf,
    file: File,
    file_bytes: u64,
    next_lsn: u64,
    /// First LSN of every file, oldest first; the last one is the file being appended to.
    files: Vec<u64>,
    /// Set when a failed write could not be undone: appending more could hide it behind
    /// acknowledged records, so the log refuses writes until a restart recovers it.
    poisoned: bool,
}

fn file_name(first_lsn: u64) -> String {
    format!("{first_lsn:020}.wal")
}

fn io_context(what: &str, path: &Path) -> impl FnOnce(std::io::Error) -> String {
    let path = path.display().to_string();
    let what = what.to_string();
    move |e| format!("cannot {what} {path}: {e}")
}

impl Wal {
    /// Opens the log in `dir`, calling `apply(lsn, payload)` for every intact record, oldest
    /// first, then positions the log for appending after the last one.
    pub fn open(dir: &Path, mut apply: impl FnMut(u64, &[u8]) -> Result<(), String>) -> Result<Self, String> {
        std::fs::create_dir_all(dir).map_err(io_context("create", dir))?;
        let mut files: Vec<u64> = std::fs::read_dir(dir)
            .map_err(io_context("read", dir))?
            .filter_map(|entry| entry.ok()?.file_name().to_str()?.strip_suffix(".wal")?.parse().ok())
            .collect();
        files.sort_unstable();

        let mut next_lsn = 1;
        let mut torn_at: Option<(usize, u64)> = None;
        for (index, &first) in files.iter().enumerate() {
            let path = dir.join(file_name(first));
            let mut reader = BufReader::new(File::open(&path).map_err(io_context("open", &path))?);
            let mut offset = 0u64;
            loop {
                match read_record(&mut reader)? {
                    Some((lsn, payload)) => {
                        apply(lsn, &payload)?;
                        next_lsn = lsn + 1;
                        offset += (HEADER_BYTES + payload.len()) as u64;
                    }
                    None => break,
                }
            }
            let len = std::fs::metadata(&path).map_err(io_context("stat", &path))?.len();
            if offset < len {
                torn_at = Some((index, offset));
                break;
            }
        }
        // Everything after a torn record was never acknowledged: cut it off.
        if let Some((index, offset)) = torn_at {
            let path = dir.join(file_name(files[index]));
            let file = OpenOptions::new().write(true).open(&path).map_err(io_context("open", &path))?;
            file.set_len(offset).map_err(io_context("truncate", &path))?;
            file.sync_all().map_err(io_context("sync", &path))?;
            for later in files.drain(index + 1..) {
                let path = dir.join(file_name(later));
                std::fs::remove_file(&path).map_err(io_context("remove", &path))?;
            }
        }

        if files.is_empty() {
            files.push(next_lsn);
        }
        let current = *files.last().expect("at least one file");
        let path = dir.join(file_name(current));
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&path)
            .map_err(io_context("open", &path))?;
        let file_bytes = file.seek(SeekFrom::End(0)).map_err(io_context("seek", &path))?;
        sync_dir(dir)?;
        Ok(Self { dir: dir.to_path_buf(), file, file_bytes, next_lsn, files, poisoned: false })
    }

    /// The LSN the next appended record will get.
    pub fn next_lsn(&self) -> u64 {
        self.next_lsn
    }

    /// Appends records without syncing; returns the LSN of the last one. Nothing is durable
    /// until [`Wal::sync`] returns.
    pub fn append(&mut self, payloads: &[Vec<u8>]) -> Result<u64, String> {
        if self.poisoned {
            return Err("the write-ahead log could not undo a failed write; restart the server".into());
        }
        if self.file_bytes >= FILE_BYTES_TARGET {
            self.rotate()?;
        }
        let (start_bytes, start_lsn) = (self.file_bytes, self.next_lsn);
        match self.write_records(payloads) {
            Ok(lsn) => Ok(lsn),
            Err(e) => {
                // A half-written record must not stay in front of later ones.
                if self.file.set_len(start_bytes).is_ok() {
                    self.file_bytes = start_bytes;
                    self.next_lsn = start_lsn;
                } else {
                    self.poisoned = true;
                }
                Err(e)
            }
        }
    }

    fn write_records(&mut self, payloads: &[Vec<u8>]) -> Result<u64, String> {
        let mut frame = Vec::new();
        for payload in payloads {
            if payload.len() as u64 >= RECORD_BYTES_MAX as u64 {
                return Err(format!("a write-ahead log record of {} bytes is too large", payload.len()));
            }
            let lsn = self.next_lsn;
            let mut crc = crc32fast::Hasher::new();
            crc.update(&lsn.to_le_bytes());
            crc.update(payload);
            frame.clear();
            frame.extend_from_slice(&(payload.len() as u32).to_le_bytes());
            frame.extend_from_slice(&crc.finalize().to_le_bytes());
            frame.extend_from_slice(&lsn.to_le_bytes());
            self.file.write_all(&frame).map_err(|e| format!("cannot write the write-ahead log: {e}"))?;
            self.file.write_all(payload).map_err(|e| format!("cannot write the write-ahead log: {e}"))?;
            self.file_bytes += (HEADER_BYTES + payload.len()) as u64;
            self.next_lsn += 1;
        }
        Ok(self.next_lsn - 1)
    }

    /// Makes every appended record durable. A failed sync leaves the state of the file
    /// unknown (the kernel may drop the unwritten pages), so the log stops taking writes.
    pub fn sync(&mut self) -> Result<(), String> {
        self.file.sync_data().map_err(|e| {
            self.poisoned = true;
            format!("cannot sync the write-ahead log: {e}; restart the server")
        })
    }

    fn rotate(&mut self) -> Result<(), String> {
        self.sync()?;
        let path = self.dir.join(file_name(self.next_lsn));
        self.file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&path)
            .map_err(io_context("create", &path))?;
        sync_dir(&self.dir)?;
        self.files.push(self.next_lsn);
        self.file_bytes = 0;
        Ok(())
    }

    /// Removes the files whose records are all at or below `lsn` (already in Parquet or
    /// otherwise durable elsewhere). The file being appended to is kept.
    pub fn truncate_through(&mut self, lsn: u64) -> Result<(), String> {
        while self.files.len() > 1 && self.files[1] <= lsn + 1 {
            let path = self.dir.join(file_name(self.files.remove(0)));
            std::fs::remove_file(&path).map_err(io_context("remove", &path))?;
        }
        Ok(())
    }

    /// Number of log files (for tests and system views).
    pub fn file_count(&self) -> usize {
        self.files.len()
    }
}

/// Reads one record; `None` at a clean end or at a torn or corrupt tail.
fn read_record(reader: &mut impl Read) -> Result<Option<(u64, Vec<u8>)>, String> {
    let mut header = [0u8; HEADER_BYTES];
    if !read_full(reader, &mut header)? {
        return Ok(None);
    }
    let len = u32::from_le_bytes(header[0..4].try_into().expect("4 bytes"));
    let crc = u32::from_le_bytes(header[4..8].try_into().expect("4 bytes"));
    let lsn = u64::from_le_bytes(header[8..16].try_into().expect("8 bytes"));
    if len >= RECORD_BYTES_MAX {
        return Ok(None);
    }
    let mut payload = vec![0u8; len as usize];
    if !read_full(reader, &mut payload)? {
        return Ok(None);
    }
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&lsn.to_le_bytes());
    hasher.update(&payload);
    Ok((hasher.finalize() == crc).then_some((lsn, payload)))
}

/// Fills `buf`; false if the input ends first.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> Result<bool, String> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => return Ok(false),
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("cannot read the write-ahead log: {e}")),
        }
    }
    Ok(true)
}

/// Makes a directory's entries (created, renamed or removed files) durable.
pub fn sync_dir(dir: &Path) -> Result<(), String> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_context("sync directory", dir))
}

/// Writes `bytes` to `path` atomically: a temporary file is written and synced, then renamed
/// over `path`, then the directory is synced.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let tmp = path.with_extension("tmp");
    let mut file = File::create(&tmp).map_err(io_context("create", &tmp))?;
    file.write_all(bytes).map_err(io_context("write", &tmp))?;
    file.sync_all().map_err(io_context("sync", &tmp))?;
    std::fs::rename(&tmp, path).map_err(io_context("rename", &tmp))?;
    sync_dir(path.parent().expect("a file path has a parent"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replay(dir: &Path) -> (Wal, Vec<(u64, Vec<u8>)>) {
        let mut seen = Vec::new();
        let wal = Wal::open(dir, |lsn, payload| {
            seen.push((lsn, payload.to_vec()));
            Ok(())
        })
        .unwrap();
        (wal, seen)
    }

    // Goal: records come back in order after reopening, a torn tail is cut off and appends
    // continue after the last intact record.
    #[test]
    fn replays_and_cuts_a_torn_tail() {
        let dir = std::env::temp_dir().join(format!("kalam-wal-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        {
            let (mut wal, seen) = replay(&dir);
            assert!(seen.is_empty());
            assert_eq!(wal.append(&[b"one".to_vec(), b"two".to_vec()]).unwrap(), 2);
            wal.sync().unwrap();
        }
        // Half a record at the end, as a crash in the middle of a write leaves it.
        let path = dir.join(file_name(1));
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(&[9, 0, 0, 0, 1, 2]).unwrap();
        drop(file);
        {
            let (mut wal, seen) = replay(&dir);
            assert_eq!(seen, vec![(1, b"one".to_vec()), (2, b"two".to_vec())]);
            assert_eq!(wal.append(&[b"three".to_vec()]).unwrap(), 3);
            wal.sync().unwrap();
        }
        let (_, seen) = replay(&dir);
        assert_eq!(seen.len(), 3);
        assert_eq!(seen[2], (3, b"three".to_vec()));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
