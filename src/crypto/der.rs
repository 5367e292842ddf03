//! The little DER this module needs: reading the two levels of a
//! SubjectPublicKeyInfo strictly, and writing one. Anything not in
//! canonical DER (long-form lengths that could be short, indefinite
//! lengths, trailing data) is rejected.

use super::{CryptoError, Result};

pub(crate) const TAG_SEQUENCE: u8 = 0x30;
pub(crate) const TAG_BIT_STRING: u8 = 0x03;

/// One TLV: its tag, its contents, and the whole encoding.
pub(crate) struct Tlv<'a> {
    pub tag: u8,
    pub content: &'a [u8],
    pub whole: &'a [u8],
}

/// Reads one TLV from the front of `input`; returns it and the rest.
pub(crate) fn read_tlv(input: &[u8]) -> Result<(Tlv<'_>, &[u8])> {
    const BAD: CryptoError = CryptoError::Malformed("bad DER encoding");
    let (&tag, rest) = input.split_first().ok_or(BAD)?;
    if tag & 0x1f == 0x1f {
        return Err(BAD); // multi-octet tags: never in what we parse
    }
    let (&first, mut rest) = rest.split_first().ok_or(BAD)?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 3 || rest.len() < n || rest[0] == 0 {
            return Err(BAD);
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |a, &b| (a << 8) | usize::from(b));
        if len < 0x80 {
            return Err(BAD);
        }
        rest = &rest[n..];
        len
    };
    if rest.len() < len {
        return Err(BAD);
    }
    let header = input.len() - rest.len();
    let (content, rest) = rest.split_at(len);
    Ok((
        Tlv {
            tag,
            content,
            whole: &input[..header + len],
        },
        rest,
    ))
}

/// Reads exactly one TLV with tag `tag` filling all of `input`.
pub(crate) fn read_only(input: &[u8], tag: u8) -> Result<Tlv<'_>> {
    let (tlv, rest) = read_tlv(input)?;
    if tlv.tag != tag || !rest.is_empty() {
        return Err(CryptoError::Malformed("unexpected DER structure"));
    }
    Ok(tlv)
}

/// Appends the DER encoding of `tag` with `content`.
pub(crate) fn write_tlv(out: &mut Vec<u8>, tag: u8, content: &[u8]) {
    out.push(tag);
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_short_and_long_lengths() {
        for len in [0usize, 1, 127, 128, 255, 256, 300, 70000] {
            let content = vec![0xab; len];
            let mut out = Vec::new();
            write_tlv(&mut out, TAG_SEQUENCE, &content);
            let tlv = read_only(&out, TAG_SEQUENCE).unwrap();
            assert_eq!(tlv.content, &content[..]);
            assert_eq!(tlv.whole, &out[..]);
        }
    }

    #[test]
    fn rejects_non_canonical_and_truncated() {
        for bad in [
            &[0x30, 0x81, 0x05, 0, 0, 0, 0, 0][..], // long form for a short length
            &[0x30, 0x80, 0x00, 0x00],              // indefinite length
            &[0x30, 0x82, 0x00, 0x80],              // leading zero length octet
            &[0x30, 0x03, 0x00],                    // truncated
            &[0x30],
            &[],
            &[0x1f, 0x01, 0x00], // multi-octet tag
        ] {
            assert!(read_tlv(bad).is_err(), "{bad:02x?}");
        }
        assert!(read_only(&[0x30, 0x00, 0x00], TAG_SEQUENCE).is_err()); // trailing
        assert!(read_only(&[0x03, 0x00], TAG_SEQUENCE).is_err()); // wrong tag
    }
}
