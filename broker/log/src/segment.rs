//! One segment: a `.log` file of whole batches plus its in-memory indexes.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::batch::{self, BatchHeader, HEADER_LEN};
use crate::error::{IoContext, Result};
use crate::index::{OffsetIndex, TimeIndex};

/// Segment files are named by base offset, zero-padded like Kafka's.
pub fn file_stem(base_offset: i64) -> String {
    format!("{base_offset:020}")
}

pub fn log_path(dir: &Path, base_offset: i64) -> PathBuf {
    dir.join(format!("{}.log", file_stem(base_offset)))
}
pub fn index_path(dir: &Path, base_offset: i64) -> PathBuf {
    dir.join(format!("{}.index", file_stem(base_offset)))
}
pub fn time_index_path(dir: &Path, base_offset: i64) -> PathBuf {
    dir.join(format!("{}.timeindex", file_stem(base_offset)))
}

/// What a walk callback wants next.
pub enum Step {
    Continue,
    Break,
    /// The batch is unacceptable here (e.g. offsets going backwards); the walk stops
    /// and reports it like a framing error.
    Invalid(String),
}

/// How a walk over a segment's batches ended.
#[derive(Debug)]
pub enum WalkEnd {
    End,
    Break,
    Invalid { pos: u64, reason: String },
}

/// Reads a file through a window so that walking many small batch headers costs
/// few syscalls while a huge batch is still read in one go.
struct Scanner<'a> {
    file: &'a File,
    end: u64,
    buf: Vec<u8>,
    buf_start: u64,
}

const SCAN_CHUNK: usize = 32 * 1024;

impl<'a> Scanner<'a> {
    fn new(file: &'a File, end: u64) -> Self {
        Scanner {
            file,
            end,
            buf: Vec::new(),
            buf_start: 0,
        }
    }

    /// `len` bytes at `pos`; the caller keeps `pos + len <= end`.
    fn bytes_at(&mut self, pos: u64, len: usize) -> io::Result<&[u8]> {
        let cached =
            pos >= self.buf_start && pos + len as u64 <= self.buf_start + self.buf.len() as u64;
        if !cached {
            let want = len.max(SCAN_CHUNK).min((self.end - pos) as usize);
            self.buf.resize(want, 0);
            self.file.read_exact_at(&mut self.buf, pos)?;
            self.buf_start = pos;
        }
        let from = (pos - self.buf_start) as usize;
        Ok(&self.buf[from..from + len])
    }
}

/// Summary of one batch, enough to index it.
#[derive(Clone, Copy, Debug)]
pub struct BatchMeta {
    pub base_offset: i64,
    pub last_offset: i64,
    pub max_timestamp: i64,
    pub size: u64,
}

impl BatchMeta {
    pub fn of(header: &BatchHeader<'_>) -> Self {
        BatchMeta {
            base_offset: header.base_offset(),
            last_offset: header.last_offset(),
            max_timestamp: header.max_timestamp(),
            size: header.total_size() as u64,
        }
    }
}

pub struct Segment {
    base_offset: i64,
    dir: PathBuf,
    file: File,
    size: u64,
    next_offset: i64,
    offset_index: OffsetIndex,
    time_index: TimeIndex,
    bytes_since_index: u64,
    max_timestamp: i64,
    max_timestamp_offset: i64,
    /// When the segment started filling, for `segment.ms`.
    roll_basis_ms: Option<i64>,
    unflushed: bool,
}

/// How much to trust a segment's bytes on open.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Recovery {
    /// Trust what the index covers; check headers of the rest.
    Tail,
    /// Check every batch including CRCs and rebuild the indexes (unclean shutdown).
    Full,
}

fn open_file(path: &Path, create_new: bool) -> Result<File> {
    let mut opts = OpenOptions::new();
    opts.read(true).append(true);
    if create_new {
        opts.create_new(true);
    }
    opts.open(path)
        .ctx(|| format!("opening segment file {}", path.display()))
}

fn remove_if_exists(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).ctx(|| format!("removing {}", path.display())),
    }
}

impl Segment {
    pub fn create(dir: &Path, base_offset: i64) -> Result<Segment> {
        remove_if_exists(&index_path(dir, base_offset))?;
        remove_if_exists(&time_index_path(dir, base_offset))?;
        let file = open_file(&log_path(dir, base_offset), true)?;
        Ok(Segment::empty(dir, base_offset, file))
    }

    fn empty(dir: &Path, base_offset: i64, file: File) -> Segment {
        Segment {
            base_offset,
            dir: dir.to_path_buf(),
            file,
            size: 0,
            next_offset: base_offset,
            offset_index: OffsetIndex::default(),
            time_index: TimeIndex::default(),
            bytes_since_index: 0,
            max_timestamp: -1,
            max_timestamp_offset: -1,
            roll_basis_ms: None,
            unflushed: true,
        }
    }

    /// Opens an existing segment and brings its in-memory state up to date with the
    /// file. Returns where the file stops being valid, if it does: the caller decides
    /// whether to truncate there.
    pub fn open(
        dir: &Path,
        base_offset: i64,
        interval: u32,
        recovery: Recovery,
    ) -> Result<(Segment, Option<(u64, String)>)> {
        let path = log_path(dir, base_offset);
        let file = open_file(&path, false)?;
        let size = file
            .metadata()
            .ctx(|| format!("reading metadata of {}", path.display()))?
            .len();
        let mut seg = Segment::empty(dir, base_offset, file);
        seg.size = size;
        seg.unflushed = false;
        let index_file = index_path(dir, base_offset);
        let time_file = time_index_path(dir, base_offset);
        let mut start = None;
        if recovery == Recovery::Tail && time_file.exists() {
            let offsets = OffsetIndex::load(&index_file, size)
                .ctx(|| format!("reading {}", index_file.display()))?;
            let times =
                TimeIndex::load(&time_file).ctx(|| format!("reading {}", time_file.display()))?;
            start = seg.adopt_indexes(offsets, times)?;
        }
        // Rebuilt index entries need an fsync at the next flush.
        seg.unflushed = start.is_none();
        let invalid = match start {
            Some((pos, header_meta)) => {
                // The indexed batch itself is accounted for by the index; resume after it.
                seg.bytes_since_index = header_meta.size;
                seg.note_batch(pos, &header_meta);
                seg.scan_from(pos + header_meta.size, interval, false)?
            }
            None => {
                seg.offset_index.clear();
                seg.time_index.clear();
                seg.scan_from(0, interval, recovery == Recovery::Full)?
            }
        };
        if seg.size > 0 {
            let mut first = [0u8; HEADER_LEN];
            seg.file
                .read_exact_at(&mut first, 0)
                .ctx(|| format!("reading first batch of {}", path.display()))?;
            seg.roll_basis_ms = BatchHeader::new(&first).map(|h| h.max_timestamp());
        }
        Ok((seg, invalid))
    }

    /// Takes loaded indexes if their last entries point at real batches; returns the
    /// last indexed batch to resume scanning from, or `None` to rebuild from scratch.
    fn adopt_indexes(
        &mut self,
        offsets: OffsetIndex,
        mut times: TimeIndex,
    ) -> Result<Option<(u64, BatchMeta)>> {
        // An empty index has nothing to vouch for: rebuild (cheap, the segment is small
        // or its index was lost).
        let Some((rel, pos)) = offsets.last() else {
            return Ok(None);
        };
        let pos = u64::from(pos);
        if pos + HEADER_LEN as u64 > self.size {
            return Ok(None);
        }
        let mut head = [0u8; HEADER_LEN];
        self.file
            .read_exact_at(&mut head, pos)
            .ctx(|| format!("reading segment {}", self.base_offset))?;
        let Ok(total) = batch::check_header(&head) else {
            return Ok(None);
        };
        let header = BatchHeader::new(&head).expect("buffer is header-sized");
        if header.base_offset() != self.base_offset + i64::from(rel)
            || pos + total as u64 > self.size
        {
            return Ok(None);
        }
        let meta = BatchMeta::of(&header);
        // Time entries past the last offset entry are re-derived by the scan.
        times.truncate_to_offset(rel.saturating_add(1));
        if let Some((ts, trel)) = times.last() {
            self.max_timestamp = ts;
            self.max_timestamp_offset = self.base_offset + i64::from(trel);
        }
        self.offset_index = offsets;
        self.time_index = times;
        Ok(Some((pos, meta)))
    }

    /// Walks batches from `pos` to the end, indexing each; stops at the first invalid one.
    fn scan_from(
        &mut self,
        pos: u64,
        interval: u32,
        verify_crc: bool,
    ) -> Result<Option<(u64, String)>> {
        let mut metas = Vec::new();
        let mut expected_min = if pos == 0 {
            self.base_offset
        } else {
            self.next_offset
        };
        let base = self.base_offset;
        let end = self.walk(pos, verify_crc, |p, bytes| {
            let header = BatchHeader::new(bytes).expect("walk yields whole headers");
            let meta = BatchMeta::of(&header);
            if meta.base_offset < expected_min {
                return Ok(Step::Invalid(format!(
                    "base offset {} is below the previous batch's end {expected_min}",
                    meta.base_offset
                )));
            }
            if meta.last_offset < meta.base_offset || meta.last_offset - base > i64::from(u32::MAX)
            {
                return Ok(Step::Invalid(format!(
                    "offsets {}..={} do not fit segment {base}",
                    meta.base_offset, meta.last_offset
                )));
            }
            expected_min = meta.last_offset + 1;
            metas.push((p, meta));
            Ok(Step::Continue)
        })?;
        for (p, meta) in metas {
            self.index_batch(p, &meta, interval);
        }
        match end {
            WalkEnd::Invalid { pos, reason } => {
                self.size = pos;
                Ok(Some((pos, reason)))
            }
            WalkEnd::End | WalkEnd::Break => Ok(None),
        }
    }

    fn note_batch(&mut self, pos: u64, meta: &BatchMeta) {
        if meta.max_timestamp > self.max_timestamp
            || (meta.max_timestamp == self.max_timestamp
                && meta.base_offset < self.max_timestamp_offset)
        {
            self.max_timestamp = meta.max_timestamp;
            self.max_timestamp_offset = meta.base_offset;
        }
        self.next_offset = self.next_offset.max(meta.last_offset + 1);
        self.size = self.size.max(pos + meta.size);
    }

    fn index_batch(&mut self, pos: u64, meta: &BatchMeta, interval: u32) {
        if self.bytes_since_index >= u64::from(interval) {
            let rel = (meta.base_offset - self.base_offset) as u32;
            if self.offset_index.last().is_none_or(|(r, _)| rel > r) {
                if self.max_timestamp_offset >= 0 {
                    self.time_index.maybe_push(
                        self.max_timestamp,
                        (self.max_timestamp_offset - self.base_offset) as u32,
                    );
                }
                self.offset_index.push(rel, pos as u32);
            }
            self.bytes_since_index = 0;
        }
        self.bytes_since_index += meta.size;
        self.note_batch(pos, meta);
    }

    /// Visits each batch from byte `from`: `bytes` is the whole batch when `whole` (or
    /// when verifying CRCs), otherwise just its header.
    pub fn walk_batches(
        &self,
        from: u64,
        whole: bool,
        mut f: impl FnMut(u64, &[u8]) -> Result<Step>,
    ) -> Result<WalkEnd> {
        let mut scanner = Scanner::new(&self.file, self.size);
        let mut pos = from;
        while pos < self.size {
            let avail = (self.size - pos) as usize;
            let total = {
                let head = scanner
                    .bytes_at(pos, HEADER_LEN.min(avail))
                    .ctx(|| format!("reading segment {} at byte {pos}", self.base_offset))?;
                match batch::check_header(head) {
                    Ok(total) => total,
                    Err(e) => {
                        return Ok(WalkEnd::Invalid {
                            pos,
                            reason: e.to_string(),
                        });
                    }
                }
            };
            if total > avail {
                return Ok(WalkEnd::Invalid {
                    pos,
                    reason: batch::FramingError::Truncated {
                        needed: total,
                        available: avail,
                    }
                    .to_string(),
                });
            }
            let bytes = scanner
                .bytes_at(pos, if whole { total } else { HEADER_LEN })
                .ctx(|| format!("reading segment {} at byte {pos}", self.base_offset))?;
            match f(pos, bytes)? {
                Step::Continue => {}
                Step::Break => return Ok(WalkEnd::Break),
                Step::Invalid(reason) => return Ok(WalkEnd::Invalid { pos, reason }),
            }
            pos += total as u64;
        }
        Ok(WalkEnd::End)
    }

    fn walk(
        &self,
        from: u64,
        verify_crc: bool,
        mut f: impl FnMut(u64, &[u8]) -> Result<Step>,
    ) -> Result<WalkEnd> {
        self.walk_batches(from, verify_crc, |pos, bytes| {
            let framing = if verify_crc {
                batch::check_framing(bytes, true)
            } else {
                Ok(bytes.len())
            };
            if let Err(e) = framing {
                return Ok(Step::Invalid(e.to_string()));
            }
            f(pos, bytes)
        })
    }

    /// Appends already validated batches with one write; `metas` describe them in order.
    pub fn append(
        &mut self,
        bytes: &[u8],
        metas: &[BatchMeta],
        interval: u32,
        now_ms: i64,
    ) -> Result<()> {
        let start = self.size;
        if let Err(e) = self.file.write_all(bytes) {
            // Later appends would otherwise land after a torn batch mid-log.
            let _ = self.file.set_len(start);
            return Err(e).ctx(|| format!("appending to segment {}", self.base_offset));
        }
        if self.size == 0 {
            self.roll_basis_ms = Some(now_ms);
        }
        let mut pos = start;
        for meta in metas {
            self.index_batch(pos, meta, interval);
            pos += meta.size;
        }
        self.unflushed = true;
        Ok(())
    }

    /// First batch whose last offset is >= `offset`: its position and header.
    pub fn find_batch(&self, offset: i64) -> Result<Option<(u64, [u8; HEADER_LEN])>> {
        self.find_batch_from(self.index_position(offset), |h| h.last_offset() >= offset)
    }

    /// First batch at or after byte `from` satisfying `pred`.
    pub fn find_batch_from(
        &self,
        from: u64,
        mut pred: impl FnMut(&BatchHeader<'_>) -> bool,
    ) -> Result<Option<(u64, [u8; HEADER_LEN])>> {
        let mut found = None;
        self.walk_batches(from, false, |pos, bytes| {
            let header = BatchHeader::new(bytes).expect("walk yields whole headers");
            if pred(&header) {
                let mut head = [0u8; HEADER_LEN];
                head.copy_from_slice(&bytes[..HEADER_LEN]);
                found = Some((pos, head));
                return Ok(Step::Break);
            }
            Ok(Step::Continue)
        })?;
        Ok(found)
    }

    /// Byte position to start looking for the batch holding `offset` (a lower bound).
    pub fn index_position(&self, offset: i64) -> u64 {
        let rel = offset.saturating_sub(self.base_offset);
        if rel <= 0 {
            return 0;
        }
        let rel = u32::try_from(rel).unwrap_or(u32::MAX);
        self.offset_index
            .floor(rel)
            .map_or(0, |(_, p)| u64::from(p))
    }

    /// Where to start scanning for the first record with timestamp >= `ts`.
    pub fn time_search_start(&self, ts: i64) -> u64 {
        match self.time_index.last_below(ts) {
            Some((_, rel)) => self.index_position(self.base_offset + i64::from(rel)),
            None => 0,
        }
    }

    pub fn read_at(&self, pos: u64, len: usize) -> Result<Vec<u8>> {
        let mut buf = vec![0u8; len];
        self.file
            .read_exact_at(&mut buf, pos)
            .ctx(|| format!("reading segment {} at byte {pos}", self.base_offset))?;
        Ok(buf)
    }

    /// Cuts the file at byte `pos` (a batch boundary) and re-derives the in-memory state.
    pub fn truncate_at(&mut self, pos: u64, interval: u32) -> Result<()> {
        self.file
            .set_len(pos)
            .ctx(|| format!("truncating segment {}", self.base_offset))?;
        self.size = pos;
        self.offset_index.clear();
        self.time_index.clear();
        self.bytes_since_index = 0;
        self.max_timestamp = -1;
        self.max_timestamp_offset = -1;
        self.next_offset = self.base_offset;
        self.unflushed = true;
        if pos == 0 {
            self.roll_basis_ms = None;
        }
        self.scan_from(0, interval, false)?;
        Ok(())
    }

    /// Persists indexes (time index first: a torn pair then errs towards a rescan)
    /// and, with `fsync`, makes data and indexes durable.
    pub fn flush(&mut self, fsync: bool) -> Result<()> {
        if fsync && !self.unflushed {
            return Ok(());
        }
        let tpath = time_index_path(&self.dir, self.base_offset);
        self.time_index
            .persist(&tpath, fsync)
            .ctx(|| format!("writing {}", tpath.display()))?;
        let ipath = index_path(&self.dir, self.base_offset);
        self.offset_index
            .persist(&ipath, fsync)
            .ctx(|| format!("writing {}", ipath.display()))?;
        if fsync && self.unflushed {
            self.file
                .sync_data()
                .ctx(|| format!("syncing segment {}", self.base_offset))?;
            self.unflushed = false;
        }
        Ok(())
    }

    /// Removes the segment's files.
    pub fn delete_files(self) -> Result<()> {
        let dir = self.dir.clone();
        let base = self.base_offset;
        drop(self);
        remove_if_exists(&log_path(&dir, base))?;
        remove_if_exists(&index_path(&dir, base))?;
        remove_if_exists(&time_index_path(&dir, base))?;
        remove_if_exists(&crate::txn_index::txn_index_path(&dir, base))
    }

    pub fn base_offset(&self) -> i64 {
        self.base_offset
    }
    pub fn size(&self) -> u64 {
        self.size
    }
    pub fn is_empty(&self) -> bool {
        self.size == 0
    }
    /// One past the last offset stored here, or the base offset when empty.
    pub fn next_offset(&self) -> i64 {
        self.next_offset
    }
    pub fn max_timestamp(&self) -> i64 {
        self.max_timestamp
    }
    /// Base offset of the first batch carrying [`Segment::max_timestamp`], -1 if none.
    pub fn max_timestamp_offset(&self) -> i64 {
        self.max_timestamp_offset
    }
    pub fn roll_basis_ms(&self) -> Option<i64> {
        self.roll_basis_ms
    }
    #[cfg(test)]
    pub fn index_entries(&self) -> usize {
        self.offset_index.entries_len()
    }
}
