//! Traffic Selector substructures (RFC 7296 §3.13.1), as GSA policies carry
//! them: one for the source, one for the destination (RFC 9838 §4.4.2).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::DecodeError;
use super::codec::{Codec, Reader, len16_placeholder, patch_len16};
use crate::iana::TsType;

/// An address range of one family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AddrRange {
    V4(Ipv4Addr, Ipv4Addr),
    V6(Ipv6Addr, Ipv6Addr),
}

/// One traffic selector: an IP protocol, a port range and an address range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TrafficSelector {
    /// IP protocol number; zero means any.
    pub ip_protocol: u8,
    pub start_port: u16,
    pub end_port: u16,
    pub addrs: AddrRange,
}

/// As strongSwan writes selectors: `10.1.0.0-10.1.255.255`,
/// `239.1.1.1[17/5000]`.
impl std::fmt::Display for TrafficSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (a, b): (IpAddr, IpAddr) = match self.addrs {
            AddrRange::V4(a, b) => (a.into(), b.into()),
            AddrRange::V6(a, b) => (a.into(), b.into()),
        };
        if a == b {
            write!(f, "{a}")?;
        } else {
            write!(f, "{a}-{b}")?;
        }
        match (self.ip_protocol, self.start_port, self.end_port) {
            (0, 0, u16::MAX) => Ok(()),
            (p, 0, u16::MAX) => write!(f, "[{p}]"),
            (p, s, e) if s == e => write!(f, "[{p}/{s}]"),
            (p, s, e) => write!(f, "[{p}/{s}-{e}]"),
        }
    }
}

impl TrafficSelector {
    /// A selector for exactly one address, protocol and port.
    pub fn host(addr: IpAddr, ip_protocol: u8, port: u16) -> Self {
        Self {
            ip_protocol,
            start_port: port,
            end_port: port,
            addrs: match addr {
                IpAddr::V4(a) => AddrRange::V4(a, a),
                IpAddr::V6(a) => AddrRange::V6(a, a),
            },
        }
    }

    /// A selector for one address, any protocol and any port.
    pub fn addr(addr: IpAddr) -> Self {
        Self {
            ip_protocol: 0,
            start_port: 0,
            end_port: u16::MAX,
            ..Self::host(addr, 0, 0)
        }
    }

    pub fn is_ipv4(&self) -> bool {
        matches!(self.addrs, AddrRange::V4(..))
    }

    /// The address if the range holds exactly one.
    /// Whether `addr` lies in this selector's address range.
    pub fn contains_addr(&self, addr: IpAddr) -> bool {
        match (self.addrs, addr) {
            (AddrRange::V4(a, b), IpAddr::V4(x)) => a <= x && x <= b,
            (AddrRange::V6(a, b), IpAddr::V6(x)) => a <= x && x <= b,
            _ => false,
        }
    }

    /// This selector with its address range narrowed to `addr` alone
    /// (protocol and ports kept).
    pub fn narrowed_to(&self, addr: IpAddr) -> Self {
        Self {
            addrs: Self::host(addr, 0, 0).addrs,
            ..*self
        }
    }

    pub fn single_addr(&self) -> Option<IpAddr> {
        match self.addrs {
            AddrRange::V4(a, b) if a == b => Some(a.into()),
            AddrRange::V6(a, b) if a == b => Some(a.into()),
            _ => None,
        }
    }

    /// The port if the range holds exactly one.
    pub fn single_port(&self) -> Option<u16> {
        (self.start_port == self.end_port).then_some(self.start_port)
    }
}

impl Codec for TrafficSelector {
    fn encode(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.push(match self.addrs {
            AddrRange::V4(..) => TsType::TS_IPV4_ADDR_RANGE.0,
            AddrRange::V6(..) => TsType::TS_IPV6_ADDR_RANGE.0,
        });
        out.push(self.ip_protocol);
        let at = len16_placeholder(out);
        out.extend_from_slice(&self.start_port.to_be_bytes());
        out.extend_from_slice(&self.end_port.to_be_bytes());
        match self.addrs {
            AddrRange::V4(a, b) => {
                out.extend_from_slice(&a.octets());
                out.extend_from_slice(&b.octets());
            }
            AddrRange::V6(a, b) => {
                out.extend_from_slice(&a.octets());
                out.extend_from_slice(&b.octets());
            }
        }
        patch_len16(out, at, start);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let ty = TsType(r.u8("TS Type")?);
        let ip_protocol = r.u8("IP Protocol ID")?;
        let len = r.u16("Selector Length")?;
        let addr_len = match ty {
            TsType::TS_IPV4_ADDR_RANGE => 4,
            TsType::TS_IPV6_ADDR_RANGE => 16,
            _ => {
                return Err(DecodeError::BadValue {
                    what: "TS Type",
                    value: ty.0.into(),
                    reason: "only IPv4 and IPv6 address ranges are defined",
                });
            }
        };
        if usize::from(len) != 8 + 2 * addr_len {
            return Err(DecodeError::BadLength {
                what: "Selector Length",
                len: len.into(),
                reason: "does not match the TS Type",
            });
        }
        let mut body = r.body(len, 4, "Traffic Selector")?;
        let start_port = body.u16("Start Port")?;
        let end_port = body.u16("End Port")?;
        let addrs = if addr_len == 4 {
            AddrRange::V4(
                body.array::<4>("Starting Address")?.into(),
                body.array::<4>("Ending Address")?.into(),
            )
        } else {
            AddrRange::V6(
                body.array::<16>("Starting Address")?.into(),
                body.array::<16>("Ending Address")?.into(),
            )
        };
        Ok(Self {
            ip_protocol,
            start_port,
            end_port,
            addrs,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_layout_per_rfc7296() {
        let ts = TrafficSelector::host("239.1.1.1".parse().unwrap(), 17, 848);
        assert_eq!(
            ts.to_bytes(),
            [
                7, 17, 0, 16, 0x03, 0x50, 0x03, 0x50, 239, 1, 1, 1, 239, 1, 1, 1
            ]
        );
    }

    #[test]
    fn length_must_match_type() {
        let mut b = TrafficSelector::addr("ff02::1".parse().unwrap()).to_bytes();
        assert_eq!(b.len(), 40);
        b[0] = 7;
        assert!(TrafficSelector::from_bytes(&b).is_err());
    }
}
