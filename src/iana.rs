//! Every number G-IKEv2 puts on the wire, in one place.
//!
//! Registries are open enums (a newtype over the integer with named
//! constants, as rustls does) so that values we do not know survive a
//! round trip and still print readably. Values are RFC 7296 and the IANA
//! assignments of RFC 9838 (`shared/spec/CODEPOINTS.md`).

use core::fmt;

macro_rules! registry {
    (
        $(#[$meta:meta])*
        $name:ident($repr:ty) {
            $( $(#[$vmeta:meta])* $var:ident = $val:expr, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        pub struct $name(pub $repr);

        impl $name {
            $( $(#[$vmeta])* pub const $var: Self = Self($val); )*

            /// The registry name of this value, if it is one we know.
            pub fn name(self) -> Option<&'static str> {
                match self.0 {
                    $( $val => Some(stringify!($var)), )*
                    _ => None,
                }
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self.name() {
                    Some(n) => f.write_str(n),
                    None => write!(f, "{}({})", stringify!($name), self.0),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(self, f)
            }
        }

        impl From<$repr> for $name {
            fn from(v: $repr) -> Self {
                Self(v)
            }
        }

        impl From<$name> for $repr {
            fn from(v: $name) -> $repr {
                v.0
            }
        }
    };
}

registry! {
    /// IKEv2 Exchange Types (RFC 7296 §3.1, RFC 9838 §9.3).
    ExchangeType(u8) {
        IKE_SA_INIT = 34,
        IKE_AUTH = 35,
        CREATE_CHILD_SA = 36,
        INFORMATIONAL = 37,
        GSA_AUTH = 39,
        GSA_REGISTRATION = 40,
        GSA_REKEY = 41,
        GSA_INBAND_REKEY = 42,
        IKE_INTERMEDIATE = 43,
    }
}

registry! {
    /// IKEv2 Payload Types (RFC 7296 §3.2, RFC 9838 §9.3).
    PayloadType(u8) {
        NONE = 0,
        /// SA, and SAg in G-IKEv2 requests.
        SA = 33,
        KE = 34,
        IDI = 35,
        IDR = 36,
        CERT = 37,
        CERTREQ = 38,
        AUTH = 39,
        NONCE = 40,
        NOTIFY = 41,
        DELETE = 42,
        VENDOR_ID = 43,
        TSI = 44,
        TSR = 45,
        SK = 46,
        CP = 47,
        EAP = 48,
        IDG = 50,
        GSA = 51,
        KD = 52,
        SKF = 53,
    }
}

registry! {
    /// IKEv2 Security Protocol Identifiers. Zero is never a protocol: the
    /// GW policy substructure, Member Key Bag and "whole group" Delete use it.
    ProtocolId(u8) {
        NONE = 0,
        IKE = 1,
        AH = 2,
        ESP = 3,
        /// The Rekey SA (RFC 9838).
        GIKE_UPDATE = 6,
    }
}

registry! {
    /// Transform Type Values (RFC 7296 §3.3.2, RFC 9838 §9.3).
    TransformType(u8) {
        ENCR = 1,
        PRF = 2,
        INTEG = 3,
        KE = 4,
        /// Sequence Numbers, formerly ESN.
        SN = 5,
        /// Key Wrap Algorithm.
        KWA = 13,
        /// Group Controller Authentication Method.
        GCAUTH = 14,
    }
}

registry! {
    /// Transform Type 1 - Encryption Algorithm Transform IDs.
    EncrId(u16) {
        ENCR_3DES = 3,
        ENCR_NULL = 11,
        ENCR_AES_CBC = 12,
        ENCR_AES_CTR = 13,
        ENCR_AES_CCM_8 = 14,
        ENCR_AES_CCM_12 = 15,
        ENCR_AES_CCM_16 = 16,
        ENCR_AES_GCM_8 = 18,
        ENCR_AES_GCM_12 = 19,
        ENCR_AES_GCM_16 = 20,
        ENCR_NULL_AUTH_AES_GMAC = 21,
        ENCR_CHACHA20_POLY1305 = 28,
        /// Implicit IV transforms (RFC 8750): never allowed in G-IKEv2 (§2.7).
        ENCR_AES_CCM_8_IIV = 29,
        ENCR_AES_GCM_16_IIV = 30,
        ENCR_CHACHA20_POLY1305_IIV = 31,
    }
}

registry! {
    /// Transform Type 2 - Pseudorandom Function Transform IDs.
    PrfId(u16) {
        PRF_HMAC_SHA1 = 2,
        PRF_HMAC_SHA2_256 = 5,
        PRF_HMAC_SHA2_384 = 6,
        PRF_HMAC_SHA2_512 = 7,
    }
}

registry! {
    /// Transform Type 3 - Integrity Algorithm Transform IDs.
    IntegId(u16) {
        NONE = 0,
        AUTH_HMAC_SHA1_96 = 2,
        AUTH_AES_XCBC_96 = 5,
        AUTH_AES_128_GMAC = 9,
        AUTH_AES_192_GMAC = 10,
        AUTH_AES_256_GMAC = 11,
        AUTH_HMAC_SHA2_256_128 = 12,
        AUTH_HMAC_SHA2_384_192 = 13,
        AUTH_HMAC_SHA2_512_256 = 14,
    }
}

registry! {
    /// Transform Type 5 - Sequence Numbers Transform IDs.
    SnId(u16) {
        /// 32-bit Sequential Numbers.
        SEQ32 = 0,
        /// Partially Transmitted 64-bit Sequential Numbers (ESN): never for
        /// multicast Data-Security SAs (§4.4.2.1.3).
        ESN = 1,
        /// 32-bit Unspecified Numbers (RFC 9838).
        UNSPECIFIED32 = 2,
    }
}

registry! {
    /// Transform Type 13 - Key Wrap Algorithm Transform IDs.
    KwaId(u16) {
        KW_5649_128 = 1,
        KW_5649_192 = 2,
        KW_5649_256 = 3,
        KW_ARX = 4,
    }
}

registry! {
    /// Transform Type 14 - Group Controller Authentication Method IDs.
    GcauthId(u16) {
        IMPLICIT = 1,
        DIGITAL_SIGNATURE = 2,
    }
}

registry! {
    /// IKEv2 Transform Attribute Types (RFC 7296 §3.3.5, RFC 9838 §9.3).
    TransformAttrType(u16) {
        /// Key Length in bits, TV.
        KEY_LENGTH = 14,
        /// DER AlgorithmIdentifier, TLV (GCAUTH Digital Signature only).
        SIGNATURE_ALGORITHM_IDENTIFIER = 18,
    }
}

registry! {
    /// Notify Message Types (error types below 16384, status above).
    NotifyType(u16) {
        UNSUPPORTED_CRITICAL_PAYLOAD = 1,
        INVALID_SYNTAX = 7,
        INVALID_MESSAGE_ID = 9,
        NO_PROPOSAL_CHOSEN = 14,
        AUTHENTICATION_FAILED = 24,
        INVALID_GROUP_ID = 45,
        AUTHORIZATION_FAILED = 46,
        REGISTRATION_FAILED = 49,
        IPCOMP_SUPPORTED = 16387,
        USE_TRANSPORT_MODE = 16391,
        GROUP_SENDER = 16429,
        /// Private use (RFC 7296 §3.10.1: status types 40960-65535), this
        /// implementation's: in a GSA_REKEY, the Message IDs from the
        /// 4-octet value in its data up to the message's own were never
        /// sent (a restored GCKS skipped them), so they are no gap.
        /// Other GMs ignore it, as they must an unknown status type.
        SKIPPED_MESSAGE_IDS = 40960,
    }
}

registry! {
    /// IKEv2 Identification Payload ID Types (used by IDg, §4.2).
    IdType(u8) {
        ID_IPV4_ADDR = 1,
        ID_FQDN = 2,
        ID_RFC822_ADDR = 3,
        ID_IPV6_ADDR = 5,
        ID_DER_ASN1_DN = 9,
        ID_DER_ASN1_GN = 10,
        ID_KEY_ID = 11,
    }
}

registry! {
    /// IKEv2 Authentication Method.
    AuthMethod(u8) {
        RSA_SIG = 1,
        SHARED_KEY_MIC = 2,
        DSS_SIG = 3,
        ECDSA_SHA256_P256 = 9,
        ECDSA_SHA384_P384 = 10,
        ECDSA_SHA512_P521 = 11,
        NULL_AUTH = 13,
        /// RFC 7427; the only method of a GSA_REKEY AUTH payload.
        DIGITAL_SIGNATURE = 14,
    }
}

registry! {
    /// IKEv2 Traffic Selector Types.
    TsType(u8) {
        TS_IPV4_ADDR_RANGE = 7,
        TS_IPV6_ADDR_RANGE = 8,
    }
}

registry! {
    /// GSA Attributes (§4.4.2.2).
    GsaAttrType(u16) {
        GSA_KEY_LIFETIME = 1,
        GSA_INITIAL_MESSAGE_ID = 2,
        GSA_NEXT_SPI = 3,
    }
}

registry! {
    /// Group-wide Policy Attributes (§4.4.3.1).
    GwpAttrType(u16) {
        GWP_ATD = 1,
        GWP_DTD = 2,
        GWP_SENDER_ID_BITS = 3,
    }
}

registry! {
    /// Group Key Bag Attributes (§4.5.2).
    GroupKeyBagAttrType(u16) {
        SA_KEY = 1,
    }
}

registry! {
    /// Member Key Bag Attributes (§4.5.3).
    MemberKeyBagAttrType(u16) {
        WRAP_KEY = 1,
        AUTH_KEY = 2,
        GM_SENDER_ID = 3,
    }
}

impl EncrId {
    /// Combined-mode ciphers, which carry their own integrity check.
    pub fn is_aead(self) -> bool {
        matches!(
            self,
            Self::ENCR_AES_CCM_8
                | Self::ENCR_AES_CCM_12
                | Self::ENCR_AES_CCM_16
                | Self::ENCR_AES_GCM_8
                | Self::ENCR_AES_GCM_12
                | Self::ENCR_AES_GCM_16
                | Self::ENCR_NULL_AUTH_AES_GMAC
                | Self::ENCR_CHACHA20_POLY1305
        ) || self.is_implicit_iv()
    }

    /// Counter-based modes, which need Sender-IDs when a group has several
    /// senders (§2.5).
    pub fn is_counter_mode(self) -> bool {
        self == Self::ENCR_AES_CTR || self.is_aead()
    }

    /// Transforms that build the IV from the sequence number (RFC 8750);
    /// G-IKEv2 SAs MUST NOT use them (§2.7).
    pub fn is_implicit_iv(self) -> bool {
        matches!(
            self,
            Self::ENCR_AES_CCM_8_IIV | Self::ENCR_AES_GCM_16_IIV | Self::ENCR_CHACHA20_POLY1305_IIV
        )
    }
}

/// IKE major version carried in every header (RFC 7296 §3.1).
pub const IKE_MAJOR_VERSION: u8 = 2;
/// IKE minor version.
pub const IKE_MINOR_VERSION: u8 = 0;
/// Length of the IKE header.
pub const IKE_HEADER_LEN: usize = 28;
/// Length of the generic payload header.
pub const GENERIC_PAYLOAD_HEADER_LEN: usize = 4;
/// IKE header flag: sent by the original initiator.
pub const FLAG_INITIATOR: u8 = 0x08;
/// IKE header flag: sender could speak a higher major version.
pub const FLAG_VERSION: u8 = 0x10;
/// IKE header flag: this message is a response.
pub const FLAG_RESPONSE: u8 = 0x20;
/// Generic payload header: critical bit.
pub const PAYLOAD_CRITICAL: u8 = 0x80;
/// Attribute Format bit: set for TV, clear for TLV (RFC 7296 §3.3.5).
pub const ATTR_FORMAT_TV: u16 = 0x8000;
/// Transform substructure "Last Substruc": more transforms follow.
pub const LAST_SUBSTRUC_MORE_TRANSFORMS: u8 = 3;
/// Proposal substructure "Last Substruc": more proposals follow.
pub const LAST_SUBSTRUC_MORE_PROPOSALS: u8 = 2;
/// Last Substruc: this is the last one.
pub const LAST_SUBSTRUC_LAST: u8 = 0;
/// SPI size of a Rekey SA (GIKE_UPDATE): the IKE header's SPI pair.
pub const REKEY_SPI_LEN: usize = 16;
/// SPI size of an ESP or AH Data-Security SA.
pub const DATA_SPI_LEN: usize = 4;
/// Length of a wrapped key's Key ID and KWK ID fields together (§4.5.4).
pub const WRAPPED_KEY_HEADER_LEN: usize = 8;
/// Label of the default KWK of a unicast IKE SA (§3.1.1), without a NUL.
pub const KWK_LABEL: &[u8; 20] = b"Key Wrap for G-IKEv2";
/// UDP ports: IKEv2's two, and GDOI's, which G-IKEv2 MAY use (§2.1.1).
pub const PORT_IKE: u16 = 500;
/// NAT-T port; messages on it carry four zero octets first.
pub const PORT_IKE_NATT: u16 = 4500;
/// The four zero octets before an IKE message on port 4500 (RFC 3948 §2.2).
pub const NON_ESP_MARKER: [u8; 4] = [0; 4];
/// GDOI port.
pub const PORT_GDOI: u16 = 848;
/// IP protocol number of UDP, for Rekey SA traffic selectors.
pub const IPPROTO_UDP: u8 = 17;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_values_print_with_registry_name() {
        assert_eq!(format!("{:?}", ExchangeType::GSA_REKEY), "GSA_REKEY");
        assert_eq!(format!("{:?}", ExchangeType(200)), "ExchangeType(200)");
        assert_eq!(NotifyType::GROUP_SENDER.0, 16429);
    }
}
