//! Bounds-checked little-endian cursor over a record body. Every read either succeeds or says
//! which field did not fit, so a hostile length can never index out of bounds or allocate.

/// A field that did not fit in the bytes that were left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Short {
    pub field: &'static str,
    pub at: usize,
    pub needed: u64,
    pub left: usize,
}

pub(crate) struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Cursor { buf, pos: 0 }
    }

    /// Whether every byte has been read: fields appended by a later minor version are read
    /// only when present (an older record lacks them and gets their default).
    pub fn at_end(&self) -> bool {
        self.pos == self.buf.len()
    }

    fn take(&mut self, n: u64, field: &'static str) -> Result<&'a [u8], Short> {
        let left = self.buf.len() - self.pos;
        if n > left as u64 {
            return Err(Short {
                field,
                at: self.pos,
                needed: n,
                left,
            });
        }
        let n = n as usize;
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], Short> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N as u64, field)?);
        Ok(out)
    }

    pub fn u8(&mut self, field: &'static str) -> Result<u8, Short> {
        Ok(self.array::<1>(field)?[0])
    }
    pub fn u16(&mut self, field: &'static str) -> Result<u16, Short> {
        Ok(u16::from_le_bytes(self.array(field)?))
    }
    pub fn u32(&mut self, field: &'static str) -> Result<u32, Short> {
        Ok(u32::from_le_bytes(self.array(field)?))
    }
    pub fn i32(&mut self, field: &'static str) -> Result<i32, Short> {
        Ok(i32::from_le_bytes(self.array(field)?))
    }
    pub fn u64(&mut self, field: &'static str) -> Result<u64, Short> {
        Ok(u64::from_le_bytes(self.array(field)?))
    }
    pub fn bytes16(&mut self, field: &'static str) -> Result<[u8; 16], Short> {
        self.array(field)
    }
    /// A length-prefixed byte string: u32 length, then that many bytes.
    pub fn bytes(&mut self, field: &'static str) -> Result<&'a [u8], Short> {
        // Errors name the field's first byte (its length prefix), as docs/FORMAT.md does.
        let start = self.pos;
        let len = self.u32(field)?;
        self.take(u64::from(len), field)
            .map_err(|s| Short { at: start, ..s })
    }
    /// A list of byte strings: u32 count, then each as [`Cursor::bytes`].
    pub fn list(&mut self, field: &'static str) -> Result<Vec<&'a [u8]>, Short> {
        let start = self.pos;
        let count = self.u32(field)?;
        // Each element needs at least its 4-byte length, so a count larger than that cannot be
        // honest; checking first keeps a hostile count from reserving memory.
        let left = (self.buf.len() - self.pos) as u64;
        if u64::from(count) * 4 > left {
            return Err(Short {
                field,
                at: start,
                needed: u64::from(count) * 4,
                left: left as usize,
            });
        }
        let mut out = Vec::with_capacity(count as usize);
        for _ in 0..count {
            out.push(self.bytes(field)?);
        }
        Ok(out)
    }
}

/// Appends little-endian fields to a buffer; the mirror image of [`Cursor`].
pub(crate) struct Put<'b>(pub &'b mut Vec<u8>);

impl Put<'_> {
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }
    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn i32(&mut self, v: i32) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn raw(&mut self, v: &[u8]) -> &mut Self {
        self.0.extend_from_slice(v);
        self
    }
    /// Callers bound `v` (records are far below 4 GiB), so the length always fits a u32.
    pub fn bytes(&mut self, v: &[u8]) -> &mut Self {
        self.u32(v.len() as u32).raw(v)
    }
    pub fn list(&mut self, v: &[&[u8]]) -> &mut Self {
        self.u32(v.len() as u32);
        for item in v {
            self.bytes(item);
        }
        self
    }
}
