//! A whole message: the IKE header and its payload chain.

use super::DecodeError;
use super::codec::{Codec, Reader};
use super::header::IkeHeader;
use super::payload::{Payload, encode_chain, read_chain};
use crate::iana::PayloadType;

/// An IKE message as it travels. For protected messages the last payload
/// is `Payload::Encrypted`, whose inner payloads `crate::rekey` handles.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub header: IkeHeader,
    pub payloads: Vec<Payload>,
}

impl Codec for Message {
    /// Encodes with the header's Next Payload and Length filled in.
    fn encode(&self, out: &mut Vec<u8>) {
        let start = out.len();
        let mut header = self.header;
        header.next_payload = self.payloads.first().map_or(PayloadType::NONE, Payload::ty);
        header.encode(out);
        encode_chain(&self.payloads, out);
        let len = u32::try_from(out.len() - start).expect("message longer than 4 GiB");
        out[start + 24..start + 28].copy_from_slice(&len.to_be_bytes());
    }

    /// Reads a whole datagram: the header's Length must match it exactly.
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let total = r.left();
        let mut header = IkeHeader::read(r)?;
        if header.length as usize != total {
            return Err(DecodeError::BadLength {
                what: "IKE header Length",
                len: header.length as usize,
                reason: "differs from the datagram's size",
            });
        }
        let payloads = read_chain(header.next_payload, r)?;
        // Length and Next Payload are recomputed on encode; keep the value
        // canonical so decode(encode(m)) == m.
        header.length = 0;
        Ok(Self { header, payloads })
    }
}
