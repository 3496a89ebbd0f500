//! Writing a large file past the page cache (`O_DIRECT`) where the file system allows it:
//! downloads of large blobs and large entries unpacked from archive layers.
//!
//! A pull hashes every byte from its own buffer as it arrives, so nothing needs the bytes in
//! the page cache afterwards; sending tens of GB through it only evicts what others cached.
//! On a VM that hands its free memory back to the host, it also costs 1-3 s of kernel time
//! per GiB whenever the host must fault fresh pages back in (measured here: `dd` of 1 GiB
//! took 0.23-1.80 s buffered and 0.69-0.85 s direct). Writes that cannot be direct (an
//! unaligned start, the tail of a file, a file system without `O_DIRECT`) go through the
//! page cache as before, in small pieces.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use rustix::fs::{OFlags, fcntl_getfl, fcntl_setfl};

/// Files at least this large are written directly where possible.
pub(crate) const DIRECT_FROM: u64 = 16 << 20;
/// Alignment of a direct write's buffer address, file offset and length (a multiple of
/// every common logical block size).
pub(crate) const ALIGN: usize = 4096;
/// Size of each buffered `write`: with a large page cache, 1 MiB writes cost 2-3x the
/// kernel time of 32 KiB ones here (measured: 1.6-2.5 s vs 0.7-0.8 s per GiB).
const WRITE_PIECE: usize = 32 << 10;

/// A buffer whose bytes start at an [`ALIGN`]-aligned address.
pub(crate) struct Buffer {
    raw: Vec<u8>,
    start: usize,
    len: usize,
}

impl Buffer {
    pub(crate) fn new(capacity: usize) -> Buffer {
        let raw = vec![0u8; capacity + ALIGN];
        let start = raw.as_ptr().align_offset(ALIGN).min(ALIGN);
        Buffer { raw, start, len: capacity }
    }

    /// The whole buffer, to be filled; [`Buffer::truncate`] then says how much was.
    pub(crate) fn space(&mut self) -> &mut [u8] {
        let capacity = self.raw.len() - ALIGN;
        self.len = capacity;
        &mut self.raw[self.start..self.start + capacity]
    }

    pub(crate) fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.raw[self.start..self.start + self.len]
    }
}

/// Writes one file at explicit offsets, directly where the writes allow it.
pub(crate) struct Writer {
    file: File,
    /// Direct writes were asked for and the file system has not refused one.
    direct: bool,
    /// Whether `O_DIRECT` is set on the open file now.
    flag_set: bool,
}

impl Writer {
    /// `direct`: try `O_DIRECT` (set on the open file, so on its duplicates too, and cleared
    /// again for every unaligned write and when the writer is dropped).
    pub(crate) fn new(file: File, direct: bool) -> Writer {
        let mut writer = Writer { file, direct, flag_set: false };
        writer.direct = direct && writer.set_direct(true).is_ok();
        writer
    }

    /// Writes all of `bytes` at `at`: the aligned part directly, the rest through the page
    /// cache. A direct write the file system refuses turns direct writing off for good.
    pub(crate) fn write_all_at(&mut self, mut bytes: &[u8], mut at: u64) -> io::Result<()> {
        let aligned =
            if self.direct && at.is_multiple_of(ALIGN as u64) && (bytes.as_ptr() as usize).is_multiple_of(ALIGN) {
                bytes.len() / ALIGN * ALIGN
            } else {
                0
            };
        if aligned > 0 {
            self.set_direct(true)?;
            match self.file.write_all_at(&bytes[..aligned], at) {
                Ok(()) => {
                    bytes = &bytes[aligned..];
                    at += aligned as u64;
                }
                // Positional writes: whatever part went through is simply written again.
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => self.direct = false,
                Err(e) => return Err(e),
            }
        }
        if bytes.is_empty() {
            return Ok(());
        }
        self.set_direct(false)?;
        for piece in bytes.chunks(WRITE_PIECE) {
            self.file.write_all_at(piece, at)?;
            at += piece.len() as u64;
        }
        Ok(())
    }

    /// Whether aligned writes still go past the page cache.
    #[cfg(test)]
    pub(crate) fn is_direct(&self) -> bool {
        self.direct
    }

    fn set_direct(&mut self, on: bool) -> io::Result<()> {
        if self.flag_set != on {
            let flags = fcntl_getfl(&self.file)?;
            fcntl_setfl(&self.file, if on { flags | OFlags::DIRECT } else { flags - OFlags::DIRECT })?;
            self.flag_set = on;
        }
        Ok(())
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        let _ = self.set_direct(false);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Read;

    /// Writes `(skew, len)` pieces one after another (each from a buffer `skew` bytes past an
    /// aligned address) and returns what the file holds, what it should, and whether the
    /// writer was still direct at the end.
    fn written(writes: &[(usize, usize)], direct: bool) -> (Vec<u8>, Vec<u8>, bool) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let file = File::create(&path).unwrap();
        let total = writes.iter().map(|(_, len)| len).sum::<usize>();
        let want: Vec<u8> = (0..total).map(|i| (i * 7 + i / 4096) as u8).collect();
        let mut writer = Writer::new(file.try_clone().unwrap(), direct);
        let mut at = 0;
        for &(skew, len) in writes {
            let mut buffer = Buffer::new(skew + len);
            buffer.space()[skew..skew + len].copy_from_slice(&want[at..at + len]);
            writer.write_all_at(&buffer.bytes()[skew..skew + len], at as u64).unwrap();
            at += len;
        }
        let was_direct = writer.is_direct();
        drop(writer);
        // The flag is gone from the open file the pull goes on using.
        assert!(fcntl_getfl(&file).unwrap().intersection(OFlags::DIRECT).is_empty());
        let mut all = Vec::new();
        File::open(&path).unwrap().read_to_end(&mut all).unwrap();
        (all, want, was_direct)
    }

    /// Bytes of `file` in the page cache, as `fincore` reads them from the kernel.
    pub(crate) fn resident(file: &std::path::Path) -> u64 {
        let out = std::process::Command::new("fincore")
            .args(["--bytes", "--noheadings", "--raw", "--output", "RES"])
            .arg(file)
            .output()
            .expect("fincore (util-linux) runs");
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or_else(|e| panic!("fincore said {out:?}: {e}"))
    }

    /// Whether the file system under the temporary folder takes `O_DIRECT` at all.
    pub(crate) fn direct_supported() -> bool {
        use std::os::unix::fs::OpenOptionsExt;
        let dir = tempfile::tempdir().unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .custom_flags(libc::O_DIRECT)
            .open(dir.path().join("probe"))
            .is_ok()
    }

    #[test]
    fn aligned_writes_stay_direct() {
        let (got, want, direct) = written(&[(0, 3 * ALIGN), (0, 2 * ALIGN)], true);
        assert_eq!(got, want);
        assert_eq!(direct, direct_supported());
    }

    #[test]
    fn aligned_writes_then_an_unaligned_tail() {
        let (got, want, _) = written(&[(0, 3 * ALIGN), (0, 2 * ALIGN), (0, 1000)], true);
        assert_eq!(got, want);
    }

    #[test]
    fn an_unaligned_start_then_aligned_writes() {
        let (got, want, direct) = written(&[(0, 100), (0, ALIGN - 100), (0, 4 * ALIGN)], true);
        assert_eq!(got, want);
        assert_eq!(direct, direct_supported());
    }

    #[test]
    fn an_unaligned_address_is_written_through_the_page_cache() {
        let (got, want, direct) = written(&[(8, 4 * ALIGN), (0, 2 * ALIGN)], true);
        assert_eq!(got, want);
        assert_eq!(direct, direct_supported(), "one unaligned write does not turn direct writes off");
    }

    #[test]
    fn buffered_when_not_asked() {
        let (got, want, direct) = written(&[(0, 4 * ALIGN), (0, 10)], false);
        assert_eq!((got == want, direct), (true, false));
    }
}
