//! Group and membership configuration from strongSwan-style settings.
//!
//! The plugin walks its section of strongswan.conf
//! (`charon.plugins.gikev2.groups.<name>` on a GCKS,
//! `….memberships.<name>` on a GM) and hands the core the key/value pairs
//! with keys relative to that section (`rekey.address`,
//! `tek.feed.destination`). Values use strongSwan's conventions: proposal
//! keywords (`aes256gcm16`, `aes128-sha256`), durations (`90s`, `2h`),
//! booleans (`yes`/`no`), identities with `*` wildcards, traffic selectors
//! (`239.1.1.1[udp/5000]`, `10.1.0.0/16`). Unknown keys and bad values
//! are errors naming the key and the reason.

use core::fmt;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::crypto::{KeyWrapAlg, SigningKey};
use crate::gm::{MembershipConfig, Role};
use crate::iana::{EncrId, IdType, IntegId, KwaId, ProtocolId, TransformType};
use crate::policy::{
    Authorization, Delivery, GroupConfig, GroupWide, IdentityPattern, KeyManagement, Mode,
    RekeyAuth, RekeyPolicy, TekPolicy, TekProtocol,
};
use crate::wire::{AddrRange, GroupId, Proposal, SaPayload, TrafficSelector, Transform};

/// A setting that could not be used. The plugin prefixes the file and
/// section; `key` is relative to the group's or membership's section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub key: String,
    pub reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.reason)
    }
}

impl std::error::Error for ConfigError {}

fn err(key: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        key: key.to_owned(),
        reason: reason.into(),
    }
}

/// Settings of one section, consumed key by key so leftovers are reported.
struct Settings {
    values: BTreeMap<String, String>,
}

impl Settings {
    fn new<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Self, ConfigError> {
        let mut values = BTreeMap::new();
        for (k, v) in pairs {
            let k = k.trim();
            if values.insert(k.to_owned(), v.trim().to_owned()).is_some() {
                return Err(err(k, "set twice"));
            }
        }
        Ok(Self { values })
    }

    fn take(&mut self, key: &str) -> Option<String> {
        self.values.remove(key)
    }

    fn take_or<T>(
        &mut self,
        key: &str,
        default: T,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<T, ConfigError> {
        match self.take(key) {
            Some(v) => parse(&v).map_err(|r| err(key, r)),
            None => Ok(default),
        }
    }

    fn require<T>(
        &mut self,
        key: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<T, ConfigError> {
        let v = self.take(key).ok_or_else(|| err(key, "missing"))?;
        parse(&v).map_err(|r| err(key, r))
    }

    /// Names of the subsections under `prefix.` (e.g. the TEKs).
    fn subsections(&self, prefix: &str) -> Vec<String> {
        let mut out: Vec<String> = self
            .values
            .keys()
            .filter_map(|k| k.strip_prefix(prefix)?.strip_prefix('.'))
            .filter_map(|rest| rest.split_once('.').map(|(name, _)| name.to_owned()))
            .collect();
        out.dedup();
        out
    }

    /// Fails on the first key nobody asked for.
    fn finish(self) -> Result<(), ConfigError> {
        match self.values.into_keys().next() {
            Some(k) => Err(err(&k, "unknown setting")),
            None => Ok(()),
        }
    }
}

/// `90`, `90s`, `15m`, `2h`, `1d`, as strongSwan reads durations.
pub fn parse_duration(v: &str) -> Result<u32, String> {
    let (num, mult) = match v.char_indices().last() {
        Some((i, 's')) => (&v[..i], 1),
        Some((i, 'm')) => (&v[..i], 60),
        Some((i, 'h')) => (&v[..i], 3600),
        Some((i, 'd')) => (&v[..i], 86400),
        _ => (v, 1),
    };
    num.trim()
        .parse::<u32>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| format!("'{v}' is not a duration (like 90s, 15m, 2h)"))
}

fn parse_bool(v: &str) -> Result<bool, String> {
    match v {
        "yes" | "true" | "1" | "enabled" => Ok(true),
        "no" | "false" | "0" | "disabled" => Ok(false),
        _ => Err(format!("'{v}' is not yes or no")),
    }
}

fn parse_u32(v: &str) -> Result<u32, String> {
    v.parse().map_err(|_| format!("'{v}' is not a number"))
}

fn parse_u16(v: &str) -> Result<u16, String> {
    v.parse()
        .map_err(|_| format!("'{v}' is not a number up to 65535"))
}

fn parse_list(v: &str) -> Vec<IdentityPattern> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| IdentityPattern(s.to_owned()))
        .collect()
}

/// A group ID: a key ID by default, or `fqdn:`, `email:`, an IP address.
pub fn parse_group_id(v: &str) -> Result<GroupId, String> {
    let (id_type, data) = if let Some(rest) = v.strip_prefix("fqdn:") {
        (IdType::ID_FQDN, rest.as_bytes().to_vec())
    } else if let Some(rest) = v.strip_prefix("email:") {
        (IdType::ID_RFC822_ADDR, rest.as_bytes().to_vec())
    } else if let Some(rest) = v.strip_prefix("keyid:") {
        (IdType::ID_KEY_ID, rest.as_bytes().to_vec())
    } else if let Ok(ip) = v.parse::<IpAddr>() {
        match ip {
            IpAddr::V4(a) => (IdType::ID_IPV4_ADDR, a.octets().to_vec()),
            IpAddr::V6(a) => (IdType::ID_IPV6_ADDR, a.octets().to_vec()),
        }
    } else {
        (IdType::ID_KEY_ID, v.as_bytes().to_vec())
    };
    if data.is_empty() {
        return Err("empty group ID".into());
    }
    Ok(GroupId { id_type, data })
}

/// The transforms a proposal string names, by strongSwan's keywords.
#[derive(Debug, Default, PartialEq, Eq)]
struct Algorithms {
    encr: Option<(EncrId, Option<u16>)>,
    integ: Option<IntegId>,
    kwa: Option<KwaId>,
}

fn encr_keyword(k: &str) -> Option<(EncrId, Option<u16>)> {
    fn aes(rest: &str) -> Option<(u16, &str)> {
        [128u16, 192, 256]
            .into_iter()
            .find_map(|bits| Some((bits, rest.strip_prefix(bits.to_string().as_str())?)))
    }
    if let Some(rest) = k.strip_prefix("aes") {
        let (bits, mode) = aes(rest)?;
        let id = match mode {
            "" | "cbc" => EncrId::ENCR_AES_CBC,
            "ctr" => EncrId::ENCR_AES_CTR,
            "gcm8" => EncrId::ENCR_AES_GCM_8,
            "gcm12" => EncrId::ENCR_AES_GCM_12,
            "gcm16" | "gcm" => EncrId::ENCR_AES_GCM_16,
            "ccm8" => EncrId::ENCR_AES_CCM_8,
            "ccm12" => EncrId::ENCR_AES_CCM_12,
            "ccm16" | "ccm" => EncrId::ENCR_AES_CCM_16,
            _ => return None,
        };
        return Some((id, Some(bits)));
    }
    if let Some(rest) = k.strip_prefix("null_aes") {
        let (bits, mode) = aes(rest)?;
        return (mode == "gmac").then_some((EncrId::ENCR_NULL_AUTH_AES_GMAC, Some(bits)));
    }
    match k {
        "chacha20poly1305" => Some((EncrId::ENCR_CHACHA20_POLY1305, None)),
        "null" => Some((EncrId::ENCR_NULL, None)),
        _ => None,
    }
}

fn integ_keyword(k: &str) -> Option<IntegId> {
    Some(match k {
        "sha1" | "sha" => IntegId::AUTH_HMAC_SHA1_96,
        "sha256" | "sha2_256" => IntegId::AUTH_HMAC_SHA2_256_128,
        "sha384" | "sha2_384" => IntegId::AUTH_HMAC_SHA2_384_192,
        "sha512" | "sha2_512" => IntegId::AUTH_HMAC_SHA2_512_256,
        "aesxcbc" => IntegId::AUTH_AES_XCBC_96,
        "aes128gmac" => IntegId::AUTH_AES_128_GMAC,
        "aes192gmac" => IntegId::AUTH_AES_192_GMAC,
        "aes256gmac" => IntegId::AUTH_AES_256_GMAC,
        _ => return None,
    })
}

/// Key Wrap Algorithm keywords, as the charon patch adds them.
pub fn kwa_keyword(k: &str) -> Option<KwaId> {
    Some(match k {
        "kwaes128" => KwaId::KW_5649_128,
        "kwaes192" => KwaId::KW_5649_192,
        "kwaes256" => KwaId::KW_5649_256,
        "kwarx" => KwaId::KW_ARX,
        _ => return None,
    })
}

fn parse_algorithms(v: &str) -> Result<Algorithms, String> {
    let mut a = Algorithms::default();
    for k in v.split('-').map(str::trim) {
        // `ah` proposals name GMAC as an integrity algorithm, ESP as a
        // cipher: try integrity names first only where no cipher matches.
        if let Some(e) = encr_keyword(k) {
            if a.encr.replace(e).is_some() {
                return Err(format!("two ciphers in '{v}'"));
            }
        } else if let Some(i) = integ_keyword(k) {
            if a.integ.replace(i).is_some() {
                return Err(format!("two integrity algorithms in '{v}'"));
            }
        } else if let Some(w) = kwa_keyword(k) {
            if a.kwa.replace(w).is_some() {
                return Err(format!("two key wrap algorithms in '{v}'"));
            }
        } else {
            return Err(format!("unknown algorithm '{k}'"));
        }
    }
    Ok(a)
}

/// A traffic selector: `any`, an address, a subnet `10.1.0.0/16` or a range
/// `10.0.0.1-10.0.0.9`, optionally followed by `[proto/port]`.
pub fn parse_ts(v: &str) -> Result<TrafficSelector, String> {
    let (addr, extra) = match v.split_once('[') {
        Some((a, rest)) => (a.trim(), Some(rest.strip_suffix(']').ok_or("missing ']'")?)),
        None => (v.trim(), None),
    };
    let addrs = parse_range(addr)?;
    let mut ts = TrafficSelector {
        ip_protocol: 0,
        start_port: 0,
        end_port: u16::MAX,
        addrs,
    };
    if let Some(extra) = extra {
        let (proto, port) = extra.split_once('/').unwrap_or((extra, ""));
        ts.ip_protocol = match proto.trim() {
            "" | "any" | "%any" => 0,
            "udp" => 17,
            "tcp" => 6,
            "icmp" => 1,
            "ipv6-icmp" => 58,
            "ospf" => 89,
            "pim" => 103,
            n => n.parse().map_err(|_| format!("unknown protocol '{n}'"))?,
        };
        let port = port.trim();
        if !port.is_empty() && port != "any" && port != "%any" {
            let (lo, hi) = port.split_once('-').unwrap_or((port, port));
            ts.start_port = parse_u16(lo.trim())?;
            ts.end_port = parse_u16(hi.trim())?;
        }
    }
    Ok(ts)
}

fn parse_range(v: &str) -> Result<AddrRange, String> {
    if v == "any" || v == "%any" || v == "0.0.0.0/0" {
        return Ok(AddrRange::V4(Ipv4Addr::UNSPECIFIED, Ipv4Addr::BROADCAST));
    }
    if v == "any6" || v == "%any6" || v == "::/0" {
        return Ok(AddrRange::V6(
            Ipv6Addr::UNSPECIFIED,
            Ipv6Addr::from([0xff; 16]),
        ));
    }
    let bad = || format!("'{v}' is not an address, subnet or range");
    if let Some((a, b)) = v.split_once('-') {
        return match (a.trim().parse::<IpAddr>(), b.trim().parse::<IpAddr>()) {
            (Ok(IpAddr::V4(a)), Ok(IpAddr::V4(b))) => Ok(AddrRange::V4(a, b)),
            (Ok(IpAddr::V6(a)), Ok(IpAddr::V6(b))) => Ok(AddrRange::V6(a, b)),
            _ => Err(bad()),
        };
    }
    let (addr, len) = match v.split_once('/') {
        Some((a, l)) => (a, Some(l.parse::<u8>().map_err(|_| bad())?)),
        None => (v, None),
    };
    match addr.parse::<IpAddr>().map_err(|_| bad())? {
        IpAddr::V4(a) => {
            let len = u32::from(len.unwrap_or(32));
            if len > 32 {
                return Err(bad());
            }
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            let base = u32::from(a) & mask;
            Ok(AddrRange::V4(base.into(), (base | !mask).into()))
        }
        IpAddr::V6(a) => {
            let len = u32::from(len.unwrap_or(128));
            if len > 128 {
                return Err(bad());
            }
            let mask = if len == 0 {
                0
            } else {
                u128::MAX << (128 - len)
            };
            let base = u128::from(a) & mask;
            Ok(AddrRange::V6(base.into(), (base | !mask).into()))
        }
    }
}

fn parse_socket(v: &str) -> Result<SocketAddr, String> {
    v.parse()
        .map_err(|_| format!("'{v}' is not address:port (IPv6 as [addr]:port)"))
}

/// Reads a group from its settings. `read_file` loads the signing key named
/// by `rekey.key` (a PEM or DER private key); it is a parameter so the
/// plugin can resolve paths and report I/O errors its own way.
pub fn group_from_settings<'a>(
    pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    read_file: &dyn Fn(&str) -> Result<Vec<u8>, String>,
) -> Result<GroupConfig, ConfigError> {
    let mut s = Settings::new(pairs)?;
    let id = s.require("id", parse_group_id)?;
    let members = s.require("members", |v| Ok(parse_list(v)))?;
    let senders = s.take_or("senders", Vec::new(), |v| Ok(parse_list(v)))?;
    let member_limit = s.take_or("member_limit", 10_000, parse_u32)?;
    let max_sender_ids = s.take_or("max_sender_ids", 4, parse_u32)?;
    let mode = s.take_or("mode", Mode::Tunnel, |v| match v {
        "tunnel" => Ok(Mode::Tunnel),
        "transport" => Ok(Mode::Transport),
        _ => Err(format!("'{v}' is not tunnel or transport")),
    })?;
    let degree = s.take_or("lkh_degree", 4, parse_u16)?;
    let key_management = s.take_or(
        "key_management",
        KeyManagement::Lkh { degree },
        |v| match v {
            "lkh" => Ok(KeyManagement::Lkh { degree }),
            "flat" => Ok(KeyManagement::Flat),
            _ => Err(format!("'{v}' is not lkh or flat")),
        },
    )?;
    let inband_members = s.take("inband_members").map(|v| parse_list(&v));
    let delivery = s.take_or("delivery", Delivery::Multicast, |v| match v {
        "multicast" => Ok(Delivery::Multicast),
        "inband" => Ok(Delivery::Inband),
        "mixed" => Ok(Delivery::Mixed {
            inband: inband_members.clone().unwrap_or_default(),
        }),
        _ => Err(format!("'{v}' is not multicast, inband or mixed")),
    })?;
    if inband_members.is_some() && !matches!(delivery, Delivery::Mixed { .. }) {
        return Err(err("inband_members", "only used with delivery = mixed"));
    }
    let dur16 = |v: &str| {
        parse_duration(v).and_then(|d| u16::try_from(d).map_err(|_| "longer than 65535s".into()))
    };
    let group_wide = GroupWide {
        atd_secs: s.take_or("atd", 0, dur16)?,
        dtd_secs: s.take_or("dtd", 0, dur16)?,
        sender_id_bits: s.take_or("sender_id_bits", None, |v| parse_u16(v).map(Some))?,
    };
    let rekey_margin_secs = s.take_or("rekey_margin", 60, parse_duration)?;

    let rekey = if s.values.keys().any(|k| k.starts_with("rekey.")) {
        let dst = s.require("rekey.address", parse_socket)?;
        let src = s.take_or("rekey.source", None, |v| parse_socket(v).map(Some))?;
        let algs = s.take_or(
            "rekey.proposal",
            Algorithms {
                encr: Some((EncrId::ENCR_AES_GCM_16, Some(256))),
                integ: None,
                kwa: Some(KwaId::KW_5649_256),
            },
            parse_algorithms,
        )?;
        let encr = algs
            .encr
            .ok_or_else(|| err("rekey.proposal", "names no cipher"))?;
        let kwa = algs.kwa.unwrap_or(KwaId::KW_5649_256);
        let auth_kind = s.take_or("rekey.auth", "signature".to_owned(), |v| Ok(v.to_owned()))?;
        let auth = match auth_kind.as_str() {
            "implicit" => RekeyAuth::Implicit,
            "signature" => {
                let path = s.require("rekey.key", |v| Ok(v.to_owned()))?;
                let bytes = read_file(&path).map_err(|e| err("rekey.key", e))?;
                let key = SigningKey::from_pem(&bytes)
                    .or_else(|_| SigningKey::from_der(&bytes))
                    .map_err(|e| err("rekey.key", format!("{path}: {e}")))?;
                RekeyAuth::Signature(key)
            }
            v => {
                return Err(err(
                    "rekey.auth",
                    format!("'{v}' is not signature or implicit"),
                ));
            }
        };
        Some(RekeyPolicy {
            dst,
            src,
            encr,
            integ: algs.integ.unwrap_or(IntegId::NONE),
            kwa,
            auth,
            lifetime_secs: s.take_or("rekey.lifetime", 86_400, parse_duration)?,
        })
    } else {
        None
    };

    let mut teks = Vec::new();
    let tek_names = s.subsections("tek");
    for name in &tek_names {
        let key = |k: &str| format!("tek.{name}.{k}");
        let protocol = s.take_or(&key("protocol"), TekProtocol::Esp, |v| match v {
            "esp" => Ok(TekProtocol::Esp),
            "ah" => Ok(TekProtocol::Ah),
            _ => Err(format!("'{v}' is not esp or ah")),
        })?;
        let default = match protocol {
            TekProtocol::Esp => "aes256gcm16",
            TekProtocol::Ah => "sha256",
        };
        let algs = s.take_or(
            &key("proposal"),
            parse_algorithms(default).expect("valid default"),
            parse_algorithms,
        )?;
        let (encr, integ) = match protocol {
            TekProtocol::Esp => (algs.encr, algs.integ.unwrap_or(IntegId::NONE)),
            // AH's GMAC is spelled like ESP's cipher; read it as integrity.
            TekProtocol::Ah => match (algs.encr, algs.integ) {
                (None, Some(i)) => (None, i),
                (Some((EncrId::ENCR_AES_GCM_16, Some(bits))), None) => {
                    let i = match bits {
                        128 => IntegId::AUTH_AES_128_GMAC,
                        192 => IntegId::AUTH_AES_192_GMAC,
                        _ => IntegId::AUTH_AES_256_GMAC,
                    };
                    (None, i)
                }
                _ => return Err(err(&key("proposal"), "AH takes one integrity algorithm")),
            },
        };
        if algs.kwa.is_some() {
            return Err(err(
                &key("proposal"),
                "key wrap algorithms belong to the rekey SA",
            ));
        }
        teks.push(TekPolicy {
            protocol,
            encr,
            integ,
            src: s.take_or(&key("source"), parse_ts("any").expect("valid"), parse_ts)?,
            dst: s.require(&key("destination"), parse_ts)?,
            lifetime_secs: s.take_or(&key("lifetime"), 3600, parse_duration)?,
            single_sender: s.take_or(&key("single_sender"), false, parse_bool)?,
            per_sender: false,
        });
        // Counter-mode SAs with senders are per sender unless said
        // otherwise (then refused below, or single_sender).
        let t = teks.last_mut().expect("pushed");
        let auto = t.is_counter_mode() && !senders.is_empty() && !t.single_sender;
        t.per_sender = s.take_or(&key("per_sender"), auto, parse_bool)?;
    }
    // A destination without a protocol family of the source's "any".
    for t in &mut teks {
        if t.src.is_ipv4() != t.dst.is_ipv4() && t.src == parse_ts("any").expect("valid") {
            t.src = parse_ts("any6").expect("valid");
        }
    }
    s.finish()?;
    let cfg = GroupConfig {
        id,
        teks,
        rekey,
        group_wide,
        delivery,
        key_management,
        authorization: Authorization { members, senders },
        member_limit,
        max_sender_ids,
        mode,
        rekey_margin_secs,
    };
    cfg.validate()
        .map_err(|e| match (e.tek, e.field.strip_prefix("tek.")) {
            (Some(i), Some(rest)) => err(&format!("tek.{}.{rest}", tek_names[i]), e.reason),
            _ => err(e.field, e.reason),
        })?;
    Ok(cfg)
}

/// What a GM's host does with the group's traffic when its keys expire
/// and nothing replaced them (the GCKS is gone): the `fail_mode` setting.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FailMode {
    /// Drop it: the last policies' selectors stay blocked until the GM
    /// holds keys again or leaves (the default: no cleartext by surprise).
    #[default]
    Closed,
    /// Let it pass in the clear.
    Open,
}

/// Reads a GM's membership from its settings.
pub fn membership_from_settings<'a>(
    pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<MembershipConfig, ConfigError> {
    membership_settings(pairs).map(|(cfg, _)| cfg)
}

/// Reads a GM's membership and its host's fail mode from its settings.
pub fn membership_settings<'a>(
    pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<(MembershipConfig, FailMode), ConfigError> {
    let mut s = Settings::new(pairs)?;
    let fail_mode = match s.take("fail_mode").as_deref() {
        None | Some("closed") => FailMode::Closed,
        Some("open") => FailMode::Open,
        Some(v) => return Err(err("fail_mode", format!("'{v}' is not closed or open"))),
    };
    let group = s.require("id", parse_group_id)?;
    let role = s.take_or("role", "receiver".to_owned(), |v| Ok(v.to_owned()))?;
    let role = match role.as_str() {
        "receiver" => Role {
            receive: true,
            send: false,
        },
        "sender" => Role {
            receive: false,
            send: true,
        },
        "both" => Role {
            receive: true,
            send: true,
        },
        v => {
            return Err(err(
                "role",
                format!("'{v}' is not receiver, sender or both"),
            ));
        }
    };
    let sender_ids = s.take_or("sender_ids", 1, parse_u32)?;
    if sender_ids == 0 {
        return Err(err("sender_ids", "must be at least 1"));
    }
    // SAg: what this GM accepts, one proposal per protocol, all in one set.
    let mut proposals = Vec::new();
    for (key, protocol) in [
        ("accept.rekey", ProtocolId::GIKE_UPDATE),
        ("accept.esp", ProtocolId::ESP),
        ("accept.ah", ProtocolId::AH),
    ] {
        let Some(v) = s.take(key) else { continue };
        let mut transforms = Vec::new();
        for alt in v.split(',').map(str::trim) {
            let a = parse_algorithms(alt).map_err(|r| err(key, r))?;
            if let Some((id, bits)) = a.encr {
                transforms.push(Transform::encr(id, bits));
            }
            if let Some(i) = a.integ {
                transforms.push(Transform::integ(i));
            }
            if let Some(w) = a.kwa {
                transforms.push(Transform::kwa(w));
            }
        }
        transforms.dedup();
        if protocol != ProtocolId::GIKE_UPDATE {
            for sn in [crate::iana::SnId::SEQ32, crate::iana::SnId::UNSPECIFIED32] {
                transforms.push(Transform::sn(sn));
            }
        }
        proposals.push(Proposal {
            num: 1,
            protocol,
            spi: Vec::new(),
            transforms,
        });
    }
    // M089: an SAg says which key wrap algorithms the GM supports. Unless
    // accept.rekey names some, that is all of them, in a Rekey SA proposal
    // of its own if the SAg restricts only Data-Security SAs.
    if !proposals.is_empty() {
        if !proposals
            .iter()
            .any(|p| p.protocol == ProtocolId::GIKE_UPDATE)
        {
            proposals.insert(
                0,
                Proposal {
                    num: 1,
                    protocol: ProtocolId::GIKE_UPDATE,
                    spi: Vec::new(),
                    transforms: Vec::new(),
                },
            );
        }
        for p in &mut proposals {
            if p.protocol == ProtocolId::GIKE_UPDATE
                && !p.transforms.iter().any(|t| t.ty == TransformType::KWA)
            {
                p.transforms
                    .extend(KeyWrapAlg::ALL.iter().map(|k| Transform::kwa(k.id())));
            }
        }
    }
    s.finish()?;
    let cfg = MembershipConfig {
        group,
        role,
        sender_ids,
        offer: (!proposals.is_empty()).then_some(SaPayload { proposals }),
    };
    Ok((cfg, fail_mode))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_files(_: &str) -> Result<Vec<u8>, String> {
        Err("no files here".into())
    }

    fn base() -> Vec<(&'static str, &'static str)> {
        vec![
            ("id", "market-data"),
            ("members", "*@example.com"),
            ("senders", "feed@example.com"),
            ("sender_id_bits", "8"),
            ("atd", "2s"),
            ("dtd", "5"),
            ("rekey.address", "239.1.1.2:848"),
            ("rekey.proposal", "aes256gcm16-kwaes256"),
            ("rekey.auth", "implicit"),
            ("rekey.lifetime", "2h"),
            ("tek.feed.destination", "239.1.1.1[udp/5000]"),
            ("tek.feed.source", "10.1.0.0/16"),
        ]
    }

    #[test]
    fn reads_a_complete_group() {
        let cfg = group_from_settings(base(), &no_files).unwrap();
        assert_eq!(cfg.id.data, b"market-data");
        assert_eq!(cfg.group_wide.dtd_secs, 5);
        let r = cfg.rekey.as_ref().unwrap();
        assert_eq!(r.lifetime_secs, 7200);
        assert_eq!(r.kwa, KwaId::KW_5649_256);
        let t = &cfg.teks[0];
        assert_eq!(t.dst.single_port(), Some(5000));
        assert_eq!(
            t.src.addrs,
            AddrRange::V4("10.1.0.0".parse().unwrap(), "10.1.255.255".parse().unwrap())
        );
        assert_eq!(t.encr, Some((EncrId::ENCR_AES_GCM_16, Some(256))));
    }

    #[test]
    fn errors_name_the_key() {
        let mut s = base();
        s.push(("rekey.colour", "blue"));
        assert_eq!(
            group_from_settings(s, &no_files).unwrap_err().key,
            "rekey.colour"
        );
        let mut s = base();
        s[7] = ("rekey.proposal", "aes256gcm16-kwaes999");
        let e = group_from_settings(s, &no_files).unwrap_err();
        assert_eq!(e.key, "rekey.proposal");
        assert!(e.reason.contains("kwaes999"), "{e}");
        let mut s = base();
        s.retain(|(k, _)| *k != "sender_id_bits");
        let e = group_from_settings(s, &no_files).unwrap_err();
        assert_eq!(e.key, "sender_id_bits", "{e}");
        let mut s = base();
        s[8] = ("rekey.auth", "signature");
        s.push(("rekey.key", "/etc/none.pem"));
        let e = group_from_settings(s, &no_files).unwrap_err();
        assert_eq!(e.key, "rekey.key");
    }

    /// Issue 15, item 3: a counter-mode TEK with senders is per sender
    /// unless said otherwise; said otherwise, several senders would share
    /// it, and that is refused, naming the key and why.
    #[test]
    fn senders_never_share_a_counter_mode_sa() {
        // The default proposal is AES-GCM, and the group has senders.
        let cfg = group_from_settings(base(), &no_files).unwrap();
        assert!(cfg.teks[0].per_sender);
        assert_eq!(cfg.teks[0].sn(), crate::iana::SnId::SEQ32);
        let mut s = base();
        s.push(("tek.feed.per_sender", "no"));
        let e = group_from_settings(s, &no_files).unwrap_err();
        assert_eq!(e.key, "tek.feed.per_sender", "{e}");
        assert!(e.reason.contains("counter-mode"), "{e}");
        // One sender, or a cipher that is no counter mode: allowed.
        let mut s = base();
        s.push(("tek.feed.single_sender", "yes"));
        let cfg = group_from_settings(s, &no_files).unwrap();
        assert!(!cfg.teks[0].per_sender && cfg.teks[0].single_sender);
        let mut s = base();
        s.push(("tek.feed.proposal", "aes256-sha256"));
        let cfg = group_from_settings(s, &no_files).unwrap();
        assert!(!cfg.teks[0].per_sender);
        // Both at once contradict each other.
        let mut s = base();
        s.push(("tek.feed.single_sender", "yes"));
        s.push(("tek.feed.per_sender", "yes"));
        let e = group_from_settings(s, &no_files).unwrap_err();
        assert_eq!(e.key, "tek.feed.per_sender", "{e}");
        // Without senders nobody shares it.
        let mut s = base();
        s.retain(|(k, _)| *k != "senders");
        let cfg = group_from_settings(s, &no_files).unwrap();
        assert!(!cfg.teks[0].per_sender);
    }

    #[test]
    fn invalid_combinations_are_refused_with_a_reason() {
        // §4.4.2: never ESP and AH for the same traffic selectors.
        let mut s = base();
        s.push(("tek.auth.protocol", "ah"));
        s.push(("tek.auth.source", "10.1.0.0/16"));
        s.push(("tek.auth.destination", "239.1.1.1[udp/5000]"));
        let e = group_from_settings(s, &no_files).unwrap_err();
        assert!(e.reason.contains("both ESP and AH"), "{e}");
        // Inband delivery takes no Rekey SA; LKH needs multicast.
        let mut s = base();
        s.push(("delivery", "inband"));
        assert_eq!(group_from_settings(s, &no_files).unwrap_err().key, "rekey");
        // Implicit-IV ciphers are never allowed (§2.7).
        let mut s = base();
        s.push(("tek.feed.proposal", "aes128ctr-sha256"));
        s[11] = ("tek.feed.source", "any");
        assert!(
            group_from_settings(s, &no_files).is_ok(),
            "CTR itself is fine"
        );
        // A multicast Rekey SA destination must be multicast (M046).
        let mut s = base();
        s[6] = ("rekey.address", "10.0.0.1:848");
        let e = group_from_settings(s, &no_files).unwrap_err();
        assert_eq!(e.key, "rekey.address", "{e}");
        // TEK errors name the TEK's own section.
        let mut s = base();
        s.push(("tek.feed.lifetime", "0"));
        let e = group_from_settings(s, &no_files).unwrap_err();
        assert_eq!(e.key, "tek.feed.lifetime", "{e}");
    }

    #[test]
    fn reads_a_membership() {
        let m = membership_from_settings([
            ("id", "market-data"),
            ("role", "both"),
            ("sender_ids", "2"),
            ("accept.esp", "aes256gcm16, aes128gcm16"),
            ("accept.rekey", "aes256gcm16-kwaes256"),
        ])
        .unwrap();
        assert!(m.role.send && m.role.receive);
        let offer = m.offer.unwrap();
        assert_eq!(offer.proposals.len(), 2);
        assert!(membership_from_settings([("id", "x"), ("role", "boss")]).is_err());
        let mode = |v| membership_settings([("id", "x"), ("fail_mode", v)]).map(|(_, m)| m);
        assert_eq!(mode("open").unwrap(), FailMode::Open);
        assert_eq!(mode("closed").unwrap(), FailMode::Closed);
        let e = mode("ajar").unwrap_err().to_string();
        assert!(e.starts_with("fail_mode: ") && e.contains("'ajar'"), "{e}");
        let (_, m) = membership_settings([("id", "x")]).unwrap();
        assert_eq!(m, FailMode::Closed);
    }

    #[test]
    fn durations_and_selectors() {
        assert_eq!(parse_duration("2h"), Ok(7200));
        assert!(parse_duration("2w").is_err());
        let ts = parse_ts("ff0e::1[udp/5000-5010]").unwrap();
        assert_eq!(
            (ts.start_port, ts.end_port, ts.ip_protocol),
            (5000, 5010, 17)
        );
        assert!(parse_ts("10.0.0.0/33").is_err());
    }
}
