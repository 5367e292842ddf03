//! A group's policy as the operator configures it, validated once so the
//! GCKS engine can trust it: what the GCKS hands out (GSA policies and
//! their transforms), how it rekeys, and who may join and send.

use core::fmt;
use std::net::SocketAddr;

use crate::crypto::{EncrAlg, IntegAlg, KeyWrapAlg, SigningKey};
use crate::iana::{EncrId, IdType, IntegId, KwaId, SnId};
use crate::wire::{GroupId, TrafficSelector, Transform};

/// Why a group configuration was refused. `field` names the setting as
/// strongSwan settings spell it; `tek` is the index of the TEK policy a
/// `tek.*` field belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyError {
    pub field: &'static str,
    pub reason: String,
    pub tek: Option<usize>,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

impl std::error::Error for PolicyError {}

fn bad(field: &'static str, reason: impl Into<String>) -> PolicyError {
    PolicyError {
        field,
        reason: reason.into(),
        tek: None,
    }
}

/// IPsec mode of the Data-Security SAs (§2.3.4). Tunnel mode is always
/// tunnel mode with address preservation (RFC 5374).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Tunnel,
    Transport,
}

/// Which security protocol a Data-Security SA uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TekProtocol {
    Esp,
    Ah,
}

/// One Data-Security SA (TEK) policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TekPolicy {
    pub protocol: TekProtocol,
    /// ESP cipher and key length in bits; `None` for AH.
    pub encr: Option<(EncrId, Option<u16>)>,
    /// Integrity algorithm; `IntegId::NONE` for AEAD ESP.
    pub integ: IntegId,
    pub src: TrafficSelector,
    pub dst: TrafficSelector,
    pub lifetime_secs: u32,
    /// Only one sender: 32-bit sequential numbers and replay protection;
    /// otherwise 32-bit unspecified numbers (§4.4.2.1.3, M061).
    pub single_sender: bool,
    /// One SA of this policy per sender: each authorized sender that
    /// registers gets its own SPI and keys, the source selector narrowed
    /// to its address, 32-bit sequential numbers, and the group learns it
    /// by a rekey. What keeps senders of a counter-mode cipher from
    /// repeating IVs where Sender-IDs cannot be put into them (§2.5).
    pub per_sender: bool,
}

impl TekPolicy {
    pub fn encr_alg(&self) -> Option<EncrAlg> {
        self.encr.and_then(|(id, bits)| EncrAlg::new(id, bits).ok())
    }

    pub fn integ_alg(&self) -> IntegAlg {
        IntegAlg::new(self.integ).unwrap_or(IntegAlg::NONE)
    }

    /// Counter-based ciphers need Sender-IDs when several GMs send (§2.5).
    pub fn is_counter_mode(&self) -> bool {
        self.encr.is_some_and(|(id, _)| id.is_counter_mode())
            || matches!(
                self.integ,
                IntegId::AUTH_AES_128_GMAC
                    | IntegId::AUTH_AES_192_GMAC
                    | IntegId::AUTH_AES_256_GMAC
            )
    }

    /// Bytes of keying material this SA takes (§3.4, M070).
    pub fn keymat_len(&self) -> usize {
        self.encr_alg().map_or(0, |e| e.keymat_len()) + self.integ_alg().keymat_len()
    }

    pub fn sn(&self) -> SnId {
        if self.single_sender || self.per_sender {
            SnId::SEQ32
        } else {
            SnId::UNSPECIFIED32
        }
    }

    /// The GSA transforms of this policy (Figure 16).
    pub fn transforms(&self) -> Vec<Transform> {
        let mut t = Vec::new();
        if let Some((id, bits)) = self.encr {
            t.push(Transform::encr(id, bits));
        }
        if self.integ != IntegId::NONE {
            t.push(Transform::integ(self.integ));
        }
        t.push(Transform::sn(self.sn()));
        t
    }
}

/// How the GCKS authenticates GSA_REKEY messages (GCAUTH).
#[derive(Clone)]
pub enum RekeyAuth {
    Implicit,
    Signature(SigningKey),
}

impl fmt::Debug for RekeyAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Implicit => f.write_str("Implicit"),
            Self::Signature(k) => write!(f, "Signature({:?})", k.alg()),
        }
    }
}

/// The Rekey SA (KEK) policy: where and how GSA_REKEY messages travel.
#[derive(Clone, Debug)]
pub struct RekeyPolicy {
    /// Multicast destination address and UDP port of GSA_REKEY.
    pub dst: SocketAddr,
    /// The GCKS's source address and port, if fixed.
    pub src: Option<SocketAddr>,
    pub encr: (EncrId, Option<u16>),
    pub integ: IntegId,
    pub kwa: KwaId,
    pub auth: RekeyAuth,
    pub lifetime_secs: u32,
}

impl RekeyPolicy {
    pub fn encr_alg(&self) -> EncrAlg {
        EncrAlg::new(self.encr.0, self.encr.1).expect("validated")
    }

    pub fn integ_alg(&self) -> IntegAlg {
        IntegAlg::new(self.integ).expect("validated")
    }

    pub fn kwa_alg(&self) -> KeyWrapAlg {
        KeyWrapAlg::from_id(self.kwa).expect("validated")
    }
}

/// Group-wide policy (§4.4.3).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GroupWide {
    /// Activation Time Delay: senders wait this long before using new SAs.
    pub atd_secs: u16,
    /// Deactivation Time Delay: old SAs live this long after a rekey.
    pub dtd_secs: u16,
    /// IV bits holding the Sender-ID; required with counter-mode ciphers.
    pub sender_id_bits: Option<u16>,
}

/// How the GCKS keeps members' keys: one group key for all, or a logical
/// key hierarchy that can exclude members (§3.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyManagement {
    Flat,
    Lkh { degree: u16 },
}

/// Which members get their rekeys by unicast GSA_INBAND_REKEY.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Every member follows multicast GSA_REKEY.
    Multicast,
    /// Every member keeps its IKE SA and gets GSA_INBAND_REKEY; no Rekey SA.
    Inband,
    /// Members whose identity matches one of these get inband rekeys, the
    /// rest multicast.
    Mixed { inband: Vec<IdentityPattern> },
}

/// An identity pattern in strongSwan's style: `*` matches any run of
/// characters (`*@example.com`, `C=CH, O=Example, CN=*`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdentityPattern(pub String);

impl IdentityPattern {
    pub fn matches(&self, identity: &str) -> bool {
        glob(self.0.as_bytes(), identity.as_bytes())
    }
}

fn glob(p: &[u8], s: &[u8]) -> bool {
    // Iterative wildcard match with backtracking to the last star.
    let (mut pi, mut si, mut star, mut mark) = (0, 0, None, 0);
    while si < s.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some(pi);
            pi += 1;
            mark = si;
        } else if pi < p.len() && p[pi] == s[si] {
            pi += 1;
            si += 1;
        } else if let Some(st) = star {
            pi = st + 1;
            mark += 1;
            si = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// Who may join the group and who may send into it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authorization {
    pub members: Vec<IdentityPattern>,
    pub senders: Vec<IdentityPattern>,
}

impl Authorization {
    pub fn may_join(&self, identity: &str) -> bool {
        self.members.iter().any(|p| p.matches(identity))
    }

    pub fn may_send(&self, identity: &str) -> bool {
        self.senders.iter().any(|p| p.matches(identity))
    }
}

/// A group's whole policy. Build it, then [`validate`](Self::validate).
#[derive(Clone, Debug)]
pub struct GroupConfig {
    pub id: GroupId,
    pub teks: Vec<TekPolicy>,
    pub rekey: Option<RekeyPolicy>,
    pub group_wide: GroupWide,
    pub delivery: Delivery,
    pub key_management: KeyManagement,
    pub authorization: Authorization,
    pub member_limit: u32,
    /// Most Sender-IDs one registration gets, whatever it asks (§2.5.1).
    pub max_sender_ids: u32,
    pub mode: Mode,
    /// Seconds before a TEK or KEK expires that the GCKS sends its
    /// replacement.
    pub rekey_margin_secs: u32,
}

impl GroupConfig {
    /// Checks the combination; the error names the setting and the rule.
    pub fn validate(&self) -> Result<(), PolicyError> {
        match self.id.id_type {
            IdType::ID_KEY_ID
            | IdType::ID_FQDN
            | IdType::ID_RFC822_ADDR
            | IdType::ID_IPV4_ADDR
            | IdType::ID_IPV6_ADDR => {}
            t => return Err(bad("id", format!("group ID type {t} is not supported"))),
        }
        if self.id.data.is_empty() {
            return Err(bad("id", "empty group ID"));
        }
        if self.teks.is_empty() && self.rekey.is_none() {
            return Err(bad(
                "teks",
                "a group needs a Data-Security or Rekey SA (§4.4.1)",
            ));
        }
        for (i, tek) in self.teks.iter().enumerate() {
            self.validate_tek(tek)
                .map_err(|e| PolicyError { tek: Some(i), ..e })?;
        }
        for (i, a) in self.teks.iter().enumerate() {
            for b in &self.teks[i + 1..] {
                if a.protocol != b.protocol && (a.src, a.dst) == (b.src, b.dst) {
                    return Err(bad(
                        "teks",
                        "both ESP and AH for the same traffic selectors (§4.4.2)",
                    ));
                }
            }
        }
        let multi_sender_counter =
            self.teks.iter().any(|t| t.is_counter_mode()) && !self.authorization.senders.is_empty();
        if multi_sender_counter && self.group_wide.sender_id_bits.is_none() {
            return Err(bad(
                "sender_id_bits",
                "a counter-mode cipher with senders needs Sender-ID bits (§2.5, §4.4.3.1.2)",
            ));
        }
        if let Some(bits) = self.group_wide.sender_id_bits
            && !(1..=32).contains(&bits)
        {
            return Err(bad("sender_id_bits", "must be 1 to 32"));
        }
        if self.max_sender_ids == 0 {
            return Err(bad("max_sender_ids", "must be at least 1"));
        }
        if self.member_limit == 0 {
            return Err(bad("member_limit", "must be at least 1"));
        }
        if self.authorization.members.is_empty() {
            return Err(bad("members", "nobody may join"));
        }
        let multicast = self.delivery != Delivery::Inband;
        match (&self.rekey, multicast) {
            (None, true) => {
                return Err(bad("rekey", "multicast rekey needs a Rekey SA policy"));
            }
            (Some(_), false) => {
                return Err(bad("rekey", "inband-only delivery takes no Rekey SA"));
            }
            _ => {}
        }
        if let KeyManagement::Lkh { degree } = self.key_management {
            if !multicast {
                return Err(bad(
                    "key_management",
                    "LKH distributes keys by multicast GSA_REKEY",
                ));
            }
            if !(2..=64).contains(&degree) {
                return Err(bad("lkh_degree", "must be 2 to 64"));
            }
        }
        if let Some(r) = &self.rekey {
            self.validate_rekey(r)?;
        }
        // The GCKS rekeys `rekey_margin` before expiry; a GM registers again
        // when an SA is within 30 s, or a tenth of its lifetime, of expiry
        // without a replacement. The GCKS must come first.
        let lifetimes = self
            .teks
            .iter()
            .map(|t| t.lifetime_secs)
            .chain(self.rekey.iter().map(|r| r.lifetime_secs));
        for life in lifetimes {
            let margin = self.rekey_margin_secs;
            if margin >= life {
                return Err(bad("rekey_margin", "must be shorter than every lifetime"));
            }
            if margin <= 30.min(life / 10) {
                return Err(bad(
                    "rekey_margin",
                    format!(
                        "members would register again before a rekey: must exceed {}s for a {life}s lifetime",
                        30.min(life / 10)
                    ),
                ));
            }
        }
        Ok(())
    }

    fn validate_tek(&self, tek: &TekPolicy) -> Result<(), PolicyError> {
        if tek.lifetime_secs == 0 {
            return Err(bad("tek.lifetime", "must be positive"));
        }
        if tek.src.is_ipv4() != tek.dst.is_ipv4() {
            return Err(bad(
                "teks.traffic",
                "source and destination families differ",
            ));
        }
        let integ = IntegAlg::new(tek.integ).map_err(|e| bad("tek.proposal", e.to_string()))?;
        match (tek.protocol, tek.encr) {
            (TekProtocol::Ah, Some(_)) => return Err(bad("tek.proposal", "AH does not encrypt")),
            (TekProtocol::Ah, None) if integ.is_none() => {
                return Err(bad("tek.proposal", "AH needs an integrity algorithm"));
            }
            (TekProtocol::Esp, None) => return Err(bad("tek.proposal", "ESP needs a cipher")),
            (TekProtocol::Esp, Some((id, bits))) => {
                let e = EncrAlg::new(id, bits).map_err(|e| bad("tek.proposal", e.to_string()))?;
                if e.is_aead() && !integ.is_none() {
                    return Err(bad(
                        "teks.integ",
                        "an AEAD cipher takes no integrity algorithm",
                    ));
                }
                if !e.is_aead() && integ.is_none() && id != EncrId::ENCR_NULL {
                    return Err(bad(
                        "teks.integ",
                        "a non-AEAD cipher needs an integrity algorithm",
                    ));
                }
            }
            _ => {}
        }
        if tek.single_sender && self.authorization.senders.is_empty() {
            return Err(bad("tek.single_sender", "no identity may send"));
        }
        if tek.per_sender && tek.single_sender {
            return Err(bad(
                "tek.per_sender",
                "excludes single_sender: one SA per sender, or one sender",
            ));
        }
        if tek.per_sender && self.authorization.senders.is_empty() {
            return Err(bad("tek.per_sender", "no identity may send"));
        }
        if tek.is_counter_mode()
            && !self.authorization.senders.is_empty()
            && !tek.single_sender
            && !tek.per_sender
        {
            return Err(bad(
                "tek.per_sender",
                "several senders would share one counter-mode SA, whose IVs Linux \
                 cannot keep apart (RFC 9838 §2.5): set per_sender = yes or \
                 single_sender = yes, or use a cipher that is not counter mode",
            ));
        }
        Ok(())
    }

    fn validate_rekey(&self, r: &RekeyPolicy) -> Result<(), PolicyError> {
        if !r.dst.ip().is_multicast() {
            return Err(bad("rekey.address", "must be a multicast address (§4.4.2)"));
        }
        if r.dst.port() == 0 {
            return Err(bad("rekey.address", "needs a port"));
        }
        if r.src.is_some_and(|s| s.is_ipv4() != r.dst.is_ipv4()) {
            return Err(bad(
                "rekey.source",
                "address family differs from rekey.address",
            ));
        }
        if r.lifetime_secs == 0 {
            return Err(bad("rekey.lifetime", "must be positive"));
        }
        let encr =
            EncrAlg::new(r.encr.0, r.encr.1).map_err(|e| bad("rekey.proposal", e.to_string()))?;
        let integ = IntegAlg::new(r.integ).map_err(|e| bad("rekey.proposal", e.to_string()))?;
        // The SK payload of GSA_REKEY must be one we can protect.
        crate::crypto::SkProtection::new(
            encr,
            integ,
            &crate::crypto::Secret::new(vec![0; encr.keymat_len()]),
            &crate::crypto::Secret::new(vec![0; integ.keymat_len()]),
        )
        .map_err(|e| bad("rekey.proposal", format!("cannot protect GSA_REKEY: {e}")))?;
        let kwa = KeyWrapAlg::from_id(r.kwa).map_err(|e| bad("rekey.proposal", e.to_string()))?;
        let biggest = self
            .teks
            .iter()
            .filter_map(|t| t.encr_alg())
            .chain([encr])
            .map(|e| e.key_len())
            .max()
            .unwrap_or(0);
        if kwa.key_len() < biggest {
            return Err(bad(
                "rekey.kwa",
                "key wrap keys shorter than the ciphers' keys (§3.1)",
            ));
        }
        Ok(())
    }

    /// Whether `identity` gets its rekeys by GSA_INBAND_REKEY.
    pub fn inband_for(&self, identity: &str) -> bool {
        match &self.delivery {
            Delivery::Multicast => false,
            Delivery::Inband => true,
            Delivery::Mixed { inband } => inband.iter().any(|p| p.matches(identity)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_matches_like_strongswan_identities() {
        let p = IdentityPattern("*@example.com".into());
        assert!(p.matches("gm1@example.com"));
        assert!(!p.matches("gm1@example.org"));
        assert!(IdentityPattern("CN=gm*, O=x".into()).matches("CN=gm7, O=x"));
        assert!(IdentityPattern("*".into()).matches(""));
        assert!(!IdentityPattern("a*b".into()).matches("acbd"));
    }
}
