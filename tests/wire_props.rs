//! Property tests of the G-IKEv2 wire format (`gikev2::wire`).
//!
//! * [`strat`]: strategies generating VALID values of every payload and
//!   substructure, following the RFC 9838 §4 rules the decoders enforce
//!   and, for whole messages, the presence rules of §2.3–§2.4 and §5.
//! * Round trips: `from_bytes(to_bytes(x)) == Ok(x)`, and re-encoding the
//!   decoded value gives the same octets.
//! * Hostile input: random octets and mutated valid encodings go through
//!   every decoder. Each must return `Ok` or `Err`, never panic, and any
//!   value it returns must survive its own re-encoding unchanged.
//! * `check_exchange`: generated valid messages pass; targeted violations
//!   of the §5 tables (and the message layouts of §2) are rejected.
//! * Defects found while writing these tests, as `#[ignore]`d
//!   reproductions (see the last section).

use std::fmt::Debug;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::Range;

use gikev2::iana::{
    AuthMethod, EncrId, ExchangeType, FLAG_INITIATOR, FLAG_RESPONSE, FLAG_VERSION, IPPROTO_UDP,
    IdType, IntegId, KwaId, NotifyType, PayloadType, ProtocolId, SnId, TransformType,
};
use gikev2::wire::{
    AddrRange, Auth, Codec, DecodeError, Delete, Direction, Encrypted, GroupId, GroupKeyBag,
    GroupPolicy, Gsa, GsaAttr, GsaPolicy, GwPolicy, IkeHeader, Kd, KeyBag, MemberKeyBag, Message,
    Notify, Payload, Proposal, RawAttr, Reader, RekeySpi, SaPayload, SaRef, TrafficSelector,
    Transform, TransformAttr, WrappedKey, chain_spans, check_exchange, encode_chain, read_chain,
};
use proptest::collection::{btree_set, vec};
use proptest::prelude::*;
use proptest::sample::{Index, select};
use proptest::test_runner::{FileFailurePersistence, TestCaseError};

// ---------------------------------------------------------------------------
// Strategies for valid values
// ---------------------------------------------------------------------------

mod strat {
    use super::*;

    /// Which exchange a value is meant for; selects the §5 rules that apply.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Use {
        /// Anything the payload decoders accept on their own.
        Wire,
        /// Registration response with a Rekey SA (Table 2).
        RegMulticast,
        /// Registration response without one (Table 3).
        RegInband,
        /// GSA_REKEY (Table 2).
        Rekey,
        /// GSA_INBAND_REKEY (Table 3).
        InbandRekey,
    }

    impl Use {
        /// GSA_KEY_LIFETIME: "S" in Table 2, "[S]" in Table 3.
        fn lifetime(self) -> P {
            match self {
                Use::RegMulticast | Use::Rekey => P::Always,
                _ => P::Maybe,
            }
        }

        /// GSA_NEXT_SPI and GSA_INITIAL_MESSAGE_ID: "-" in Table 3.
        fn multicast_attrs(self) -> bool {
            matches!(self, Use::Wire | Use::RegMulticast | Use::Rekey)
        }
    }

    /// Presence of an optional item.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum P {
        Never,
        Maybe,
        Always,
    }

    /// The GCAUTH transform of a Rekey SA policy (§4.4.2.1.1).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Gc {
        /// Rekey messages: GCAUTH only appears at registration.
        Absent,
        /// Wire level: absent, Implicit or Digital Signature.
        Any,
        Implicit,
        Signature,
    }

    pub fn opt<S>(p: P, s: S) -> BoxedStrategy<Option<S::Value>>
    where
        S: Strategy + 'static,
        S::Value: Clone + Debug,
    {
        match p {
            P::Never => Just(None).boxed(),
            P::Maybe => proptest::option::of(s).boxed(),
            P::Always => s.prop_map(Some).boxed(),
        }
    }

    /// `Some(b)` forces the flag, `None` draws it.
    pub fn flag(f: Option<bool>) -> BoxedStrategy<bool> {
        match f {
            Some(b) => Just(b).boxed(),
            None => any::<bool>().boxed(),
        }
    }

    pub fn bytes(len: Range<usize>) -> BoxedStrategy<Vec<u8>> {
        vec(any::<u8>(), len).boxed()
    }

    /// A short DER SEQUENCE: the shape of an AlgorithmIdentifier or a
    /// SubjectPublicKeyInfo; the wire layer does not parse it.
    pub fn der_seq() -> BoxedStrategy<Vec<u8>> {
        bytes(1..40)
            .prop_map(|b| {
                let mut v = vec![0x30, b.len() as u8];
                v.extend(b);
                v
            })
            .boxed()
    }

    // --- attributes -------------------------------------------------------

    /// An attribute whose 15-bit type is neither Reserved (0) nor one of
    /// `taken`, the types its registry gives a meaning.
    pub fn unknown_attr(taken: &'static [u16]) -> BoxedStrategy<RawAttr> {
        let ty =
            (1u16..0x8000).prop_filter("registered attribute type", move |t| !taken.contains(t));
        prop_oneof![
            (ty.clone(), any::<u16>()).prop_map(|(t, v)| RawAttr::tv(t, v)),
            (ty, bytes(0..24)).prop_map(|(t, v)| RawAttr::tlv(t, v)),
        ]
        .boxed()
    }

    /// Mostly none: unknown attributes are legal but rare.
    pub fn few_unknown_attrs(taken: &'static [u16]) -> BoxedStrategy<Vec<RawAttr>> {
        prop_oneof![3 => Just(Vec::new()), 1 => vec(unknown_attr(taken), 1..3)].boxed()
    }

    /// Any attribute with a 15-bit type (the AF bit is the format).
    pub fn raw_attr() -> BoxedStrategy<RawAttr> {
        prop_oneof![
            (0u16..0x8000, any::<u16>()).prop_map(|(t, v)| RawAttr::tv(t, v)),
            (0u16..0x8000, bytes(0..64)).prop_map(|(t, v)| RawAttr::tlv(t, v)),
        ]
        .boxed()
    }

    // --- traffic selectors (RFC 7296 §3.13.1) ------------------------------

    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Family {
        V4,
        V6,
    }

    pub fn family() -> impl Strategy<Value = Family> {
        prop_oneof![Just(Family::V4), Just(Family::V6)]
    }

    fn ordered<T: Ord>(a: T, b: T) -> (T, T) {
        if a <= b { (a, b) } else { (b, a) }
    }

    /// A single address, an ordered range, or everything.
    pub fn addr_range(f: Family) -> BoxedStrategy<AddrRange> {
        match f {
            Family::V4 => prop_oneof![
                any::<[u8; 4]>().prop_map(|a| AddrRange::V4(a.into(), a.into())),
                (any::<[u8; 4]>(), any::<[u8; 4]>()).prop_map(|(a, b)| {
                    let (a, b) = ordered(Ipv4Addr::from(a), Ipv4Addr::from(b));
                    AddrRange::V4(a, b)
                }),
                Just(AddrRange::V4(Ipv4Addr::UNSPECIFIED, Ipv4Addr::BROADCAST)),
            ]
            .boxed(),
            Family::V6 => prop_oneof![
                any::<[u8; 16]>().prop_map(|a| AddrRange::V6(a.into(), a.into())),
                (any::<[u8; 16]>(), any::<[u8; 16]>()).prop_map(|(a, b)| {
                    let (a, b) = ordered(Ipv6Addr::from(a), Ipv6Addr::from(b));
                    AddrRange::V6(a, b)
                }),
                Just(AddrRange::V6(
                    Ipv6Addr::UNSPECIFIED,
                    Ipv6Addr::from([0xff; 16])
                )),
            ]
            .boxed(),
        }
    }

    /// Any port, one port, or an ordered range.
    pub fn ports() -> BoxedStrategy<(u16, u16)> {
        prop_oneof![
            Just((0, u16::MAX)),
            any::<u16>().prop_map(|p| (p, p)),
            (any::<u16>(), any::<u16>()).prop_map(|(a, b)| ordered(a, b)),
        ]
        .boxed()
    }

    /// Zero is "any protocol".
    pub fn ip_protocol() -> BoxedStrategy<u8> {
        prop_oneof![Just(0), Just(IPPROTO_UDP), Just(6), any::<u8>()].boxed()
    }

    pub fn ts(f: Family) -> BoxedStrategy<TrafficSelector> {
        (ip_protocol(), ports(), addr_range(f))
            .prop_map(
                |(ip_protocol, (start_port, end_port), addrs)| TrafficSelector {
                    ip_protocol,
                    start_port,
                    end_port,
                    addrs,
                },
            )
            .boxed()
    }

    pub fn any_ts() -> BoxedStrategy<TrafficSelector> {
        family().prop_flat_map(ts).boxed()
    }

    /// 224.0.0.0/4 or ff00::/8.
    pub fn multicast_addr(f: Family) -> BoxedStrategy<IpAddr> {
        match f {
            Family::V4 => (224u8..=239, any::<[u8; 3]>())
                .prop_map(|(a, [b, c, d])| IpAddr::from([a, b, c, d]))
                .boxed(),
            Family::V6 => any::<[u8; 15]>()
                .prop_map(|rest| {
                    let mut a = [0xff; 16];
                    a[1..].copy_from_slice(&rest);
                    IpAddr::from(a)
                })
                .boxed(),
        }
    }

    /// §4.4.2: the Rekey SA's destination is one multicast address, UDP
    /// and one port.
    pub fn rekey_dst(f: Family) -> BoxedStrategy<TrafficSelector> {
        (multicast_addr(f), any::<u16>())
            .prop_map(|(a, port)| TrafficSelector::host(a, IPPROTO_UDP, port))
            .boxed()
    }

    /// §4.4.2: the Rekey SA's source SHOULD be one address, UDP and one
    /// port, and MAY use a wildcard address or port.
    pub fn rekey_src(f: Family) -> BoxedStrategy<TrafficSelector> {
        prop_oneof![
            2 => (addr_range(f), any::<u16>()).prop_map(|(addrs, p)| TrafficSelector {
                ip_protocol: IPPROTO_UDP,
                start_port: p,
                end_port: p,
                addrs,
            }),
            1 => ts(f),
        ]
        .boxed()
    }

    /// Data-Security SA destinations are usually one multicast address.
    pub fn tek_dst(f: Family) -> BoxedStrategy<TrafficSelector> {
        prop_oneof![
            (multicast_addr(f), ip_protocol(), ports()).prop_map(|(a, proto, (s, e))| {
                TrafficSelector {
                    start_port: s,
                    end_port: e,
                    ..TrafficSelector::host(a, proto, 0)
                }
            }),
            ts(f),
        ]
        .boxed()
    }

    // --- transforms (RFC 7296 §3.3.2, RFC 9838 §4.4.2.1) -------------------

    /// Every encryption transform G-IKEv2 may use: implicit-IV ones are
    /// banned (§2.7). Unknown (private use) IDs count as non-AEAD.
    pub fn encr_id() -> BoxedStrategy<EncrId> {
        let known = select(vec![
            EncrId::ENCR_3DES,
            EncrId::ENCR_NULL,
            EncrId::ENCR_AES_CBC,
            EncrId::ENCR_AES_CTR,
            EncrId::ENCR_AES_CCM_8,
            EncrId::ENCR_AES_CCM_12,
            EncrId::ENCR_AES_CCM_16,
            EncrId::ENCR_AES_GCM_8,
            EncrId::ENCR_AES_GCM_12,
            EncrId::ENCR_AES_GCM_16,
            EncrId::ENCR_NULL_AUTH_AES_GMAC,
            EncrId::ENCR_CHACHA20_POLY1305,
        ]);
        prop_oneof![9 => known, 1 => (1024u16..).prop_map(EncrId)].boxed()
    }

    /// ENCR, with a Key Length for the AES family (variable key size) and
    /// now and then an attribute we do not interpret.
    pub fn encr() -> BoxedStrategy<Transform> {
        (
            encr_id(),
            select(vec![128u16, 192, 256]),
            few_unknown_attrs(&[14, 18]),
        )
            .prop_map(|(id, bits, extra)| {
                let aes = matches!(
                    id,
                    EncrId::ENCR_AES_CBC
                        | EncrId::ENCR_AES_CTR
                        | EncrId::ENCR_AES_CCM_8
                        | EncrId::ENCR_AES_CCM_12
                        | EncrId::ENCR_AES_CCM_16
                        | EncrId::ENCR_AES_GCM_8
                        | EncrId::ENCR_AES_GCM_12
                        | EncrId::ENCR_AES_GCM_16
                        | EncrId::ENCR_NULL_AUTH_AES_GMAC
                );
                let mut t = Transform::encr(id, aes.then_some(bits));
                t.attrs.extend(extra.into_iter().map(TransformAttr::Other));
                t
            })
            .boxed()
    }

    /// An integrity algorithm other than NONE.
    pub fn integ_id() -> BoxedStrategy<IntegId> {
        let known = select(vec![
            IntegId::AUTH_HMAC_SHA1_96,
            IntegId::AUTH_AES_XCBC_96,
            IntegId::AUTH_AES_128_GMAC,
            IntegId::AUTH_AES_192_GMAC,
            IntegId::AUTH_AES_256_GMAC,
            IntegId::AUTH_HMAC_SHA2_256_128,
            IntegId::AUTH_HMAC_SHA2_384_192,
            IntegId::AUTH_HMAC_SHA2_512_256,
        ]);
        prop_oneof![9 => known, 1 => (1024u16..).prop_map(IntegId)].boxed()
    }

    /// §4.4.2.1.3: never ESN for multicast SAs.
    pub fn sn_id() -> BoxedStrategy<SnId> {
        select(vec![SnId::SEQ32, SnId::UNSPECIFIED32]).boxed()
    }

    pub fn kwa_id() -> BoxedStrategy<KwaId> {
        select(vec![
            KwaId::KW_5649_128,
            KwaId::KW_5649_192,
            KwaId::KW_5649_256,
            KwaId::KW_ARX,
        ])
        .boxed()
    }

    pub fn gcauth(gc: Gc) -> BoxedStrategy<Option<Transform>> {
        let signed = || der_seq().prop_map(|a| Some(Transform::gcauth_signature(a)));
        match gc {
            Gc::Absent => Just(None).boxed(),
            Gc::Implicit => Just(Some(Transform::gcauth_implicit())).boxed(),
            Gc::Signature => signed().boxed(),
            Gc::Any => prop_oneof![
                Just(None),
                Just(Some(Transform::gcauth_implicit())),
                signed(),
            ]
            .boxed(),
        }
    }

    /// Figure 16, GIKE_UPDATE: ENCR, KWA, INTEG unless AEAD (then absent
    /// or NONE), GCAUTH as `gc` says; in any order.
    pub fn rekey_transforms(gc: Gc) -> BoxedStrategy<Vec<Transform>> {
        (encr(), kwa_id(), integ_id(), any::<bool>(), gcauth(gc))
            .prop_map(|(e, kwa, integ, none_with_aead, gcauth)| {
                let aead = EncrId(e.id).is_aead();
                let mut v = vec![e, Transform::kwa(kwa)];
                if !aead {
                    v.push(Transform::integ(integ));
                } else if none_with_aead {
                    v.push(Transform::integ(IntegId::NONE));
                }
                v.extend(gcauth);
                v
            })
            .prop_shuffle()
            .boxed()
    }

    /// Figure 16, ESP: ENCR and SN; INTEG optional, and NONE (or absent)
    /// with an AEAD cipher.
    pub fn esp_transforms() -> BoxedStrategy<Vec<Transform>> {
        (encr(), sn_id(), opt(P::Maybe, integ_id()), any::<bool>())
            .prop_map(|(e, sn, integ, none_with_aead)| {
                let aead = EncrId(e.id).is_aead();
                let null = EncrId(e.id) == EncrId::ENCR_NULL;
                let mut v = vec![e, Transform::sn(sn)];
                match (aead, integ) {
                    (false, Some(i)) => v.push(Transform::integ(i)),
                    // RFC 4303 §3.2: NULL encryption needs integrity.
                    (false, None) if null => {
                        v.push(Transform::integ(IntegId::AUTH_HMAC_SHA2_256_128))
                    }
                    (true, _) if none_with_aead => v.push(Transform::integ(IntegId::NONE)),
                    _ => {}
                }
                v
            })
            .prop_shuffle()
            .boxed()
    }

    /// Figure 16, AH: INTEG (not NONE) and SN.
    pub fn ah_transforms() -> BoxedStrategy<Vec<Transform>> {
        (integ_id(), sn_id())
            .prop_map(|(i, sn)| vec![Transform::integ(i), Transform::sn(sn)])
            .prop_shuffle()
            .boxed()
    }

    /// One transform a GM may list in an SAg proposal of `protocol`.
    pub fn sag_transform(protocol: ProtocolId) -> BoxedStrategy<Transform> {
        let integ = integ_id().prop_map(Transform::integ);
        let sn = sn_id().prop_map(Transform::sn);
        let unknown =
            (200u8.., any::<u16>(), few_unknown_attrs(&[14, 18])).prop_map(|(ty, id, a)| {
                Transform {
                    ty: TransformType(ty),
                    id,
                    attrs: a.into_iter().map(TransformAttr::Other).collect(),
                }
            });
        match protocol {
            ProtocolId::GIKE_UPDATE => prop_oneof![
                3 => encr(),
                2 => kwa_id().prop_map(Transform::kwa),
                2 => integ,
                1 => gcauth(Gc::Any).prop_map(|t| t.unwrap_or_else(Transform::gcauth_implicit)),
                1 => unknown,
            ]
            .boxed(),
            ProtocolId::ESP => prop_oneof![3 => encr(), 2 => integ, 2 => sn, 1 => unknown].boxed(),
            _ => prop_oneof![3 => integ, 2 => sn, 1 => unknown].boxed(),
        }
    }

    // --- SAg (§4.3) ---------------------------------------------------------

    /// Proposals numbered from 1, each number equal to the previous or one
    /// more (RFC 7296 §3.3.1); empty SPIs (§2.3.3).
    pub fn sag() -> BoxedStrategy<SaPayload> {
        let protocol = select(vec![
            ProtocolId::AH,
            ProtocolId::ESP,
            ProtocolId::GIKE_UPDATE,
        ]);
        let proposal = (any::<bool>(), protocol).prop_flat_map(|(same_num, protocol)| {
            (
                Just(same_num),
                Just(protocol),
                vec(sag_transform(protocol), 1..7),
            )
        });
        vec(proposal, 1..5)
            .prop_map(|ps| {
                let mut num = 0u8;
                let proposals = ps
                    .into_iter()
                    .enumerate()
                    .map(|(i, (same_num, protocol, transforms))| {
                        if i == 0 || !same_num {
                            num += 1;
                        }
                        Proposal {
                            num,
                            protocol,
                            spi: Vec::new(),
                            transforms,
                        }
                    })
                    .collect();
                SaPayload { proposals }
            })
            .boxed()
    }

    // --- GSA (§4.4) -----------------------------------------------------------

    pub fn rekey_ref() -> BoxedStrategy<SaRef> {
        any::<[u8; 16]>()
            .prop_map(|s| SaRef::Rekey(RekeySpi(s)))
            .boxed()
    }

    /// ESP or AH with an SPI outside the range IPsec reserves (0–255).
    pub fn tek_ref() -> BoxedStrategy<SaRef> {
        prop_oneof![
            (256u32..).prop_map(SaRef::Esp),
            (256u32..).prop_map(SaRef::Ah),
        ]
        .boxed()
    }

    pub fn sa_ref() -> BoxedStrategy<SaRef> {
        prop_oneof![1 => rekey_ref(), 2 => tek_ref()].boxed()
    }

    /// §4.4.2.2: one lifetime, an initial Message ID for GIKE_UPDATE only,
    /// NEXT_SPIs of the policy's SPI size; in any order.
    pub fn gsa_attrs(sa: SaRef, u: Use) -> BoxedStrategy<Vec<GsaAttr>> {
        let rekey = matches!(sa, SaRef::Rekey(_));
        let spi_len = sa.spi_bytes().len();
        let initial = if rekey && u.multicast_attrs() {
            P::Maybe
        } else {
            P::Never
        };
        let next_spis = if u.multicast_attrs() { 0..3 } else { 0..1 };
        (
            opt(u.lifetime(), 1u32..),
            opt(initial, any::<u32>()),
            vec(bytes(spi_len..spi_len + 1), next_spis),
            few_unknown_attrs(&[1, 2, 3]),
        )
            .prop_map(|(lifetime, initial, next, other)| {
                let mut v = Vec::new();
                v.extend(lifetime.map(GsaAttr::KeyLifetime));
                v.extend(initial.map(GsaAttr::InitialMessageId));
                v.extend(next.into_iter().map(GsaAttr::NextSpi));
                v.extend(other.into_iter().map(GsaAttr::Other));
                v
            })
            .prop_shuffle()
            .boxed()
    }

    /// The policy of `sa`, valid for `u`; `gc` applies to a Rekey SA.
    pub fn policy_for(sa: SaRef, u: Use, gc: Gc) -> BoxedStrategy<GsaPolicy> {
        family()
            .prop_flat_map(move |f| {
                let (src, dst, transforms) = match sa {
                    SaRef::Rekey(_) => (rekey_src(f), rekey_dst(f), rekey_transforms(gc)),
                    SaRef::Esp(_) => (ts(f), tek_dst(f), esp_transforms()),
                    SaRef::Ah(_) => (ts(f), tek_dst(f), ah_transforms()),
                };
                (src, dst, transforms, gsa_attrs(sa, u))
            })
            .prop_map(move |(src, dst, transforms, attrs)| GsaPolicy {
                sa,
                src,
                dst,
                transforms,
                attrs,
            })
            .boxed()
    }

    /// §4.4.3.1: each of ATD, DTD, SENDER_ID_BITS at most once.
    pub fn gw_policy(sender_id_bits: P) -> BoxedStrategy<GwPolicy> {
        (
            opt(P::Maybe, any::<u16>()),
            opt(P::Maybe, any::<u16>()),
            opt(sender_id_bits, 1u16..=32),
            few_unknown_attrs(&[1, 2, 3]),
        )
            .prop_map(|(atd, dtd, sender_id_bits, other)| GwPolicy {
                atd,
                dtd,
                sender_id_bits,
                other,
            })
            .boxed()
    }

    /// §4.4.2: never ESP and AH for the same traffic selectors.
    pub fn esp_ah_clash(g: &Gsa) -> bool {
        let teks: Vec<&GsaPolicy> = g.teks().collect();
        teks.iter().enumerate().any(|(i, a)| {
            teks[i + 1..]
                .iter()
                .any(|b| a.sa.protocol() != b.sa.protocol() && (a.src, a.dst) == (b.src, b.dst))
        })
    }

    /// Puts policies (and a GW policy) in random order.
    fn assemble_gsa(policies: Vec<GsaPolicy>, gw: Option<GwPolicy>) -> impl Strategy<Value = Gsa> {
        let mut v: Vec<GroupPolicy> = policies.into_iter().map(GroupPolicy::Sa).collect();
        v.extend(gw.map(GroupPolicy::GroupWide));
        Just(v).prop_shuffle().prop_map(|policies| Gsa { policies })
    }

    /// The SAs of a GSA payload: a KEK as `kek` says, then distinct TEKs,
    /// fewer than `teks_below`; at least one in all (§4.4.1). Built rather
    /// than filtered, so long runs do not exhaust proptest's reject budget.
    pub fn policy_sas(kek: P, teks_below: usize) -> BoxedStrategy<Vec<SaRef>> {
        opt(kek, rekey_ref())
            .prop_flat_map(move |k| {
                let min = usize::from(k.is_none());
                (Just(k), btree_set(tek_ref(), min..teks_below))
            })
            .prop_map(|(k, teks)| k.into_iter().chain(teks).collect())
            .boxed()
    }

    /// §4.4.1: at least one KEK or TEK policy, at most one KEK and at most
    /// one GW policy.
    pub fn gsa() -> BoxedStrategy<Gsa> {
        policy_sas(P::Maybe, 4)
            .prop_flat_map(|sas| {
                let policies: Vec<_> = sas
                    .into_iter()
                    .map(|sa| policy_for(sa, Use::Wire, Gc::Any))
                    .collect();
                (policies, opt(P::Maybe, gw_policy(P::Maybe)))
            })
            .prop_flat_map(|(p, gw)| assemble_gsa(p, gw))
            .prop_filter("ESP and AH for the same selectors", |g| !esp_ah_clash(g))
            .boxed()
    }

    // --- KD (§4.5) -------------------------------------------------------------

    /// §4.5.2.1: SA_KEY's Key ID is zero; a Data-Security SA's KWK ID too.
    pub fn sa_key(sa: SaRef) -> BoxedStrategy<WrappedKey> {
        let kwk = match sa {
            SaRef::Rekey(_) => prop_oneof![Just(0u32), any::<u32>()].boxed(),
            _ => Just(0u32).boxed(),
        };
        (kwk, bytes(1..48))
            .prop_map(|(kwk_id, encrypted)| WrappedKey {
                key_id: 0,
                kwk_id,
                encrypted,
            })
            .boxed()
    }

    /// §4.5.2: exactly one SA_KEY, but a Rekey SA may get several in
    /// GSA_REKEY (`many`).
    pub fn group_bag(sa: SaRef, many: bool) -> BoxedStrategy<GroupKeyBag> {
        let n = if many && matches!(sa, SaRef::Rekey(_)) {
            1..4
        } else {
            1..2
        };
        (vec(sa_key(sa), n), few_unknown_attrs(&[1]))
            .prop_map(move |(sa_keys, other)| GroupKeyBag { sa, sa_keys, other })
            .boxed()
    }

    /// §4.5.3.1: WRAP_KEY's Key ID is never zero.
    pub fn wrap_key() -> BoxedStrategy<WrappedKey> {
        (1u32.., any::<u32>(), bytes(1..48))
            .prop_map(|(key_id, kwk_id, encrypted)| WrappedKey {
                key_id,
                kwk_id,
                encrypted,
            })
            .boxed()
    }

    /// What a Member Key Bag may hold.
    #[derive(Clone, Copy, Debug)]
    pub struct Member {
        pub wrap_keys: bool,
        pub auth_key: P,
        pub sender_ids: P,
    }

    impl Member {
        pub const WIRE: Self = Self {
            wrap_keys: true,
            auth_key: P::Maybe,
            sender_ids: P::Maybe,
        };
    }

    pub fn member_bag(m: Member) -> BoxedStrategy<MemberKeyBag> {
        let wraps = if m.wrap_keys { 0..3 } else { 0..1 };
        let senders = match m.sender_ids {
            P::Never => 0..1,
            P::Maybe => 0..4,
            P::Always => 1..4,
        };
        (
            vec(wrap_key(), wraps),
            opt(m.auth_key, der_seq()),
            vec(any::<u32>(), senders),
            few_unknown_attrs(&[1, 2, 3]),
        )
            .prop_map(move |(wrap_keys, auth_key, mut sender_ids, other)| {
                if m.sender_ids == P::Never {
                    sender_ids.clear();
                }
                MemberKeyBag {
                    wrap_keys: if m.wrap_keys { wrap_keys } else { Vec::new() },
                    auth_key,
                    sender_ids,
                    other,
                }
            })
            .boxed()
    }

    fn assemble_kd(
        groups: Vec<GroupKeyBag>,
        member: Option<MemberKeyBag>,
    ) -> impl Strategy<Value = Kd> {
        let mut v: Vec<KeyBag> = groups.into_iter().map(KeyBag::Group).collect();
        v.extend(member.map(KeyBag::Member));
        Just(v).prop_shuffle().prop_map(|bags| Kd { bags })
    }

    /// §4.5: at least one bag, one group bag per SA, at most one member bag.
    pub fn kd() -> BoxedStrategy<Kd> {
        opt(P::Maybe, member_bag(Member::WIRE))
            .prop_flat_map(|m| {
                let min = usize::from(m.is_none());
                (btree_set(sa_ref(), min..4), Just(m))
            })
            .prop_flat_map(|(sas, member)| {
                let groups: Vec<_> = sas.into_iter().map(|sa| group_bag(sa, true)).collect();
                (groups, Just(member))
            })
            .prop_flat_map(|(g, m)| assemble_kd(g, m))
            .boxed()
    }

    // --- IDg, Notify, Delete, AUTH, SK (§4.2, §4.6–§4.8) --------------------

    /// §4.2: every ID type IKEv2 allows, with the address lengths.
    pub fn group_id() -> BoxedStrategy<GroupId> {
        let id = |id_type: IdType, data: Vec<u8>| GroupId { id_type, data };
        prop_oneof![
            any::<[u8; 4]>().prop_map(move |a| id(IdType::ID_IPV4_ADDR, a.to_vec())),
            any::<[u8; 16]>().prop_map(move |a| id(IdType::ID_IPV6_ADDR, a.to_vec())),
            "[a-z0-9]{1,12}(\\.[a-z]{2,6}){1,3}"
                .prop_map(move |s| id(IdType::ID_FQDN, s.into_bytes())),
            "[a-z0-9.]{1,12}@[a-z]{1,12}\\.[a-z]{2,4}"
                .prop_map(move |s| id(IdType::ID_RFC822_ADDR, s.into_bytes())),
            der_seq().prop_map(move |d| id(IdType::ID_DER_ASN1_DN, d)),
            der_seq().prop_map(move |d| id(IdType::ID_DER_ASN1_GN, d)),
            bytes(1..64).prop_map(move |d| id(IdType::ID_KEY_ID, d)),
        ]
        .boxed()
    }

    const GIKE_NOTIFIES: [NotifyType; 4] = [
        NotifyType::INVALID_GROUP_ID,
        NotifyType::AUTHORIZATION_FAILED,
        NotifyType::REGISTRATION_FAILED,
        NotifyType::GROUP_SENDER,
    ];

    /// A status notification (≥ 16384) other than GROUP_SENDER.
    pub fn status_notify() -> BoxedStrategy<Notify> {
        (16384u16.., bytes(0..16))
            .prop_filter("GROUP_SENDER", |(t, _)| *t != NotifyType::GROUP_SENDER.0)
            .prop_map(|(t, data)| Notify {
                data,
                ..Notify::plain(NotifyType(t))
            })
            .boxed()
    }

    /// §4.7: the G-IKEv2 notifications (Protocol ID and SPI Size zero; the
    /// error ones' data is ignored on receipt, so any), GROUP_SENDER with
    /// and without its 4-octet count, and any other RFC 7296 notification.
    pub fn notify() -> BoxedStrategy<Notify> {
        let other_type = prop_oneof![
            select(vec![
                NotifyType::UNSUPPORTED_CRITICAL_PAYLOAD,
                NotifyType::INVALID_SYNTAX,
                NotifyType::INVALID_MESSAGE_ID,
                NotifyType::NO_PROPOSAL_CHOSEN,
                NotifyType::AUTHENTICATION_FAILED,
                NotifyType::IPCOMP_SUPPORTED,
                NotifyType::USE_TRANSPORT_MODE,
            ]),
            any::<u16>()
                .prop_map(NotifyType)
                .prop_filter("G-IKEv2 notification", |t| !GIKE_NOTIFIES.contains(t)),
        ];
        let protocol = select(vec![
            ProtocolId::NONE,
            ProtocolId::IKE,
            ProtocolId::AH,
            ProtocolId::ESP,
            ProtocolId::GIKE_UPDATE,
        ]);
        prop_oneof![
            (select(GIKE_NOTIFIES[..3].to_vec()), bytes(0..8)).prop_map(|(t, data)| Notify {
                data,
                ..Notify::plain(t)
            }),
            any::<u32>().prop_map(Notify::group_sender),
            (protocol, bytes(0..17), other_type, bytes(0..32)).prop_map(
                |(protocol, spi, ty, data)| Notify {
                    protocol,
                    spi,
                    ty,
                    data,
                }
            ),
        ]
        .boxed()
    }

    /// SPI zero means "all SAs of the protocol" (§2.4.3).
    fn data_spi() -> BoxedStrategy<u32> {
        prop_oneof![1 => Just(0u32), 4 => any::<u32>()].boxed()
    }

    /// §4.6: the whole group, or a list of SAs of one protocol.
    pub fn delete() -> BoxedStrategy<Delete> {
        prop_oneof![
            Just(Delete::WholeGroup),
            vec(any::<[u8; 16]>().prop_map(RekeySpi), 1..4).prop_map(Delete::Rekey),
            vec(data_spi(), 1..8).prop_map(Delete::Esp),
            vec(data_spi(), 1..8).prop_map(Delete::Ah),
        ]
        .boxed()
    }

    pub fn auth() -> BoxedStrategy<Auth> {
        let method = prop_oneof![
            select(vec![
                AuthMethod::RSA_SIG,
                AuthMethod::SHARED_KEY_MIC,
                AuthMethod::ECDSA_SHA256_P256,
                AuthMethod::NULL_AUTH,
                AuthMethod::DIGITAL_SIGNATURE,
            ]),
            any::<u8>().prop_map(AuthMethod),
        ];
        (method, bytes(1..96))
            .prop_map(|(method, data)| Auth { method, data })
            .boxed()
    }

    /// Types of payloads this layer carries opaquely (charon's).
    const CHARON_PAYLOADS: [PayloadType; 11] = [
        PayloadType::KE,
        PayloadType::IDI,
        PayloadType::IDR,
        PayloadType::CERT,
        PayloadType::CERTREQ,
        PayloadType::NONCE,
        PayloadType::VENDOR_ID,
        PayloadType::TSI,
        PayloadType::TSR,
        PayloadType::CP,
        PayloadType::EAP,
    ];

    /// Any payload type, named or not.
    pub fn payload_type() -> BoxedStrategy<PayloadType> {
        any::<u8>().prop_map(PayloadType).boxed()
    }

    pub fn encrypted() -> BoxedStrategy<Encrypted> {
        (payload_type(), bytes(0..96))
            .prop_map(|(first_inner, body)| Encrypted { first_inner, body })
            .boxed()
    }

    /// A payload of a known but uninterpreted type, or a non-critical
    /// unknown one (a critical unknown one is refused, RFC 7296 §2.5).
    pub fn opaque() -> BoxedStrategy<Payload> {
        let unknown: Vec<PayloadType> = (1..=u8::MAX)
            .map(PayloadType)
            .filter(|t| t.name().is_none())
            .collect();
        let ty = prop_oneof![select(CHARON_PAYLOADS.to_vec()), select(unknown)];
        (ty, bytes(0..48))
            .prop_map(|(ty, body)| Payload::Opaque {
                ty,
                critical: false,
                body,
            })
            .boxed()
    }

    /// Any payload but SK, which may only end a chain.
    pub fn payload() -> BoxedStrategy<Payload> {
        prop_oneof![
            sag().prop_map(Payload::Sag),
            group_id().prop_map(Payload::Idg),
            gsa().prop_map(Payload::Gsa),
            kd().prop_map(Payload::Kd),
            notify().prop_map(Payload::Notify),
            delete().prop_map(Payload::Delete),
            auth().prop_map(Payload::Auth),
            opaque(),
        ]
        .boxed()
    }

    /// A payload chain, possibly ending with an Encrypted payload.
    pub fn chain() -> BoxedStrategy<Vec<Payload>> {
        (vec(payload(), 0..5), opt(P::Maybe, encrypted()))
            .prop_map(|(mut v, sk)| {
                v.extend(sk.map(Payload::Encrypted));
                v
            })
            .boxed()
    }

    /// Payloads of an SK body (no SK inside SK), at least one.
    pub fn inner_chain() -> BoxedStrategy<Vec<Payload>> {
        vec(payload(), 1..4).boxed()
    }

    // --- header and message (RFC 7296 §3.1, RFC 9838 §4.1) -----------------

    pub fn exchange() -> BoxedStrategy<ExchangeType> {
        prop_oneof![
            select(vec![
                ExchangeType::IKE_SA_INIT,
                ExchangeType::IKE_AUTH,
                ExchangeType::CREATE_CHILD_SA,
                ExchangeType::INFORMATIONAL,
                ExchangeType::GSA_AUTH,
                ExchangeType::GSA_REGISTRATION,
                ExchangeType::GSA_REKEY,
                ExchangeType::GSA_INBAND_REKEY,
                ExchangeType::IKE_INTERMEDIATE,
            ]),
            any::<u8>().prop_map(ExchangeType),
        ]
        .boxed()
    }

    /// Only I, V and R are flags; the other bits are not kept (§3.1).
    pub fn flags() -> BoxedStrategy<u8> {
        (any::<bool>(), any::<bool>(), any::<bool>())
            .prop_map(|(i, v, r)| {
                (if i { FLAG_INITIATOR } else { 0 })
                    | (if v { FLAG_VERSION } else { 0 })
                    | (if r { FLAG_RESPONSE } else { 0 })
            })
            .boxed()
    }

    /// A header with Length 0 and Next Payload NONE, as `Message` keeps it.
    pub fn header() -> BoxedStrategy<IkeHeader> {
        (
            any::<[u8; 8]>(),
            any::<[u8; 8]>(),
            exchange(),
            flags(),
            any::<u32>(),
        )
            .prop_map(|(spi_i, spi_r, exchange, flags, message_id)| IkeHeader {
                spi_i,
                spi_r,
                next_payload: PayloadType::NONE,
                exchange,
                flags,
                message_id,
                length: 0,
            })
            .boxed()
    }

    /// The header field `Message::encode` fills in: Next Payload is the
    /// first payload's type; Length stays 0 (decode resets it).
    pub fn message_of(mut header: IkeHeader, payloads: Vec<Payload>) -> Message {
        header.next_payload = payloads.first().map_or(PayloadType::NONE, Payload::ty);
        header.length = 0;
        Message { header, payloads }
    }

    pub fn message() -> BoxedStrategy<Message> {
        (header(), chain())
            .prop_map(|(h, p)| message_of(h, p))
            .boxed()
    }

    // --- whole exchanges (§2.3–§2.4, §5) -----------------------------------

    pub fn registration_exchange() -> BoxedStrategy<ExchangeType> {
        select(vec![ExchangeType::GSA_AUTH, ExchangeType::GSA_REGISTRATION]).boxed()
    }

    /// Figures 3 and 6: [IDi, [CERT], [CERTREQ], [IDr], AUTH (GSA_AUTH
    /// only)], IDg, [SAg], [N(GROUP_SENDER)], [N].
    pub fn registration_request() -> BoxedStrategy<(ExchangeType, Vec<Payload>)> {
        (
            registration_exchange(),
            group_id(),
            opt(P::Maybe, sag()),
            opt(P::Maybe, (1u32..8).prop_map(Notify::group_sender)),
            vec(status_notify(), 0..2),
            opaque_ike_auth_payloads(false),
        )
            .prop_map(|(ex, idg, sag, sender, notes, ike)| {
                let mut p = Vec::new();
                if ex == ExchangeType::GSA_AUTH {
                    p.extend(ike);
                }
                p.push(Payload::Idg(idg));
                p.extend(sag.map(Payload::Sag));
                p.extend(sender.map(Payload::Notify));
                p.extend(notes.into_iter().map(Payload::Notify));
                (ex, p)
            })
            .boxed()
    }

    /// Charon's part of a GSA_AUTH message (Figures 3 and 4): IDi,
    /// [CERT], [CERTREQ], [IDr], AUTH from the GM; IDr, [CERT], AUTH back.
    fn opaque_ike_auth_payloads(response: bool) -> BoxedStrategy<Vec<Payload>> {
        let op = |ty: PayloadType| {
            bytes(5..40).prop_map(move |body| Payload::Opaque {
                ty,
                critical: false,
                body,
            })
        };
        let (id, other_id) = if response {
            (PayloadType::IDR, P::Never)
        } else {
            (PayloadType::IDI, P::Maybe)
        };
        let certreq = if response { P::Never } else { P::Maybe };
        (
            op(id),
            opt(P::Maybe, op(PayloadType::CERT)),
            opt(certreq, op(PayloadType::CERTREQ)),
            opt(other_id, op(PayloadType::IDR)),
            auth(),
        )
            .prop_map(|(id, cert, certreq, idr, auth)| {
                let mut v = vec![id];
                v.extend(cert);
                v.extend(certreq);
                v.extend(idr);
                v.push(Payload::Auth(auth));
                v
            })
            .boxed()
    }

    /// Knobs of a registration response; `None` draws the choice.
    #[derive(Clone, Copy, Debug, Default)]
    pub struct Reg {
        /// A Rekey SA (Table 2) rather than inband rekey (Table 3).
        pub multicast: Option<bool>,
        /// GCAUTH Digital Signature rather than Implicit.
        pub signed: Option<bool>,
        /// The GM asked for Sender-IDs (GROUP_SENDER) and the policy uses
        /// counter mode.
        pub sender: Option<bool>,
    }

    /// A normal registration response (Figures 4 and 6): GSA, KD, [N],
    /// with the attributes of Table 2 or Table 3.
    pub fn registration_response(reg: Reg) -> BoxedStrategy<(ExchangeType, Vec<Payload>)> {
        (flag(reg.multicast), flag(reg.signed), flag(reg.sender))
            .prop_flat_map(|(mc, signed, sender)| {
                let u = if mc {
                    Use::RegMulticast
                } else {
                    Use::RegInband
                };
                let gc = if signed { Gc::Signature } else { Gc::Implicit };
                let kek = if mc { P::Always } else { P::Never };
                policy_sas(kek, if mc { 3 } else { 4 }).prop_flat_map(move |sas| {
                    let policies: Vec<_> = sas.iter().map(|sa| policy_for(*sa, u, gc)).collect();
                    let bags: Vec<_> = sas.iter().map(|sa| group_bag(*sa, false)).collect();
                    // Table 2/3 note 1: SENDER_ID_BITS exactly when GM_SENDER_IDs.
                    let gw = if sender {
                        opt(P::Always, gw_policy(P::Always))
                    } else {
                        opt(P::Maybe, gw_policy(P::Never))
                    };
                    // Table 2 note 4: AUTH_KEY exactly when signed;
                    // Table 3: no WRAP_KEY, no AUTH_KEY.
                    let m = Member {
                        wrap_keys: mc,
                        auth_key: if mc && signed { P::Always } else { P::Never },
                        sender_ids: if sender { P::Always } else { P::Never },
                    };
                    let must = sender || (mc && signed);
                    let member = opt(if must { P::Always } else { P::Maybe }, member_bag(m));
                    (policies, bags, gw, member)
                })
            })
            .prop_flat_map(|(policies, bags, gw, member)| {
                (assemble_gsa(policies, gw), assemble_kd(bags, member))
            })
            .prop_filter("ESP and AH for the same selectors", |(g, _)| {
                !esp_ah_clash(g)
            })
            .prop_flat_map(|(gsa, kd)| {
                (
                    registration_exchange(),
                    Just(gsa),
                    Just(kd),
                    vec(status_notify(), 0..2),
                    opaque_ike_auth_payloads(true),
                )
            })
            .prop_map(|(ex, gsa, kd, notes, ike)| {
                let mut p = Vec::new();
                if ex == ExchangeType::GSA_AUTH {
                    p.extend(ike);
                }
                p.push(Payload::Gsa(gsa));
                p.push(Payload::Kd(kd));
                p.extend(notes.into_iter().map(Payload::Notify));
                (ex, p)
            })
            .boxed()
    }

    /// GSA and KD for a rekey (`multicast`: GSA_REKEY, Table 2; else
    /// GSA_INBAND_REKEY, Table 3). `kek` forces a Rekey SA policy in or out.
    pub fn rekey_gsa_kd(multicast: bool, kek: Option<bool>) -> BoxedStrategy<Keys> {
        let u = if multicast {
            Use::Rekey
        } else {
            Use::InbandRekey
        };
        // Table 3 has no Rekey SA.
        let kek = match (multicast, kek) {
            (false, _) | (true, Some(false)) => P::Never,
            (true, Some(true)) => P::Always,
            (true, None) => P::Maybe,
        };
        policy_sas(kek, 3)
            .prop_flat_map(move |sas| {
                let policies: Vec<_> = sas
                    .iter()
                    .map(|sa| policy_for(*sa, u, Gc::Absent))
                    .collect();
                let bags: Vec<_> = sas.iter().map(|sa| group_bag(*sa, multicast)).collect();
                // §5: no SENDER_ID_BITS, no GM_SENDER_ID in rekeys; Table 3:
                // no WRAP_KEY or AUTH_KEY either.
                let m = Member {
                    wrap_keys: multicast,
                    auth_key: if multicast { P::Maybe } else { P::Never },
                    sender_ids: P::Never,
                };
                (
                    policies,
                    bags,
                    opt(P::Maybe, gw_policy(P::Never)),
                    opt(P::Maybe, member_bag(m)),
                )
            })
            .prop_flat_map(|(policies, bags, gw, member)| {
                (assemble_gsa(policies, gw), assemble_kd(bags, member))
            })
            .prop_filter("ESP and AH for the same selectors", |(g, _)| {
                !esp_ah_clash(g)
            })
            .boxed()
    }

    /// The GSA and KD payloads of a message.
    pub type Keys = (Gsa, Kd);

    /// GSA and KD (`keyed`), Delete payloads (at least one if not keyed).
    fn keys_or_deletes(
        multicast: bool,
        keyed: Option<bool>,
        kek: Option<bool>,
    ) -> BoxedStrategy<(Option<Keys>, Vec<Delete>)> {
        flag(keyed)
            .prop_flat_map(move |keyed| {
                let keys = if keyed { P::Always } else { P::Never };
                (
                    opt(keys, rekey_gsa_kd(multicast, kek)),
                    vec(delete(), if keyed { 0..3 } else { 1..3 }),
                )
            })
            .boxed()
    }

    /// Figures 9 and 12: SK{GSA, KD, [N], [AUTH]} or SK{D, [N], [AUTH]}.
    /// `keyed` forces GSA and KD in or out, `kek` a Rekey SA policy.
    pub fn gsa_rekey_request(
        keyed: Option<bool>,
        kek: Option<bool>,
    ) -> BoxedStrategy<Vec<Payload>> {
        (
            keys_or_deletes(true, keyed, kek),
            opt(P::Maybe, status_notify()),
            opt(P::Maybe, auth()),
        )
            .prop_map(|((keys, deletes), note, auth)| {
                let mut p = Vec::new();
                if let Some((gsa, kd)) = keys {
                    p.push(Payload::Gsa(gsa));
                    p.push(Payload::Kd(kd));
                }
                p.extend(deletes.into_iter().map(Payload::Delete));
                p.extend(note.map(Payload::Notify));
                p.extend(auth.map(Payload::Auth));
                p
            })
            .boxed()
    }

    /// Figures 11 and 13: SK{GSA, KD, [N]} or SK{D, [N]}.
    pub fn inband_rekey_request() -> BoxedStrategy<Vec<Payload>> {
        (
            keys_or_deletes(false, None, None),
            opt(P::Maybe, status_notify()),
        )
            .prop_map(|((keys, deletes), note)| {
                let mut p = Vec::new();
                if let Some((gsa, kd)) = keys {
                    p.push(Payload::Gsa(gsa));
                    p.push(Payload::Kd(kd));
                }
                p.extend(deletes.into_iter().map(Payload::Delete));
                p.extend(note.map(Payload::Notify));
                p
            })
            .boxed()
    }
}

use strat::{Member, P, Reg};

// ---------------------------------------------------------------------------
// Shared checks
// ---------------------------------------------------------------------------

/// `cases` cases, times `WIRE_PROPS_SCALE` if set (for a longer soak:
/// `WIRE_PROPS_SCALE=100 cargo test --release --test wire_props`).
/// Failures are saved next to this file (`wire_props.proptest-regressions`)
/// and replayed first on later runs.
fn config(cases: u32) -> ProptestConfig {
    let scale = std::env::var("WIRE_PROPS_SCALE")
        .ok()
        .and_then(|s| s.parse::<u32>().ok())
        .unwrap_or(1);
    ProptestConfig {
        cases: cases.saturating_mul(scale),
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..ProptestConfig::default()
    }
}

/// `from_bytes(to_bytes(x)) == Ok(x)` and the decoded value re-encodes to
/// the same octets.
fn round_trip<T: Codec + PartialEq + Debug>(x: &T) -> Result<(), TestCaseError> {
    let b = x.to_bytes();
    let y = T::from_bytes(&b);
    prop_assert_eq!(y.as_ref(), Ok(x));
    prop_assert_eq!(y.unwrap().to_bytes(), b);
    Ok(())
}

fn first_type(p: &[Payload]) -> PayloadType {
    p.first().map_or(PayloadType::NONE, Payload::ty)
}

fn chain_bytes(p: &[Payload]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_chain(p, &mut out);
    out
}

fn chain_decode(first: PayloadType, b: &[u8]) -> Result<Vec<Payload>, DecodeError> {
    read_chain(first, &mut Reader::new(b))
}

/// A chain survives `encode_chain` / `read_chain` unchanged, octet for
/// octet, and `chain_spans` finds its payloads where they are.
fn chain_round_trip(p: &[Payload]) -> Result<Vec<Payload>, TestCaseError> {
    let b = chain_bytes(p);
    let back = chain_decode(first_type(p), &b);
    prop_assert_eq!(back.as_deref(), Ok(p));
    spans_agree(first_type(p), &b)?;
    let back = back.unwrap();
    prop_assert_eq!(chain_bytes(&back), b);
    Ok(back)
}

/// Whatever a decoder accepts must decode the same after re-encoding:
/// catches decoders and encoders that disagree on a value's form.
fn stable<T: Codec + PartialEq + Debug>(b: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(v) = T::from_bytes(b) {
        let again = v.to_bytes();
        prop_assert_eq!(T::from_bytes(&again), Ok(v), "re-encoded as {:02x?}", again);
    }
    Ok(())
}

/// Exchanges `check_exchange` has rules for, and one it has not.
const EXCHANGES: [ExchangeType; 5] = [
    ExchangeType::GSA_AUTH,
    ExchangeType::GSA_REGISTRATION,
    ExchangeType::GSA_REKEY,
    ExchangeType::GSA_INBAND_REKEY,
    ExchangeType::INFORMATIONAL,
];

/// A decoded chain re-encodes to the same chain, and `check_exchange`
/// judges it (whatever the verdict) without panicking.
fn stable_chain(first: PayloadType, b: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(p) = chain_decode(first, b) {
        for ex in EXCHANGES {
            for dir in [Direction::Request, Direction::Response] {
                let _verdict = check_exchange(ex, dir, &p);
            }
        }
        let again = chain_bytes(&p);
        prop_assert_eq!(chain_decode(first_type(&p), &again), Ok(p));
    }
    Ok(())
}

/// `chain_spans` (for signatures over the octets as received) must agree
/// with `read_chain` on every chain without SK: the same payload types, in
/// spans that tile the buffer.
fn spans_agree(first: PayloadType, b: &[u8]) -> Result<(), TestCaseError> {
    let spans = chain_spans(first, b);
    let Ok(p) = chain_decode(first, b) else {
        return Ok(());
    };
    if matches!(
        p.last(),
        Some(Payload::Encrypted(_) | Payload::EncryptedFragment(_))
    ) {
        return Ok(());
    }
    prop_assert!(
        spans.is_ok(),
        "read_chain accepts, chain_spans says {:?}",
        spans
    );
    let spans = spans.unwrap();
    let types: Vec<PayloadType> = spans.iter().map(|(t, _)| *t).collect();
    let want: Vec<PayloadType> = p.iter().map(Payload::ty).collect();
    prop_assert_eq!(types, want);
    let mut at = 0;
    for (_, r) in &spans {
        prop_assert_eq!(r.start, at);
        at = r.end;
    }
    prop_assert_eq!(at, b.len());
    Ok(())
}

/// A payload type of each kind the chain reader treats differently: NONE,
/// the ones it decodes, SK, charon's, SKF, and unknown ones (which all
/// take one path). The cheap random-octet tests use all 256.
const CHAIN_FIRSTS: [u8; 29] = [
    0, 1, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52, 53,
    54, 127, 128, 200, 255,
];

const ALL_TYPES: [u8; 256] = {
    let mut t = [0; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = i as u8;
        i += 1;
    }
    t
};

/// Feeds `b` to every decoder of the wire module, the chain reader with
/// each of `firsts` as the first payload type. A panic fails the test
/// (proptest catches it and shrinks the input).
fn decode_everything(b: &[u8], firsts: &[u8]) -> Result<(), TestCaseError> {
    stable::<IkeHeader>(b)?;
    stable::<Message>(b)?;
    stable::<SaPayload>(b)?;
    stable::<GroupId>(b)?;
    stable::<Gsa>(b)?;
    stable::<Kd>(b)?;
    stable::<Notify>(b)?;
    stable::<Delete>(b)?;
    stable::<Auth>(b)?;
    stable::<RawAttr>(b)?;
    stable::<TrafficSelector>(b)?;
    for &t in firsts {
        stable_chain(PayloadType(t), b)?;
        spans_agree(PayloadType(t), b)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// 1–2. Round trips of valid values
// ---------------------------------------------------------------------------

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn traffic_selector_round_trips(ts in strat::any_ts()) {
        round_trip(&ts)?;
    }

    #[test]
    fn raw_attr_round_trips(a in strat::raw_attr()) {
        round_trip(&a)?;
    }

    #[test]
    fn ike_header_round_trips(
        mut h in strat::header(),
        next in strat::payload_type(),
        length in 28u32..,
    ) {
        h.next_payload = next;
        h.length = length;
        round_trip(&h)?;
    }

    /// Transforms have no codec of their own: they travel in proposals.
    #[test]
    fn sag_round_trips(sa in strat::sag()) {
        round_trip(&sa)?;
    }

    #[test]
    fn group_id_round_trips(id in strat::group_id()) {
        round_trip(&id)?;
    }

    /// Each kind of GSA policy alone, under every exchange's rules.
    #[test]
    fn gsa_policy_round_trips(
        p in (
            strat::sa_ref(),
            select(vec![strat::Use::Wire, strat::Use::RegMulticast, strat::Use::RegInband,
                        strat::Use::Rekey, strat::Use::InbandRekey]),
            select(vec![strat::Gc::Absent, strat::Gc::Any, strat::Gc::Implicit, strat::Gc::Signature]),
        ).prop_flat_map(|(sa, u, gc)| strat::policy_for(sa, u, gc)),
    ) {
        round_trip(&Gsa { policies: vec![GroupPolicy::Sa(p)] })?;
    }

    #[test]
    fn gw_policy_round_trips(gw in strat::gw_policy(P::Maybe), kek in strat::rekey_ref()) {
        // A GW policy is never alone in a GSA payload (§4.4.1).
        let kek = GsaPolicy {
            sa: kek,
            src: TrafficSelector::addr("192.0.2.1".parse().unwrap()),
            dst: TrafficSelector::host("239.1.1.1".parse().unwrap(), IPPROTO_UDP, 848),
            transforms: vec![
                Transform::encr(EncrId::ENCR_AES_GCM_16, Some(256)),
                Transform::kwa(KwaId::KW_5649_256),
            ],
            attrs: vec![],
        };
        round_trip(&Gsa { policies: vec![GroupPolicy::GroupWide(gw), GroupPolicy::Sa(kek)] })?;
    }

    #[test]
    fn gsa_round_trips(g in strat::gsa()) {
        round_trip(&g)?;
    }

    #[test]
    fn kd_round_trips(kd in strat::kd()) {
        round_trip(&kd)?;
    }

    #[test]
    fn member_key_bag_round_trips(m in strat::member_bag(Member::WIRE)) {
        round_trip(&Kd { bags: vec![KeyBag::Member(m)] })?;
    }

    #[test]
    fn notify_round_trips(n in strat::notify()) {
        round_trip(&n)?;
    }

    /// §4.7.4: the count is four octets (M096).
    #[test]
    fn group_sender_count_survives(count in any::<u32>()) {
        let n = Notify::group_sender(count);
        round_trip(&n)?;
        prop_assert_eq!(Notify::from_bytes(&n.to_bytes()).unwrap().sender_id_count(), Some(count));
    }

    #[test]
    fn delete_round_trips(d in strat::delete()) {
        round_trip(&d)?;
    }

    #[test]
    fn auth_round_trips(a in strat::auth()) {
        round_trip(&a)?;
    }

    #[test]
    fn payload_chain_round_trips(p in strat::chain()) {
        chain_round_trip(&p)?;
    }

    /// `Message::encode` fills in Next Payload and Length; decode resets
    /// Length to 0, so values with Length 0 round-trip exactly.
    #[test]
    fn message_round_trips(m in strat::message()) {
        let b = m.to_bytes();
        prop_assert_eq!(&b[24..28], &(b.len() as u32).to_be_bytes()[..]);
        prop_assert_eq!(b[16], first_type(&m.payloads).0);
        round_trip(&m)?;
    }

    /// A GSA_REKEY message: header on the Rekey SA, then SK alone; its
    /// (decrypted) body is itself a payload chain starting at Next Payload.
    #[test]
    fn rekey_message_with_encrypted_round_trips(
        spi in any::<[u8; 16]>(),
        mid in any::<u32>(),
        inner in strat::inner_chain(),
    ) {
        let sk = Encrypted { first_inner: first_type(&inner), body: chain_bytes(&inner) };
        let m = strat::message_of(IkeHeader::rekey(RekeySpi(spi), mid), vec![Payload::Encrypted(sk)]);
        round_trip(&m)?;
        let back = Message::from_bytes(&m.to_bytes()).unwrap();
        prop_assert_eq!(back.header.rekey_spi(), RekeySpi(spi));
        let Some(Payload::Encrypted(sk)) = back.payloads.last() else {
            return Err(TestCaseError::fail("no SK payload"));
        };
        prop_assert_eq!(chain_decode(sk.first_inner, &sk.body), Ok(inner));
    }
}

// ---------------------------------------------------------------------------
// 3. Hostile input: never a panic
// ---------------------------------------------------------------------------

/// A valid encoding of some wire value.
#[derive(Clone, Debug)]
enum Sample {
    Header(IkeHeader),
    Message(Message),
    Chain(Vec<Payload>),
    Sag(SaPayload),
    Idg(GroupId),
    Gsa(Gsa),
    Kd(Kd),
    Notify(Notify),
    Delete(Delete),
    Auth(Auth),
    Attr(RawAttr),
    Ts(TrafficSelector),
}

impl Sample {
    fn bytes(&self) -> Vec<u8> {
        match self {
            Self::Header(h) => h.to_bytes(),
            Self::Message(m) => m.to_bytes(),
            Self::Chain(p) => chain_bytes(p),
            Self::Sag(v) => v.to_bytes(),
            Self::Idg(v) => v.to_bytes(),
            Self::Gsa(v) => v.to_bytes(),
            Self::Kd(v) => v.to_bytes(),
            Self::Notify(v) => v.to_bytes(),
            Self::Delete(v) => v.to_bytes(),
            Self::Auth(v) => v.to_bytes(),
            Self::Attr(v) => v.to_bytes(),
            Self::Ts(v) => v.to_bytes(),
        }
    }
}

/// Deep structures get more weight: their decoders have the most paths.
fn sample() -> impl Strategy<Value = Sample> {
    prop_oneof![
        1 => strat::header().prop_map(|mut h| { h.length = 28; Sample::Header(h) }),
        3 => strat::message().prop_map(Sample::Message),
        2 => strat::chain().prop_map(Sample::Chain),
        2 => strat::registration_response(Reg::default()).prop_map(|(_, p)| Sample::Chain(p)),
        1 => strat::gsa_rekey_request(None, None).prop_map(Sample::Chain),
        2 => strat::sag().prop_map(Sample::Sag),
        1 => strat::group_id().prop_map(Sample::Idg),
        3 => strat::gsa().prop_map(Sample::Gsa),
        3 => strat::kd().prop_map(Sample::Kd),
        1 => strat::notify().prop_map(Sample::Notify),
        1 => strat::delete().prop_map(Sample::Delete),
        1 => strat::auth().prop_map(Sample::Auth),
        1 => strat::raw_attr().prop_map(Sample::Attr),
        1 => strat::any_ts().prop_map(Sample::Ts),
    ]
}

/// One edit of an encoding. Positions are `Index`es, scaled to the length
/// at the time the edit applies.
#[derive(Clone, Debug)]
enum Mutation {
    FlipBit(Index, u8),
    SetOctet(Index, u8),
    Truncate(Index),
    Insert(Index, Vec<u8>),
    Remove(Index, usize),
    /// Overwrites a 2-octet field (most lengths are) with any value.
    SetLen16(Index, u16),
    /// Moves a 2-octet field by a little: off-by-one lengths.
    NudgeLen16(Index, i8),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<Index>(), 0u8..8).prop_map(|(i, b)| Mutation::FlipBit(i, b)),
        (any::<Index>(), any::<u8>()).prop_map(|(i, v)| Mutation::SetOctet(i, v)),
        any::<Index>().prop_map(Mutation::Truncate),
        (any::<Index>(), strat::bytes(1..9)).prop_map(|(i, v)| Mutation::Insert(i, v)),
        (any::<Index>(), 1usize..9).prop_map(|(i, n)| Mutation::Remove(i, n)),
        (any::<Index>(), any::<u16>()).prop_map(|(i, v)| Mutation::SetLen16(i, v)),
        (any::<Index>(), -4i8..=4).prop_map(|(i, d)| Mutation::NudgeLen16(i, d)),
    ]
}

fn apply(m: &Mutation, b: &mut Vec<u8>) {
    let len = b.len();
    // Positions in 0..=len for insertion, 0..len for the rest.
    let at = |i: &Index, n: usize| if n == 0 { 0 } else { i.index(n) };
    match m {
        Mutation::FlipBit(i, bit) if len > 0 => b[at(i, len)] ^= 1u8 << *bit,
        Mutation::SetOctet(i, v) if len > 0 => b[at(i, len)] = *v,
        Mutation::Truncate(i) => b.truncate(at(i, len + 1)),
        Mutation::Insert(i, v) => {
            let p = at(i, len + 1);
            b.splice(p..p, v.iter().copied());
        }
        Mutation::Remove(i, n) if len > 0 => {
            let p = at(i, len);
            b.drain(p..(p + *n).min(len));
        }
        Mutation::SetLen16(i, v) if len >= 2 => {
            let p = at(i, len - 1);
            b[p..p + 2].copy_from_slice(&v.to_be_bytes());
        }
        Mutation::NudgeLen16(i, d) if len >= 2 => {
            let p = at(i, len - 1);
            let v = u16::from_be_bytes([b[p], b[p + 1]]).wrapping_add_signed(i16::from(*d));
            b[p..p + 2].copy_from_slice(&v.to_be_bytes());
        }
        _ => {}
    }
}

proptest! {
    #![proptest_config(config(10000))]

    /// Random octets, 0..2048 of them, through every decoder.
    #[test]
    fn random_octets_never_panic(b in strat::bytes(0..2048)) {
        decode_everything(&b, &ALL_TYPES)?;
    }

    /// Random octets behind a plausible IKE header, so that `Message`
    /// decoding gets past the header's Length check.
    #[test]
    fn random_payloads_behind_a_header_never_panic(
        h in strat::header(),
        next in select(CHAIN_FIRSTS.to_vec()),
        body in strat::bytes(0..512),
    ) {
        let mut b = IkeHeader { next_payload: PayloadType(next), length: 0, ..h }.to_bytes();
        b.extend_from_slice(&body);
        let len = b.len() as u32;
        b[24..28].copy_from_slice(&len.to_be_bytes());
        decode_everything(&b, &ALL_TYPES)?;
    }
}

proptest! {
    #![proptest_config(config(30000))]

    /// Valid encodings with 1–3 random edits, through every decoder.
    #[test]
    fn mutated_encodings_never_panic(s in sample(), edits in vec(mutation(), 1..4)) {
        let mut b = s.bytes();
        for m in &edits {
            apply(m, &mut b);
        }
        decode_everything(&b, &CHAIN_FIRSTS)?;
        // A chain's own first type too, if it is an unusual one.
        if let Sample::Chain(p) = &s {
            stable_chain(first_type(p), &b)?;
            spans_agree(first_type(p), &b)?;
        }
        // Make the IKE header Length agree with the octets so Message
        // decoding reaches the payloads even after insertions/truncations.
        if b.len() >= 28 {
            let len = b.len() as u32;
            b[24..28].copy_from_slice(&len.to_be_bytes());
            stable::<Message>(&b)?;
        }
    }
}

// ---------------------------------------------------------------------------
// 4. check_exchange: the presence rules of §2.3–§2.4 and §5
// ---------------------------------------------------------------------------

fn gsa_mut(p: &mut [Payload]) -> &mut Gsa {
    p.iter_mut()
        .find_map(|p| match p {
            Payload::Gsa(g) => Some(g),
            _ => None,
        })
        .expect("a GSA payload")
}

fn kd_mut(p: &mut [Payload]) -> &mut Kd {
    p.iter_mut()
        .find_map(|p| match p {
            Payload::Kd(k) => Some(k),
            _ => None,
        })
        .expect("a KD payload")
}

/// The Member Key Bag, added empty if there is none.
fn member_mut(kd: &mut Kd) -> &mut MemberKeyBag {
    if kd.member_bag().is_none() {
        kd.bags.push(KeyBag::Member(MemberKeyBag::default()));
    }
    kd.bags
        .iter_mut()
        .find_map(|b| match b {
            KeyBag::Member(m) => Some(m),
            KeyBag::Group(_) => None,
        })
        .expect("just added")
}

/// The GW policy, added empty if there is none.
fn gw_mut(gsa: &mut Gsa) -> &mut GwPolicy {
    if gsa.group_wide().is_none() {
        gsa.policies
            .push(GroupPolicy::GroupWide(GwPolicy::default()));
    }
    gsa.policies
        .iter_mut()
        .find_map(|p| match p {
            GroupPolicy::GroupWide(g) => Some(g),
            GroupPolicy::Sa(_) => None,
        })
        .expect("just added")
}

fn kek_mut(gsa: &mut Gsa) -> &mut GsaPolicy {
    gsa.policies
        .iter_mut()
        .find_map(|p| match p {
            GroupPolicy::Sa(s) if matches!(s.sa, SaRef::Rekey(_)) => Some(s),
            _ => None,
        })
        .expect("a KEK policy")
}

/// Fails unless `r` is the error `variant` naming a field containing `word`:
/// the rule under test, not another one, must be what fired.
fn rejected(
    r: Result<(), DecodeError>,
    variant: fn(&DecodeError) -> bool,
    word: &str,
) -> Result<(), TestCaseError> {
    prop_assert!(
        r.as_ref().is_err_and(variant) && what(&r).is_some_and(|w| w.contains(word)),
        "expected a rejection naming {:?}, got {:?}",
        word,
        r
    );
    Ok(())
}

/// The field a decode error names.
fn what<T>(r: &Result<T, DecodeError>) -> Option<&'static str> {
    match r {
        Err(
            DecodeError::Truncated { what, .. }
            | DecodeError::BadLength { what, .. }
            | DecodeError::TrailingData { what, .. }
            | DecodeError::BadValue { what, .. }
            | DecodeError::AttrFormat { what, .. }
            | DecodeError::Duplicate { what }
            | DecodeError::Missing { what }
            | DecodeError::NotAllowed { what, .. },
        ) => Some(what),
        _ => None,
    }
}

fn missing(e: &DecodeError) -> bool {
    matches!(e, DecodeError::Missing { .. })
}

fn not_allowed(e: &DecodeError) -> bool {
    matches!(e, DecodeError::NotAllowed { .. })
}

proptest! {
    #![proptest_config(config(256))]

    // --- valid messages pass, also after a trip over the wire -------------

    /// Figures 4 and 6 with Table 2 or Table 3.
    #[test]
    fn valid_registration_response_passes((ex, p) in strat::registration_response(Reg::default())) {
        prop_assert_eq!(check_exchange(ex, Direction::Response, &p), Ok(()));
        let back = chain_round_trip(&p)?;
        prop_assert_eq!(check_exchange(ex, Direction::Response, &back), Ok(()));
    }

    /// Figures 3 and 6.
    #[test]
    fn valid_registration_request_passes((ex, p) in strat::registration_request()) {
        prop_assert_eq!(check_exchange(ex, Direction::Request, &p), Ok(()));
        let back = chain_round_trip(&p)?;
        prop_assert_eq!(check_exchange(ex, Direction::Request, &back), Ok(()));
    }

    /// Figures 5, 7 and 8: error responses and the empty response.
    #[test]
    fn registration_error_response_passes(
        ex in strat::registration_exchange(),
        t in select(vec![
            NotifyType::INVALID_GROUP_ID,
            NotifyType::AUTHORIZATION_FAILED,
            NotifyType::REGISTRATION_FAILED,
            NotifyType::NO_PROPOSAL_CHOSEN,
        ]),
        empty in any::<bool>(),
    ) {
        let p = if empty { vec![] } else { vec![Payload::Notify(Notify::plain(t))] };
        prop_assert_eq!(check_exchange(ex, Direction::Response, &p), Ok(()));
    }

    /// Figures 9 and 12 with Table 2.
    #[test]
    fn valid_gsa_rekey_passes(p in strat::gsa_rekey_request(None, None)) {
        prop_assert_eq!(check_exchange(ExchangeType::GSA_REKEY, Direction::Request, &p), Ok(()));
        let back = chain_round_trip(&p)?;
        prop_assert_eq!(check_exchange(ExchangeType::GSA_REKEY, Direction::Request, &back), Ok(()));
    }

    /// Figures 11 and 13 with Table 3.
    #[test]
    fn valid_inband_rekey_passes(p in strat::inband_rekey_request()) {
        let ex = ExchangeType::GSA_INBAND_REKEY;
        prop_assert_eq!(check_exchange(ex, Direction::Request, &p), Ok(()));
        let back = chain_round_trip(&p)?;
        prop_assert_eq!(check_exchange(ex, Direction::Request, &back), Ok(()));
        // Figure 11: the GM answers with SK{}.
        prop_assert_eq!(check_exchange(ex, Direction::Response, &[]), Ok(()));
    }

    // --- targeted violations ----------------------------------------------

    /// §4.5.3.3 and §2.4.1: GM_SENDER_ID MUST NOT appear in rekey
    /// operations (Table 2, GSA_REKEY column: "-").
    #[test]
    fn gm_sender_id_in_gsa_rekey_rejected(
        mut p in strat::gsa_rekey_request(Some(true), None),
        id in any::<u32>(),
    ) {
        member_mut(kd_mut(&mut p)).sender_ids.push(id);
        rejected(check_exchange(ExchangeType::GSA_REKEY, Direction::Request, &p),
                 not_allowed, "GM_SENDER_ID")?;
    }

    /// §4.4.2.1.1 and Figure 16 note (**): GCAUTH only appears at
    /// registration, never in GSA_REKEY. The policy is still wire-valid:
    /// the rule belongs to the exchange.
    #[test]
    fn gcauth_in_gsa_rekey_rejected(
        mut p in strat::gsa_rekey_request(Some(true), Some(true)),
        gc in prop_oneof![strat::gcauth(strat::Gc::Implicit), strat::gcauth(strat::Gc::Signature)]
            .prop_map(Option::unwrap),
    ) {
        let gsa = gsa_mut(&mut p);
        kek_mut(gsa).transforms.push(gc);
        prop_assert!(Gsa::from_bytes(&gsa.to_bytes()).is_ok());
        rejected(check_exchange(ExchangeType::GSA_REKEY, Direction::Request, &p),
                 not_allowed, "GCAUTH")?;
    }

    /// Table 2 (GSA_KEY_LIFETIME is "S" at registration) and §4.4.2.2.1:
    /// with a Rekey SA every GSA policy carries one lifetime.
    #[test]
    fn missing_lifetime_with_kek_at_registration_rejected(
        (ex, mut p) in strat::registration_response(Reg { multicast: Some(true), ..Reg::default() }),
        which in any::<Index>(),
    ) {
        let mut policies: Vec<&mut GsaPolicy> = gsa_mut(&mut p)
            .policies
            .iter_mut()
            .filter_map(|g| match g { GroupPolicy::Sa(s) => Some(s), _ => None })
            .collect();
        let n = policies.len();
        policies[which.index(n)].attrs.retain(|a| !matches!(a, GsaAttr::KeyLifetime(_)));
        rejected(check_exchange(ex, Direction::Response, &p), missing, "GSA_KEY_LIFETIME")?;
    }

    /// §4.4.2.1.1 (Implicit: "the GCKS MUST NOT include the AUTH_KEY
    /// attribute") and Table 2 note (4).
    #[test]
    fn auth_key_with_implicit_gcauth_rejected(
        (ex, mut p) in strat::registration_response(
            Reg { multicast: Some(true), signed: Some(false), ..Reg::default() }),
        key in strat::der_seq(),
    ) {
        member_mut(kd_mut(&mut p)).auth_key = Some(key);
        rejected(check_exchange(ex, Direction::Response, &p), not_allowed, "AUTH_KEY")?;
    }

    /// The converse of Table 2 note (4): Digital Signature needs AUTH_KEY
    /// at registration.
    #[test]
    fn signature_gcauth_without_auth_key_rejected(
        (ex, mut p) in strat::registration_response(
            Reg { multicast: Some(true), signed: Some(true), ..Reg::default() }),
    ) {
        member_mut(kd_mut(&mut p)).auth_key = None;
        rejected(check_exchange(ex, Direction::Response, &p), not_allowed, "AUTH_KEY")?;
    }

    /// Tables 2 and 3 note (1): GWP_SENDER_ID_BITS is present exactly when
    /// GM_SENDER_IDs are.
    #[test]
    fn sender_id_bits_without_gm_sender_id_rejected(
        (ex, mut p) in strat::registration_response(Reg { sender: Some(false), ..Reg::default() }),
        bits in 1u16..=32,
    ) {
        gw_mut(gsa_mut(&mut p)).sender_id_bits = Some(bits);
        rejected(check_exchange(ex, Direction::Response, &p), not_allowed, "GWP_SENDER_ID_BITS")?;
    }

    /// The converse of note (1): Sender-IDs need the bit count.
    #[test]
    fn gm_sender_id_without_bits_rejected(
        (ex, mut p) in strat::registration_response(Reg { sender: Some(true), ..Reg::default() }),
    ) {
        gw_mut(gsa_mut(&mut p)).sender_id_bits = None;
        rejected(check_exchange(ex, Direction::Response, &p), not_allowed, "GM_SENDER_ID")?;
    }

    /// §2.3.1 Figure 4, §2.3.2 Figure 6, §2.4.1 Figure 9, §2.4.2 Figure 11:
    /// GSA and KD always travel together.
    #[test]
    fn gsa_without_kd_rejected(
        (ex, mut p) in strat::registration_response(Reg::default()),
        drop_kd in any::<bool>(),
    ) {
        p.retain(|x| !matches!((x, drop_kd), (Payload::Kd(_), true) | (Payload::Gsa(_), false)));
        rejected(check_exchange(ex, Direction::Response, &p), missing, "GSA and KD")?;
    }

    /// §2.3.1 Figure 3 and §2.3.2 Figure 6: a registration request names
    /// its group in exactly one IDg.
    #[test]
    fn registration_request_without_idg_rejected(
        (ex, mut p) in strat::registration_request(),
        extra in strat::group_id(),
        twice in any::<bool>(),
    ) {
        if twice {
            p.push(Payload::Idg(extra));
        } else {
            p.retain(|x| !matches!(x, Payload::Idg(_)));
        }
        rejected(check_exchange(ex, Direction::Request, &p), missing, "IDg")?;
    }

    /// Table 3 (WRAP_KEY "-") and §4.5.3.1: "This attribute MUST NOT be
    /// used if inband rekey ... is employed".
    #[test]
    fn wrap_key_in_inband_rekey_rejected(
        (gsa, kd) in strat::rekey_gsa_kd(false, None),
        k in strat::wrap_key(),
    ) {
        let mut p = vec![Payload::Gsa(gsa), Payload::Kd(kd)];
        member_mut(kd_mut(&mut p)).wrap_keys.push(k);
        rejected(check_exchange(ExchangeType::GSA_INBAND_REKEY, Direction::Request, &p),
                 not_allowed, "WRAP_KEY")?;
    }

    /// Table 3 (GSA_NEXT_SPI "-"): no next SPIs with inband rekey, neither
    /// at registration nor in GSA_INBAND_REKEY.
    #[test]
    fn next_spi_without_rekey_sa_rejected(
        (ex, mut p) in strat::registration_response(Reg { multicast: Some(false), ..Reg::default() }),
        spi in any::<[u8; 4]>(),
    ) {
        let tek = gsa_mut(&mut p)
            .policies
            .iter_mut()
            .find_map(|g| match g { GroupPolicy::Sa(s) => Some(s), _ => None })
            .expect("a TEK");
        tek.attrs.push(GsaAttr::NextSpi(spi.to_vec()));
        rejected(check_exchange(ex, Direction::Response, &p), not_allowed, "GSA_NEXT_SPI")?;
    }
}

// ---------------------------------------------------------------------------
// Decoders enforce the constraints the generators respect
// ---------------------------------------------------------------------------

proptest! {
    #![proptest_config(config(64))]

    /// §4.4.2.1.3: ESN MUST NOT be used for multicast ESP/AH SAs.
    #[test]
    fn esn_rejected(spi in 256u32.., ah in any::<bool>()) {
        let sa = if ah { SaRef::Ah(spi) } else { SaRef::Esp(spi) };
        let mut t = vec![Transform::sn(SnId::ESN)];
        t.push(if ah { Transform::integ(IntegId::AUTH_HMAC_SHA2_256_128) }
               else { Transform::encr(EncrId::ENCR_AES_GCM_16, Some(128)) });
        let p = GsaPolicy {
            sa,
            src: TrafficSelector::addr("192.0.2.1".parse().unwrap()),
            dst: TrafficSelector::addr("239.0.0.1".parse().unwrap()),
            transforms: t,
            attrs: vec![],
        };
        let gsa = Gsa { policies: vec![GroupPolicy::Sa(p)] };
        let r = Gsa::from_bytes(&gsa.to_bytes());
        prop_assert_eq!(what(&r), Some("SN transform"), "{:?}", r);
    }

    /// §4.4.2: the Rekey SA destination must be one multicast address, UDP
    /// and one port; break any one of the three.
    #[test]
    fn rekey_destination_checked(
        (gsa, _) in strat::rekey_gsa_kd(true, Some(true)),
        how in 0u8..3,
    ) {
        let mut gsa = gsa;
        let kek = kek_mut(&mut gsa);
        match how {
            0 => kek.dst.ip_protocol = 6,
            1 => (kek.dst.start_port, kek.dst.end_port) = (0, u16::MAX),
            _ => kek.dst.addrs = match kek.dst.addrs {
                AddrRange::V4(..) => AddrRange::V4([192, 0, 2, 1].into(), [192, 0, 2, 1].into()),
                AddrRange::V6(..) => AddrRange::V6(Ipv6Addr::LOCALHOST, Ipv6Addr::LOCALHOST),
            },
        }
        let r = Gsa::from_bytes(&gsa.to_bytes());
        prop_assert_eq!(what(&r), Some("Rekey SA destination traffic selector"), "{:?}", r);
    }

    /// §4.4.2: the GCKS MUST NOT distribute both ESP and AH policies for the
    /// same Traffic Selectors.
    #[test]
    fn esp_and_ah_for_same_selectors_rejected(
        (gsa, _) in strat::rekey_gsa_kd(false, None),
        spi in 256u32..,
    ) {
        let mut gsa = gsa;
        let tek = gsa.teks().next().expect("inband rekey has TEKs").clone();
        let other = match tek.sa {
            SaRef::Esp(_) => GsaPolicy {
                sa: SaRef::Ah(spi),
                transforms: vec![Transform::integ(IntegId::AUTH_HMAC_SHA2_256_128),
                                 Transform::sn(SnId::SEQ32)],
                ..tek
            },
            _ => GsaPolicy {
                sa: SaRef::Esp(spi),
                transforms: vec![Transform::encr(EncrId::ENCR_AES_GCM_16, Some(256)),
                                 Transform::sn(SnId::SEQ32)],
                ..tek
            },
        };
        gsa.policies.push(GroupPolicy::Sa(other));
        let r = Gsa::from_bytes(&gsa.to_bytes());
        let clash = matches!(r, Err(DecodeError::NotAllowed { what: "GSA TEK policies", .. }));
        prop_assert!(clash, "got {:?}", r);
    }
}

proptest! {
    #![proptest_config(config(256))]

    /// §4.2 / RFC 7296 §3.5: address IDs have their address's length, and
    /// no ID is empty.
    #[test]
    fn idg_lengths_checked(
        ty in select(vec![IdType::ID_IPV4_ADDR, IdType::ID_IPV6_ADDR, IdType::ID_KEY_ID]),
        data in strat::bytes(0..24),
    ) {
        let ok = match ty {
            IdType::ID_IPV4_ADDR => data.len() == 4,
            IdType::ID_IPV6_ADDR => data.len() == 16,
            _ => !data.is_empty(),
        };
        let id = GroupId { id_type: ty, data };
        prop_assert_eq!(GroupId::from_bytes(&id.to_bytes()).is_ok(), ok);
    }
}

/// §2.7: implicit-IV transforms MUST NOT be used.
#[test]
fn implicit_iv_rejected() {
    for id in [
        EncrId::ENCR_AES_CCM_8_IIV,
        EncrId::ENCR_AES_GCM_16_IIV,
        EncrId::ENCR_CHACHA20_POLY1305_IIV,
    ] {
        let p = GsaPolicy {
            sa: SaRef::Esp(0x1000),
            src: TrafficSelector::addr("192.0.2.1".parse().unwrap()),
            dst: TrafficSelector::addr("239.0.0.1".parse().unwrap()),
            transforms: vec![Transform::encr(id, None), Transform::sn(SnId::SEQ32)],
            attrs: vec![],
        };
        let b = Gsa {
            policies: vec![GroupPolicy::Sa(p)],
        }
        .to_bytes();
        let r = Gsa::from_bytes(&b);
        assert_eq!(what(&r), Some("ENCR transform"), "{id:?}: {r:?}");
    }
}

// ---------------------------------------------------------------------------
// Defects found by these properties, now fixed: their reproductions
// ---------------------------------------------------------------------------

/// RFC 9838 §2.4.1.2 allows IKE fragmentation (RFC 7383) of GSA_REKEY.
/// The first fragment's Encrypted Fragment payload carries, like SK, the
/// type of the first inner payload in its Next Payload field (RFC 7383
/// §2.5) and ends the chain. `read_chain` treats SKF as an ordinary opaque
/// payload and follows that Next Payload past the end of the message.
#[test]
fn first_fragment_of_a_gsa_rekey_decodes() {
    let mut b = IkeHeader::rekey(RekeySpi([7; 16]), 0).to_bytes();
    b[16] = PayloadType::SKF.0;
    // SKF: Next Payload = GSA (first inner payload), Length 24,
    // Fragment Number 1, Total Fragments 2, then IV | ciphertext | ICV.
    b.extend_from_slice(&[PayloadType::GSA.0, 0, 0, 24, 0, 1, 0, 2]);
    b.extend_from_slice(&[0xaa; 16]);
    let len = b.len() as u32;
    b[24..28].copy_from_slice(&len.to_be_bytes());
    let r = Message::from_bytes(&b);
    assert!(r.is_ok(), "{r:?}");
}

/// §4.4.2.1.1 obliges the GCKS to put a Signature Algorithm Identifier in
/// the GCAUTH transform of a GSA policy. An SAg only says what the GM
/// supports (§2.3.3); nothing requires the attribute there, yet the shared
/// transform reader refuses Digital Signature without it in SAg as well.
#[test]
fn sag_may_offer_digital_signature_without_an_algorithm() {
    let sag = SaPayload {
        proposals: vec![Proposal {
            num: 1,
            protocol: ProtocolId::GIKE_UPDATE,
            spi: vec![],
            transforms: vec![
                Transform::encr(EncrId::ENCR_AES_GCM_16, Some(256)),
                Transform::kwa(KwaId::KW_5649_256),
                Transform::new(TransformType::GCAUTH, 2),
            ],
        }],
    };
    assert_eq!(SaPayload::from_bytes(&sag.to_bytes()), Ok(sag));
}

/// An empty SPI list must never read back as "delete the whole group"
/// (§4.6): it encodes as zero SPIs of its protocol, which decoders refuse.
#[test]
fn empty_delete_never_means_the_whole_group() {
    for d in [
        Delete::Esp(vec![]),
        Delete::Ah(vec![]),
        Delete::Rekey(vec![]),
    ] {
        let r = Delete::from_bytes(&d.to_bytes());
        assert!(
            matches!(r, Err(DecodeError::Missing { .. })),
            "{d:?}: {r:?}"
        );
    }
    // Each protocol travels in its own payload.
    let sas = [
        SaRef::Esp(0x1000),
        SaRef::Rekey(RekeySpi([1; 16])),
        SaRef::Esp(7),
    ];
    let payloads = Delete::for_sas(&sas);
    assert_eq!(payloads.len(), 2);
    for d in payloads {
        assert_eq!(Delete::from_bytes(&d.to_bytes()), Ok(d));
    }
}

/// GM_SENDER_ID was once read from 1 to 4 octets but written as 4, so a
/// decoded Member Key Bag could grow past 65535 octets on re-encoding.
/// One-octet IDs are now refused; four-octet ones re-encode as received.
#[test]
fn decoded_kd_re_encodes() {
    let mut b = vec![0, 0, 0, 0];
    b.extend_from_slice(&[0, 3, 0, 1, 9]);
    b[3] = b.len() as u8;
    assert!(Kd::from_bytes(&b).is_err(), "one-octet GM_SENDER_ID");
    let mut b = vec![0, 0, 0, 0];
    for i in 0..8000u32 {
        b.extend_from_slice(&[0, 3, 0, 4]);
        b.extend_from_slice(&i.to_be_bytes());
    }
    let len = u16::try_from(b.len()).unwrap();
    b[2..4].copy_from_slice(&len.to_be_bytes());
    let kd = Kd::from_bytes(&b).expect("a valid KD body");
    assert_eq!(kd.to_bytes(), b);
}
