//! The reading cursor and the encode/decode trait every wire type implements.

use super::DecodeError;

/// A zero-copy cursor over received octets. Every read is bounds-checked and
/// fails with a [`DecodeError`] naming the field; nothing here can panic.
#[derive(Clone, Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// Octets not yet read.
    pub fn left(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn is_empty(&self) -> bool {
        self.left() == 0
    }

    /// Offset of the cursor from the start of the buffer.
    pub fn position(&self) -> usize {
        self.pos
    }

    pub fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        if n > self.left() {
            return Err(DecodeError::Truncated {
                what,
                need: n,
                have: self.left(),
            });
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    pub fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], DecodeError> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    pub fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        Ok(self.take(1, what)?[0])
    }

    pub fn u16(&mut self, what: &'static str) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array(what)?))
    }

    pub fn u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array(what)?))
    }

    /// Everything not yet read.
    pub fn rest(&mut self) -> &'a [u8] {
        let out = &self.buf[self.pos..];
        self.pos = self.buf.len();
        out
    }

    /// A sub-reader over the next `n` octets.
    pub fn sub(&mut self, n: usize, what: &'static str) -> Result<Reader<'a>, DecodeError> {
        self.take(n, what).map(Reader::new)
    }

    /// Takes a structure whose 2-octet length field (counting the whole
    /// structure, `hdr` octets of header included) was just read as `len`.
    pub fn body(
        &mut self,
        len: u16,
        hdr: usize,
        what: &'static str,
    ) -> Result<Reader<'a>, DecodeError> {
        let len = usize::from(len);
        if len < hdr {
            return Err(DecodeError::BadLength {
                what,
                len,
                reason: "shorter than its own header",
            });
        }
        if len - hdr > self.left() {
            return Err(DecodeError::BadLength {
                what,
                len,
                reason: "runs past the enclosing structure",
            });
        }
        self.sub(len - hdr, what)
    }

    /// Fails unless every octet has been consumed.
    pub fn finish(&self, what: &'static str) -> Result<(), DecodeError> {
        match self.left() {
            0 => Ok(()),
            extra => Err(DecodeError::TrailingData { what, extra }),
        }
    }
}

/// A wire structure: `encode` appends it, `read` takes exactly one from the
/// cursor. `read(encode(x)) == x` for every valid value.
pub trait Codec: Sized {
    fn encode(&self, out: &mut Vec<u8>);

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError>;

    /// Encodes into a fresh buffer.
    fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }

    /// Decodes from octets that must hold exactly one value.
    fn from_bytes(buf: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(buf);
        let v = Self::read(&mut r)?;
        r.finish(core::any::type_name::<Self>())?;
        Ok(v)
    }
}

/// Writes a 2-octet length placeholder and returns where to patch it.
pub(crate) fn len16_placeholder(out: &mut Vec<u8>) -> usize {
    let at = out.len();
    out.extend_from_slice(&[0, 0]);
    at
}

/// Patches the placeholder at `at` with the length of everything from
/// `start` to the end of `out`.
///
/// Structures that exceed 65535 octets cannot be represented; encoders of
/// such values are caller bugs, caught here rather than truncated silently.
pub(crate) fn patch_len16(out: &mut [u8], at: usize, start: usize) {
    let len = u16::try_from(out.len() - start).expect("IKE structure longer than 65535 octets");
    out[at..at + 2].copy_from_slice(&len.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_bounds_checked() {
        let mut r = Reader::new(&[1, 2, 3]);
        assert_eq!(r.u16("a").unwrap(), 0x0102);
        assert_eq!(
            r.u16("b"),
            Err(DecodeError::Truncated {
                what: "b",
                need: 2,
                have: 1
            })
        );
        assert_eq!(r.u8("c").unwrap(), 3);
        assert!(r.finish("x").is_ok());
    }

    #[test]
    fn body_rejects_short_and_overlong_lengths() {
        let mut r = Reader::new(&[0; 6]);
        assert!(matches!(
            r.clone().body(3, 4, "s"),
            Err(DecodeError::BadLength { .. })
        ));
        assert!(matches!(
            r.clone().body(11, 4, "s"),
            Err(DecodeError::BadLength { .. })
        ));
        assert_eq!(r.body(10, 4, "s").unwrap().left(), 6);
    }
}
