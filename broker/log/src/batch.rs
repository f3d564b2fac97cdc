//! Zero-copy view of the record batch v2 header.
//!
//! The produce and fetch paths only ever need header fields, so they read
//! them in place instead of decoding records.

use std::fmt;

/// baseOffset + batchLength: the bytes before `batchLength` starts counting.
pub const LOG_OVERHEAD: usize = 12;
/// Size of the fixed v2 header, records start after it.
pub const HEADER_LEN: usize = 61;
pub const MAGIC_V2: i8 = 2;

const BASE_OFFSET: usize = 0;
const BATCH_LENGTH: usize = 8;
const LEADER_EPOCH: usize = 12;
const MAGIC: usize = 16;
const CRC: usize = 17;
const ATTRIBUTES: usize = 21;
const LAST_OFFSET_DELTA: usize = 23;
const BASE_TIMESTAMP: usize = 27;
const MAX_TIMESTAMP: usize = 35;
const PRODUCER_ID: usize = 43;
const PRODUCER_EPOCH: usize = 51;
const BASE_SEQUENCE: usize = 53;
const RECORDS_COUNT: usize = 57;

const COMPRESSION_MASK: i16 = 0x7;
const TIMESTAMP_TYPE_BIT: i16 = 1 << 3;
const TRANSACTIONAL_BIT: i16 = 1 << 4;
const CONTROL_BIT: i16 = 1 << 5;

fn be<const N: usize>(buf: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&buf[at..at + N]);
    out
}

/// Read-only view of a batch header; the slice holds at least [`HEADER_LEN`] bytes.
#[derive(Clone, Copy)]
pub struct BatchHeader<'a> {
    buf: &'a [u8],
}

impl<'a> BatchHeader<'a> {
    /// `None` when `buf` is shorter than a header.
    pub fn new(buf: &'a [u8]) -> Option<Self> {
        (buf.len() >= HEADER_LEN).then_some(BatchHeader { buf })
    }

    pub fn base_offset(&self) -> i64 {
        i64::from_be_bytes(be(self.buf, BASE_OFFSET))
    }
    pub fn batch_length(&self) -> i32 {
        i32::from_be_bytes(be(self.buf, BATCH_LENGTH))
    }
    /// Whole batch size on disk, including the offset and length fields.
    /// Only meaningful once [`check_framing`] accepted the batch.
    pub fn total_size(&self) -> usize {
        LOG_OVERHEAD + self.batch_length().max(0) as usize
    }
    pub fn partition_leader_epoch(&self) -> i32 {
        i32::from_be_bytes(be(self.buf, LEADER_EPOCH))
    }
    pub fn magic(&self) -> i8 {
        self.buf[MAGIC] as i8
    }
    pub fn crc(&self) -> u32 {
        u32::from_be_bytes(be(self.buf, CRC))
    }
    pub fn attributes(&self) -> i16 {
        i16::from_be_bytes(be(self.buf, ATTRIBUTES))
    }
    /// Compression codec id (0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd).
    pub fn compression(&self) -> u8 {
        (self.attributes() & COMPRESSION_MASK) as u8
    }
    pub fn is_log_append_time(&self) -> bool {
        self.attributes() & TIMESTAMP_TYPE_BIT != 0
    }
    pub fn is_transactional(&self) -> bool {
        self.attributes() & TRANSACTIONAL_BIT != 0
    }
    pub fn is_control(&self) -> bool {
        self.attributes() & CONTROL_BIT != 0
    }
    pub fn last_offset_delta(&self) -> i32 {
        i32::from_be_bytes(be(self.buf, LAST_OFFSET_DELTA))
    }
    pub fn last_offset(&self) -> i64 {
        self.base_offset() + i64::from(self.last_offset_delta())
    }
    pub fn base_timestamp(&self) -> i64 {
        i64::from_be_bytes(be(self.buf, BASE_TIMESTAMP))
    }
    pub fn max_timestamp(&self) -> i64 {
        i64::from_be_bytes(be(self.buf, MAX_TIMESTAMP))
    }
    pub fn producer_id(&self) -> i64 {
        i64::from_be_bytes(be(self.buf, PRODUCER_ID))
    }
    pub fn producer_epoch(&self) -> i16 {
        i16::from_be_bytes(be(self.buf, PRODUCER_EPOCH))
    }
    pub fn base_sequence(&self) -> i32 {
        i32::from_be_bytes(be(self.buf, BASE_SEQUENCE))
    }
    /// Sequence of the last record; sequences wrap from `i32::MAX` to 0.
    pub fn last_sequence(&self) -> i32 {
        sequence_add(self.base_sequence(), self.last_offset_delta())
    }
    pub fn records_count(&self) -> i32 {
        i32::from_be_bytes(be(self.buf, RECORDS_COUNT))
    }
}

impl fmt::Debug for BatchHeader<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BatchHeader")
            .field("base_offset", &self.base_offset())
            .field("batch_length", &self.batch_length())
            .field("magic", &self.magic())
            .field("attributes", &self.attributes())
            .field("last_offset_delta", &self.last_offset_delta())
            .field("max_timestamp", &self.max_timestamp())
            .field("producer_id", &self.producer_id())
            .field("producer_epoch", &self.producer_epoch())
            .field("base_sequence", &self.base_sequence())
            .field("records_count", &self.records_count())
            .finish()
    }
}

/// Adds to a producer sequence number the way Kafka does: past `i32::MAX` it restarts at 0.
pub fn sequence_add(seq: i32, delta: i32) -> i32 {
    let sum = i64::from(seq) + i64::from(delta);
    if sum > i64::from(i32::MAX) {
        (sum - i64::from(i32::MAX) - 1) as i32
    } else {
        sum as i32
    }
}

/// Mutable access to the header fields the broker owns. The slice must hold the whole batch
/// so that [`BatchHeaderMut::update_crc`] can recompute the checksum.
pub struct BatchHeaderMut<'a> {
    buf: &'a mut [u8],
}

impl<'a> BatchHeaderMut<'a> {
    /// `None` when `buf` is shorter than a header.
    pub fn new(buf: &'a mut [u8]) -> Option<Self> {
        (buf.len() >= HEADER_LEN).then_some(BatchHeaderMut { buf })
    }
    pub fn view(&self) -> BatchHeader<'_> {
        BatchHeader { buf: self.buf }
    }
    pub fn set_base_offset(&mut self, v: i64) {
        self.buf[BASE_OFFSET..BASE_OFFSET + 8].copy_from_slice(&v.to_be_bytes());
    }
    pub fn set_batch_length(&mut self, v: i32) {
        self.buf[BATCH_LENGTH..BATCH_LENGTH + 4].copy_from_slice(&v.to_be_bytes());
    }
    pub fn set_partition_leader_epoch(&mut self, v: i32) {
        self.buf[LEADER_EPOCH..LEADER_EPOCH + 4].copy_from_slice(&v.to_be_bytes());
    }
    pub fn set_attributes(&mut self, v: i16) {
        self.buf[ATTRIBUTES..ATTRIBUTES + 2].copy_from_slice(&v.to_be_bytes());
    }
    pub fn set_log_append_time(&mut self, on: bool) {
        let attrs = self.view().attributes();
        self.set_attributes(if on {
            attrs | TIMESTAMP_TYPE_BIT
        } else {
            attrs & !TIMESTAMP_TYPE_BIT
        });
    }
    pub fn set_compression(&mut self, codec: u8) {
        let attrs = self.view().attributes();
        self.set_attributes((attrs & !COMPRESSION_MASK) | (i16::from(codec) & COMPRESSION_MASK));
    }
    pub fn set_max_timestamp(&mut self, v: i64) {
        self.buf[MAX_TIMESTAMP..MAX_TIMESTAMP + 8].copy_from_slice(&v.to_be_bytes());
    }
    pub fn set_base_sequence(&mut self, v: i32) {
        self.buf[BASE_SEQUENCE..BASE_SEQUENCE + 4].copy_from_slice(&v.to_be_bytes());
    }
    pub fn set_records_count(&mut self, v: i32) {
        self.buf[RECORDS_COUNT..RECORDS_COUNT + 4].copy_from_slice(&v.to_be_bytes());
    }
    /// Recomputes the CRC after a change to anything from `attributes` on.
    pub fn update_crc(&mut self) {
        let crc = compute_crc(self.buf);
        self.buf[CRC..CRC + 4].copy_from_slice(&crc.to_be_bytes());
    }
}

/// CRC-32C over attributes..end, as stored in the header. `batch` is the whole batch.
pub fn compute_crc(batch: &[u8]) -> u32 {
    crc32c::crc32c(&batch[ATTRIBUTES.min(batch.len())..])
}

/// Why a batch's framing is unacceptable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FramingError {
    /// Fewer bytes remain than the header or the declared length needs.
    Truncated {
        needed: usize,
        available: usize,
    },
    /// `batchLength` smaller than the fixed header or negative.
    BadLength(i32),
    BadMagic(i8),
    CrcMismatch {
        stored: u32,
        computed: u32,
    },
}

impl fmt::Display for FramingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FramingError::Truncated { needed, available } => write!(
                f,
                "truncated batch: needs {needed} bytes, only {available} remain"
            ),
            FramingError::BadLength(len) => write!(
                f,
                "batchLength {len} is smaller than the {} byte v2 header",
                HEADER_LEN - LOG_OVERHEAD
            ),
            FramingError::BadMagic(m) => {
                write!(f, "magic {m} is not supported (only record batch v2)")
            }
            FramingError::CrcMismatch { stored, computed } => write!(
                f,
                "CRC mismatch (stored {stored:#010x}, computed {computed:#010x})"
            ),
        }
    }
}

/// Checks the header fields that framing depends on (length, magic) without the CRC.
/// `buf` starts at the batch; returns the batch's total size.
pub fn check_header(buf: &[u8]) -> Result<usize, FramingError> {
    let header = BatchHeader::new(buf).ok_or(FramingError::Truncated {
        needed: HEADER_LEN,
        available: buf.len(),
    })?;
    let len = header.batch_length();
    if len < (HEADER_LEN - LOG_OVERHEAD) as i32 {
        return Err(FramingError::BadLength(len));
    }
    if header.magic() != MAGIC_V2 {
        return Err(FramingError::BadMagic(header.magic()));
    }
    Ok(header.total_size())
}

/// Checks framing and, if `verify_crc`, the checksum of the batch at the start of `buf`.
/// Returns the batch's total size.
pub fn check_framing(buf: &[u8], verify_crc: bool) -> Result<usize, FramingError> {
    let size = check_header(buf)?;
    if buf.len() < size {
        return Err(FramingError::Truncated {
            needed: size,
            available: buf.len(),
        });
    }
    if verify_crc {
        let header = BatchHeader { buf };
        let computed = compute_crc(&buf[..size]);
        if computed != header.crc() {
            return Err(FramingError::CrcMismatch {
                stored: header.crc(),
                computed,
            });
        }
    }
    Ok(size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_wraps_past_i32_max() {
        assert_eq!(sequence_add(5, 4), 9);
        assert_eq!(sequence_add(i32::MAX, 1), 0);
        assert_eq!(sequence_add(i32::MAX - 1, 3), 1);
    }

    #[test]
    fn framing_rejects_short_bad_length_and_magic() {
        assert!(matches!(
            check_framing(&[0u8; 10], true),
            Err(FramingError::Truncated { .. })
        ));
        let mut buf = vec![0u8; HEADER_LEN];
        buf[8..12].copy_from_slice(&10i32.to_be_bytes());
        assert_eq!(check_framing(&buf, true), Err(FramingError::BadLength(10)));
        buf[8..12].copy_from_slice(&49i32.to_be_bytes());
        buf[16] = 1;
        assert_eq!(check_framing(&buf, true), Err(FramingError::BadMagic(1)));
        buf[16] = 2;
        let crc = compute_crc(&buf);
        assert!(matches!(
            check_framing(&buf, true),
            Err(FramingError::CrcMismatch { computed, .. }) if computed == crc
        ));
        BatchHeaderMut::new(&mut buf).unwrap().update_crc();
        assert_eq!(check_framing(&buf, true), Ok(HEADER_LEN));
    }
}
