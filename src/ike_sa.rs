//! What an IKE SA contributes to G-IKEv2 once charon has established it:
//! the keys the default key wrap key is derived from (§3.1.1).

use crate::crypto::{CryptoError, KeyWrapAlg, PrfAlg, Secret, default_kwk};

/// Milliseconds on the host's monotonic clock; the engines' only notion of
/// time.
pub type Millis = u64;

/// SK_d, the PRF and the Key Wrap Algorithm of a unicast IKE SA.
#[derive(Clone, Copy, Debug)]
pub struct IkeKeys<'a> {
    pub sk_d: &'a Secret,
    pub prf: PrfAlg,
    /// Negotiated in IKE_SA_INIT (M087).
    pub kwa: KeyWrapAlg,
}

impl IkeKeys<'_> {
    /// GSK_w = prf+(SK_d, "Key Wrap for G-IKEv2"), sized for the KWA.
    pub fn default_kwk(&self) -> Result<Secret, CryptoError> {
        default_kwk(self.prf, self.sk_d, self.kwa)
    }
}
