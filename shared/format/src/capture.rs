//! The two ways a probe holds on to bytes of a stream it sees only once: a [`Region`] at a
//! known offset, and the shared [`Tail`] for trailers that only exist at the end.

/// Bytes `[offset, offset + len)` of the stream, collected as chunks go by.
///
/// Chunks arrive at arbitrary boundaries, so a region may fill over many calls. Nothing is
/// allocated until the stream reaches `offset`: a region for a header that turns out not to
/// exist costs nothing.
#[derive(Debug)]
pub(crate) struct Region {
    offset: u64,
    len: usize,
    data: Vec<u8>,
}

impl Region {
    pub(crate) fn new(offset: u64, len: usize) -> Self {
        Self {
            offset,
            len,
            data: Vec::new(),
        }
    }

    /// Takes what this region wants from `chunk`, which starts at stream offset `pos`.
    ///
    /// A region must be created no later than the chunk holding its first byte; probes that
    /// discover a region while parsing check [`Region::offset`] against the chunk start.
    pub(crate) fn feed(&mut self, chunk: &[u8], pos: u64) {
        if self.is_complete() {
            return;
        }
        let want = self.offset + self.data.len() as u64;
        let chunk_end = pos + chunk.len() as u64;
        if want < pos || want >= chunk_end {
            return;
        }
        let start = (want - pos) as usize;
        let take = (self.len - self.data.len()).min(chunk.len() - start);
        if self.data.capacity() == 0 {
            self.data.reserve_exact(self.len);
        }
        self.data.extend_from_slice(&chunk[start..start + take]);
    }

    /// Extends a region that is being (or has just been) filled, once its first bytes say how
    /// long the structure really is. The bytes already captured stay; feed the current chunk
    /// again to pick up what it holds of the new part.
    pub(crate) fn grow(&mut self, len: usize) {
        debug_assert!(len >= self.len, "regions only grow");
        self.len = len;
        self.data.reserve_exact(len - self.data.len());
    }

    pub(crate) fn is_complete(&self) -> bool {
        self.data.len() == self.len
    }

    /// The bytes captured so far (all of them once complete).
    pub(crate) fn data(&self) -> &[u8] {
        &self.data
    }

    pub(crate) fn offset(&self) -> u64 {
        self.offset
    }

    /// Bytes held in memory, for the capture budget.
    pub(crate) fn held(&self) -> usize {
        self.data.capacity()
    }

    /// Drops the captured bytes once the probe has what it needs from them.
    pub(crate) fn release(&mut self) {
        self.data = Vec::new();
    }
}

/// How many trailing bytes every inspection keeps: a VMDK stream-optimized footer is the
/// longest trailer we check (footer marker, footer, end-of-stream marker: 3 sectors).
pub(crate) const TAIL_LEN: usize = 1536;

/// The last [`TAIL_LEN`] bytes of the stream, as a ring buffer so that even one-byte chunks
/// cost a constant, tiny copy.
#[derive(Debug)]
pub(crate) struct Tail {
    buf: Box<[u8; TAIL_LEN]>,
    /// Where the next byte goes.
    head: usize,
    /// Total bytes ever pushed, saturating at the buffer length.
    filled: usize,
}

impl Tail {
    pub(crate) fn new() -> Self {
        Self {
            buf: Box::new([0; TAIL_LEN]),
            head: 0,
            filled: 0,
        }
    }

    pub(crate) fn push(&mut self, chunk: &[u8]) {
        if chunk.len() >= TAIL_LEN {
            self.buf.copy_from_slice(&chunk[chunk.len() - TAIL_LEN..]);
            self.head = 0;
            self.filled = TAIL_LEN;
            return;
        }
        let first = chunk.len().min(TAIL_LEN - self.head);
        self.buf[self.head..self.head + first].copy_from_slice(&chunk[..first]);
        let rest = chunk.len() - first;
        self.buf[..rest].copy_from_slice(&chunk[first..]);
        self.head = (self.head + chunk.len()) % TAIL_LEN;
        self.filled = (self.filled + chunk.len()).min(TAIL_LEN);
    }

    pub(crate) fn held(&self) -> usize {
        TAIL_LEN
    }

    /// The last `n` bytes of the stream in order, or `None` if the stream was shorter.
    pub(crate) fn last(&self, n: usize) -> Option<Vec<u8>> {
        if n > self.filled {
            return None;
        }
        let start = (self.head + TAIL_LEN - n) % TAIL_LEN;
        let mut out = Vec::with_capacity(n);
        if start + n <= TAIL_LEN {
            out.extend_from_slice(&self.buf[start..start + n]);
        } else {
            out.extend_from_slice(&self.buf[start..]);
            out.extend_from_slice(&self.buf[..n - (TAIL_LEN - start)]);
        }
        Some(out)
    }
}

/// Fixed-width integer readers. Callers slice only within data they know is complete, so an
/// out-of-range read is a bug, not a malformed image.
pub(crate) mod read {
    fn array<const N: usize>(b: &[u8], off: usize) -> [u8; N] {
        b[off..off + N]
            .try_into()
            .expect("slice of exactly N bytes")
    }

    pub(crate) fn le16(b: &[u8], off: usize) -> u16 {
        u16::from_le_bytes(array(b, off))
    }

    pub(crate) fn le32(b: &[u8], off: usize) -> u32 {
        u32::from_le_bytes(array(b, off))
    }

    pub(crate) fn le64(b: &[u8], off: usize) -> u64 {
        u64::from_le_bytes(array(b, off))
    }

    pub(crate) fn be16(b: &[u8], off: usize) -> u16 {
        u16::from_be_bytes(array(b, off))
    }

    pub(crate) fn be32(b: &[u8], off: usize) -> u32 {
        u32::from_be_bytes(array(b, off))
    }

    pub(crate) fn be64(b: &[u8], off: usize) -> u64 {
        u64::from_be_bytes(array(b, off))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn capture(region: &mut Region, data: &[u8], chunk: usize) {
        let mut pos = 0u64;
        for piece in data.chunks(chunk) {
            region.feed(piece, pos);
            pos += piece.len() as u64;
        }
    }

    #[test]
    fn a_region_collects_the_same_bytes_whatever_the_chunk_size() {
        let data: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
        for chunk in [1, 3, 7, 100, 512, 4096, 5000] {
            let mut region = Region::new(1000, 777);
            capture(&mut region, &data, chunk);
            assert!(region.is_complete(), "chunk {chunk}");
            assert_eq!(region.data(), &data[1000..1777], "chunk {chunk}");
        }
    }

    #[test]
    fn a_grown_region_continues_where_it_stopped() {
        let data: Vec<u8> = (0..=255u8).collect();
        for chunk in [1, 10, 64, 256] {
            let mut region = Region::new(0, 16);
            let mut pos = 0u64;
            for piece in data.chunks(chunk) {
                region.feed(piece, pos);
                if region.is_complete() && region.data().len() == 16 {
                    region.grow(100);
                    region.feed(piece, pos);
                }
                pos += piece.len() as u64;
            }
            assert_eq!(region.data(), &data[..100], "chunk {chunk}");
        }
    }

    #[test]
    fn a_region_past_the_end_of_the_stream_stays_incomplete() {
        let mut region = Region::new(90, 20);
        capture(&mut region, &[7u8; 100], 33);
        assert!(!region.is_complete());
        assert_eq!(region.data(), &[7u8; 10]);
    }

    #[test]
    fn a_region_allocates_nothing_until_the_stream_reaches_it() {
        let mut region = Region::new(1 << 20, 4096);
        capture(&mut region, &[0u8; 1000], 100);
        assert_eq!(region.held(), 0);
    }

    #[test]
    fn the_tail_holds_the_last_bytes_whatever_the_chunk_size() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 251) as u8).collect();
        for chunk in [1, 5, 511, 1536, 1537, 4096, 10_000] {
            let mut tail = Tail::new();
            for piece in data.chunks(chunk) {
                tail.push(piece);
            }
            assert_eq!(
                tail.last(TAIL_LEN).unwrap(),
                &data[data.len() - TAIL_LEN..],
                "chunk {chunk}"
            );
            assert_eq!(tail.last(512).unwrap(), &data[data.len() - 512..]);
        }
    }

    #[test]
    fn the_tail_of_a_short_stream_has_only_what_was_seen() {
        let mut tail = Tail::new();
        tail.push(b"abc");
        tail.push(b"de");
        assert_eq!(tail.last(5).unwrap(), b"abcde");
        assert_eq!(tail.last(6), None);
    }
}
