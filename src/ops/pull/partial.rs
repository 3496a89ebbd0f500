//! Downloads in progress: `DIR/.modelsign-partial/<hex of digest>`, one per blob, locked
//! while its blob downloads and is put in place, written only through the descriptor that
//! was opened (never reopened by name), and checked against the layer's size and digest.
//! A transfer error keeps the bytes for the next pull to resume with a Range request;
//! a mismatch or a failed pull leaves no empty or unusable file behind.

use std::fs::File;
use std::io::{Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::time::Duration;

use tokio::io::AsyncReadExt;

use crate::digest::Hasher;
use crate::error::{Error, Result};
use crate::local_fs::Dir;
use crate::oci::Descriptor;
use crate::progress::Progress;
use crate::store::Target;

use crate::direct_write::{ALIGN, Buffer, DIRECT_FROM, Writer};

const ATTEMPTS: u32 = 4;

/// A file in the resume folder, open and (for a download) locked by this pull.
pub(super) struct PartialFile<'a> {
    dir: &'a Dir,
    name: String,
    file: File,
    /// Kept after a failure so that the next pull resumes it (a download, not a copy).
    resumable: bool,
    placed: bool,
}

impl PartialFile<'_> {
    pub(super) fn name(&self) -> &str {
        &self.name
    }

    /// Whether the name in the resume folder is still this very file.
    pub(super) fn is_still_in_place(&self) -> bool {
        self.dir.holds(&self.name, &self.file)
    }

    pub(super) fn placed(&mut self) {
        self.placed = true;
    }

    /// A private copy of this (checked) file, for a second component with the same bytes.
    /// The bytes are copied on a blocking thread.
    pub(super) async fn copy(&self) -> Result<PartialFile<'_>> {
        let name = format!("{}.copy", self.name);
        // A leftover of a pull that was killed: only ever our own (the folder is private).
        match self.dir.remove_file(&name) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(Error::io(self.dir.child_path(&name), e)),
            _ => {}
        }
        let copy = PartialFile {
            dir: self.dir,
            file: self.dir.create_new_file(&name)?,
            name,
            resumable: false,
            placed: false,
        };
        let (source_path, copy_path) = (self.dir.child_path(&self.name), self.dir.child_path(&copy.name));
        let mut source = self.file.try_clone().map_err(|e| Error::io(&source_path, e))?;
        let mut target = copy.file.try_clone().map_err(|e| Error::io(&copy_path, e))?;
        crate::blocking::run(&copy.name.clone(), move || {
            source.seek(SeekFrom::Start(0)).map_err(|e| Error::io(&source_path, e))?;
            std::io::copy(&mut source, &mut target).map_err(|e| Error::io(&copy_path, e))?;
            Ok(())
        })
        .await?;
        Ok(copy)
    }
}

impl Drop for PartialFile<'_> {
    fn drop(&mut self) {
        if self.placed {
            return;
        }
        let empty = self.file.metadata().is_ok_and(|m| m.len() == 0);
        if (empty || !self.resumable) && self.is_still_in_place() {
            let _ = self.dir.remove_file(&self.name);
        }
        // The lock goes with the descriptor, after the name is gone.
    }
}

/// Opens (or creates) the partial file `name` and locks it, waiting while another pull
/// holds it. The holder before us may have renamed or deleted the file: only the file still
/// at the name counts, else we start over.
pub(super) async fn lock<'a>(
    dir: &'a Dir,
    name: &str,
    label: &str,
    progress: &dyn Progress,
) -> Result<PartialFile<'a>> {
    let mut noted = false;
    loop {
        let file = dir.open_or_create_file(name)?;
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(std::fs::TryLockError::WouldBlock) => {
                    if !noted {
                        progress.note(&format!("{label}: waiting for another pull into the same folder"));
                        noted = true;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(dir.child_path(name), e)),
            }
        }
        if dir.holds(name, &file) {
            return Ok(PartialFile { dir, name: name.to_string(), file, resumable: true, placed: false });
        }
    }
}

/// Downloads a blob into `partial`, resuming what is already there, and returns once the
/// file holds exactly the blob, with the number of bytes an earlier pull had kept (and
/// that were not downloaded again). A transfer error keeps the bytes for the next attempt. A
/// resumed file whose digest then does not match was stale or corrupted: it is discarded
/// (with a note) and the blob downloaded afresh once; a mismatch on fresh bytes is the
/// registry's, and empties the file.
pub(super) async fn download(
    target: &Target,
    desc: &Descriptor,
    label: &str,
    partial: &mut PartialFile<'_>,
    progress: &dyn Progress,
) -> Result<u64> {
    let path = partial.dir.child_path(&partial.name);
    let file = &partial.file;
    let io = |e| Error::io(&path, e);
    let mut have = file.metadata().map_err(io)?.len();
    if have > desc.size {
        file.set_len(0).map_err(io)?;
        have = 0;
    }
    // Resume: the bytes already there count toward the digest (hashed on a blocking
    // thread). No thread and no buffer for an empty file: thousands of small blobs would
    // each pay a hand-off and zero a MiB for nothing.
    let mut hasher = if have == 0 {
        Hasher::new()
    } else {
        let (file, path) = (file.try_clone().map_err(io)?, path.clone());
        crate::blocking::run(label, move || {
            let mut hasher = Hasher::new();
            let mut buf = vec![0u8; have.min(1 << 20) as usize];
            loop {
                let n = file.read_at(&mut buf, hasher.len()).map_err(|e| Error::io(&path, e))?;
                if n == 0 {
                    return Ok(hasher);
                }
                hasher.update(&buf[..n]);
            }
        })
        .await?
    };
    let resumed = hasher.len();
    progress.start(&desc.digest, label, desc.size);
    progress.restart(&desc.digest, resumed);
    let mut kept = resumed;
    let result = match fetch(target, desc, label, file, &mut hasher, progress).await {
        Err(Error::DigestMismatch { .. }) if resumed > 0 => {
            kept = 0;
            progress.note(&format!(
                "{label}: the {resumed} bytes kept in {} by an earlier pull did not match the layer; \
                 discarded them, downloading afresh",
                path.display()
            ));
            file.set_len(0).map_err(io)?;
            hasher = Hasher::new();
            progress.restart(&desc.digest, 0);
            fetch(target, desc, label, file, &mut hasher, progress).await
        }
        other => other,
    };
    if let Err(e @ (Error::DigestMismatch { .. } | Error::SizeMismatch { .. })) = result {
        file.set_len(0).map_err(io)?;
        return Err(e);
    }
    result?;
    progress.finish(&desc.digest);
    Ok(kept)
}

/// Appends the rest of the blob with retries, then checks size and digest.
async fn fetch(
    target: &Target,
    desc: &Descriptor,
    label: &str,
    file: &File,
    hasher: &mut Hasher,
    progress: &dyn Progress,
) -> Result<()> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match transfer(target, desc, label, file, hasher, progress).await {
            Ok(()) => break,
            Err(e) if attempt < ATTEMPTS && is_transient(&e) => {
                progress.note(&format!("{label}: {e}; resuming at byte {}", hasher.len()));
                tokio::time::sleep(Duration::from_millis(200 * 2u64.pow(attempt))).await;
            }
            Err(e) => return Err(e),
        }
    }
    if hasher.len() != desc.size {
        return Err(Error::SizeMismatch { what: label.to_string(), expected: desc.size, actual: hasher.len() });
    }
    let actual = hasher.clone().finish();
    if actual != desc.digest {
        return Err(Error::DigestMismatch { what: label.to_string(), expected: desc.digest.clone(), actual });
    }
    Ok(())
}

fn is_transient(e: &Error) -> bool {
    matches!(e, Error::Io { .. } | Error::Unreachable { .. } | Error::Registry { status: 500.., .. })
}

/// Bytes read from the network before they are handed to the writer.
const CHUNK: usize = 1 << 20;
/// Chunks in flight between the network and the writer, per download.
const CHUNKS_IN_FLIGHT: usize = 2;

/// One attempt: writes from `hasher.len()` to the end of the blob.
///
/// The network is read on the async runtime into a few aligned buffers that go round: a
/// blocking thread writes each (directly, for a large blob), a second one then hashes it, so
/// reading, writing and hashing overlap and memory stays at a few MiB per download. On any
/// error the hasher still matches the bytes in the file.
async fn transfer(
    target: &Target,
    desc: &Descriptor,
    label: &str,
    file: &File,
    hasher: &mut Hasher,
    progress: &dyn Progress,
) -> Result<()> {
    let offset = hasher.len();
    if offset == desc.size {
        return Ok(());
    }
    let mut reader = target.fetch_blob(desc, offset).await.map_err(|e| match e {
        Error::NotFound { target, what } => Error::NotFound { target, what: format!("{what} ({label})") },
        other => other,
    })?;
    if desc.size - offset <= CHUNK as u64 {
        return transfer_small(&mut reader, target, desc, label, file, hasher, progress).await;
    }
    // The same open file, written at explicit offsets: never reopened by name.
    let file = file.try_clone().map_err(|e| Error::io(label, e))?;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Buffer>(CHUNKS_IN_FLIGHT);
    // Buffers go round between reader and writer instead of being allocated per chunk, so
    // the allocator never hands pages back to the kernel only to fault them in again.
    let (free_tx, mut free_rx) = tokio::sync::mpsc::channel::<Buffer>(CHUNKS_IN_FLIGHT + 1);
    for _ in 0..CHUNKS_IN_FLIGHT + 1 {
        free_tx.try_send(Buffer::new(CHUNK)).expect("the pool has room for every buffer");
    }
    let what = label.to_string();
    let direct = desc.size >= DIRECT_FROM;
    // Writing and hashing overlap on two threads: a chunk is hashed once it is written, so
    // on any error the hasher still holds exactly the bytes in the file.
    let (hash_tx, mut hash_rx) = tokio::sync::mpsc::channel::<Buffer>(CHUNKS_IN_FLIGHT);
    let writer = tokio::task::spawn_blocking(move || {
        let mut writer = Writer::new(file, direct);
        let mut at = offset;
        while let Some(chunk) = rx.blocking_recv() {
            writer.write_all_at(chunk.bytes(), at).map_err(|e| Error::io(format!("partial file of {what}"), e))?;
            at += chunk.bytes().len() as u64;
            if hash_tx.blocking_send(chunk).is_err() {
                break;
            }
        }
        Ok::<(), Error>(())
    });
    let mut written = std::mem::take(hasher);
    let hashing = tokio::task::spawn_blocking(move || {
        while let Some(chunk) = hash_rx.blocking_recv() {
            written.update(chunk.bytes());
            let _ = free_tx.blocking_send(chunk);
        }
        written
    });
    let mut received = offset;
    let read_result: Result<()> = async {
        loop {
            let Some(mut chunk) = free_rx.recv().await else { return Ok(()) };
            // A resumed download's first chunk ends where the file is aligned again, so that
            // every later chunk can be written directly.
            let space = chunk.space();
            let want = space.len() - (received % ALIGN as u64) as usize;
            let space = &mut space[..want];
            let mut filled = 0;
            let mut read_error = None;
            while filled < want {
                match reader.read(&mut space[filled..]).await {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(e) => {
                        read_error = Some(Error::io(format!("{label} from {}", target.describe()), e));
                        break;
                    }
                }
            }
            if filled == 0 {
                return read_error.map_or(Ok(()), Err);
            }
            received += filled as u64;
            if received > desc.size {
                return Err(Error::SizeMismatch { what: label.to_string(), expected: desc.size, actual: received });
            }
            chunk.truncate(filled);
            if tx.send(chunk).await.is_err() {
                return Ok(()); // the writer failed; its error is reported below
            }
            progress.advance(&desc.digest, filled as u64);
            // What arrived before a cut is kept: the next attempt resumes after it.
            if let Some(e) = read_error {
                return Err(e);
            }
        }
    }
    .await;
    drop(tx);
    let thread_failed = |e: tokio::task::JoinError| Error::Internal(format!("{label}: a writer thread failed: {e}"));
    let write_result = writer.await.map_err(thread_failed)?;
    *hasher = hashing.await.map_err(thread_failed)?;
    write_result?;
    read_result
}

/// [`transfer`] of at most one chunk: read into one buffer, then written and hashed on the
/// runtime's thread (a write of at most 1 MiB to the page cache), sparing thousands of
/// small blobs a thread hand-off each. On any error the hasher still matches the file.
async fn transfer_small(
    reader: &mut crate::store::BlobReader,
    target: &Target,
    desc: &Descriptor,
    label: &str,
    file: &File,
    hasher: &mut Hasher,
    progress: &dyn Progress,
) -> Result<()> {
    let offset = hasher.len();
    let mut buf = vec![0u8; (desc.size - offset) as usize];
    let mut filled = 0;
    let mut read_error = None;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]).await {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) => {
                read_error = Some(Error::io(format!("{label} from {}", target.describe()), e));
                break;
            }
        }
    }
    // What arrived before a cut is kept: the next attempt resumes after it.
    file.write_all_at(&buf[..filled], offset).map_err(|e| Error::io(format!("partial file of {label}"), e))?;
    hasher.update(&buf[..filled]);
    progress.advance(&desc.digest, filled as u64);
    if let Some(e) = read_error {
        return Err(e);
    }
    // A body longer than the layer says is refused, as in `transfer`.
    if filled == buf.len() {
        let mut probe = [0u8; 1];
        if let Ok(n @ 1..) = reader.read(&mut probe).await {
            let actual = offset + filled as u64 + n as u64;
            return Err(Error::SizeMismatch { what: label.to_string(), expected: desc.size, actual });
        }
    }
    Ok(())
}
