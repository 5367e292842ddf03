//! The IKE header (RFC 7296 §3.1, RFC 9838 §4.1), including GSA_REKEY's use
//! of the two SPI fields as one 16-octet Rekey SA SPI (§2.4.1).

use super::DecodeError;
use super::codec::{Codec, Reader};
use crate::iana::{
    ExchangeType, FLAG_INITIATOR, FLAG_RESPONSE, FLAG_VERSION, IKE_HEADER_LEN, IKE_MAJOR_VERSION,
    IKE_MINOR_VERSION, PayloadType, REKEY_SPI_LEN,
};

/// The SPI of a Rekey SA: the IKE header's initiator and responder SPI
/// fields read as one 16-octet value.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct RekeySpi(pub [u8; REKEY_SPI_LEN]);

impl RekeySpi {
    pub fn from_halves(spi_i: [u8; 8], spi_r: [u8; 8]) -> Self {
        let mut v = [0; REKEY_SPI_LEN];
        v[..8].copy_from_slice(&spi_i);
        v[8..].copy_from_slice(&spi_r);
        Self(v)
    }

    /// The "IKE SA Initiator's SPI" half.
    pub fn spi_i(&self) -> [u8; 8] {
        self.0[..8].try_into().expect("16 = 8 + 8")
    }

    /// The "IKE SA Responder's SPI" half.
    pub fn spi_r(&self) -> [u8; 8] {
        self.0[8..].try_into().expect("16 = 8 + 8")
    }
}

impl core::fmt::Debug for RekeySpi {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("RekeySpi(")?;
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        f.write_str(")")
    }
}

/// An IKE header as it is on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IkeHeader {
    pub spi_i: [u8; 8],
    pub spi_r: [u8; 8],
    pub next_payload: PayloadType,
    pub exchange: ExchangeType,
    pub flags: u8,
    pub message_id: u32,
    /// Total message length, header included.
    pub length: u32,
}

impl IkeHeader {
    /// The header of a GSA_REKEY message on the Rekey SA `spi`.
    pub fn rekey(spi: RekeySpi, message_id: u32) -> Self {
        Self {
            spi_i: spi.spi_i(),
            spi_r: spi.spi_r(),
            next_payload: PayloadType::SK,
            exchange: ExchangeType::GSA_REKEY,
            // The GCKS originates the pseudo-exchange.
            flags: FLAG_INITIATOR,
            message_id,
            length: 0,
        }
    }

    /// Both SPI fields as one Rekey SA SPI (meaningful for GSA_REKEY).
    pub fn rekey_spi(&self) -> RekeySpi {
        RekeySpi::from_halves(self.spi_i, self.spi_r)
    }

    pub fn is_response(&self) -> bool {
        self.flags & FLAG_RESPONSE != 0
    }

    pub fn is_initiator(&self) -> bool {
        self.flags & FLAG_INITIATOR != 0
    }
}

impl Codec for IkeHeader {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.spi_i);
        out.extend_from_slice(&self.spi_r);
        out.push(self.next_payload.0);
        out.push((IKE_MAJOR_VERSION << 4) | IKE_MINOR_VERSION);
        out.push(self.exchange.0);
        out.push(self.flags);
        out.extend_from_slice(&self.message_id.to_be_bytes());
        out.extend_from_slice(&self.length.to_be_bytes());
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let spi_i = r.array("IKE SA Initiator's SPI")?;
        let spi_r = r.array("IKE SA Responder's SPI")?;
        let next_payload = PayloadType(r.u8("Next Payload")?);
        let version = r.u8("Version")?;
        if version >> 4 != IKE_MAJOR_VERSION {
            return Err(DecodeError::BadValue {
                what: "MjVer",
                value: u64::from(version >> 4),
                reason: "G-IKEv2 is major version 2",
            });
        }
        let exchange = ExchangeType(r.u8("Exchange Type")?);
        let flags = r.u8("Flags")?;
        // RFC 7296 §3.1: bits other than I, V and R are ignored on receipt;
        // we keep them out of the value so a round trip stays canonical.
        let flags = flags & (FLAG_INITIATOR | FLAG_VERSION | FLAG_RESPONSE);
        let message_id = r.u32("Message ID")?;
        let length = r.u32("Length")?;
        if (length as usize) < IKE_HEADER_LEN {
            return Err(DecodeError::BadLength {
                what: "IKE header Length",
                len: length as usize,
                reason: "shorter than the IKE header",
            });
        }
        Ok(Self {
            spi_i,
            spi_r,
            next_payload,
            exchange,
            flags,
            message_id,
            length,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rekey_spi_is_the_two_spi_fields() {
        let spi = RekeySpi(core::array::from_fn(|i| i as u8));
        let mut h = IkeHeader::rekey(spi, 7);
        h.length = 28;
        let b = h.to_bytes();
        assert_eq!(&b[..16], &spi.0);
        assert_eq!(b[16], 46); // SK
        assert_eq!(b[17], 0x20); // version 2.0
        assert_eq!(b[18], 41); // GSA_REKEY
        assert_eq!(&b[20..24], &[0, 0, 0, 7]);
        assert_eq!(IkeHeader::from_bytes(&b).unwrap().rekey_spi(), spi);
    }

    #[test]
    fn rejects_other_major_versions() {
        let mut b = IkeHeader::rekey(RekeySpi::default(), 0).to_bytes();
        b[17] = 0x10;
        assert!(matches!(
            IkeHeader::from_bytes(&b),
            Err(DecodeError::BadValue { what: "MjVer", .. })
        ));
    }
}
