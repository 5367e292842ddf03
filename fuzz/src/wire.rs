//! The wire decoders: whole messages, payload chains and every payload and
//! substructure body. Each must refuse what it cannot read with an error,
//! never a panic, and whatever it accepts must survive a round trip:
//! decode(encode(decode(x))) == decode(x).

use core::fmt::Debug;

use gikev2::iana::{ExchangeType, PayloadType};
use gikev2::rekey_message;
use gikev2::wire::{
    Auth, Codec, Delete, Direction, GroupId, Gsa, IkeHeader, Kd, Message, Notify, Payload, RawAttr,
    Reader, SaPayload, TrafficSelector, chain_spans, check_exchange, encode_chain, read_chain,
};

use super::input::Input;

/// Every exchange the rules know, and one they do not.
const EXCHANGES: [ExchangeType; 6] = [
    ExchangeType::GSA_AUTH,
    ExchangeType::GSA_REGISTRATION,
    ExchangeType::GSA_REKEY,
    ExchangeType::GSA_INBAND_REKEY,
    ExchangeType::IKE_AUTH,
    ExchangeType(0),
];

/// decode(encode(v)) == v, and the encoding is stable.
fn round_trip<T: Codec + PartialEq + Debug>(v: &T) {
    let b = v.to_bytes();
    let again =
        T::from_bytes(&b).unwrap_or_else(|e| panic!("re-encoding of {v:?} does not decode: {e}"));
    assert_eq!(&again, v, "round trip changed the value");
    assert_eq!(again.to_bytes(), b, "encoding is not stable");
}

fn decode<T: Codec + PartialEq + Debug>(b: &[u8]) -> Option<T> {
    let v = T::from_bytes(b).ok()?;
    round_trip(&v);
    Some(v)
}

/// The presence rules over every exchange and direction: never a panic.
fn check_all_exchanges(payloads: &[Payload]) {
    for e in EXCHANGES {
        for d in [Direction::Request, Direction::Response] {
            if let Err(err) = check_exchange(e, d, payloads) {
                let _ = err.to_string();
                let _ = err.notify_type();
            }
        }
    }
}

/// A whole datagram: `Message` and the GSA_REKEY header peek.
pub fn wire_message(data: &[u8]) {
    let _ = rekey_message::peek(data);
    let _ = IkeHeader::from_bytes(data.get(..28).unwrap_or(data));
    match Message::from_bytes(data) {
        Ok(m) => {
            let b = m.to_bytes();
            let again = Message::from_bytes(&b).expect("re-encoded message decodes");
            assert_eq!(again, m);
            assert_eq!(again.to_bytes(), b);
            assert_eq!(b.len(), data.len(), "a decoded message keeps its size");
            check_all_exchanges(&m.payloads);
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

/// A payload chain: the first octet is the first payload's type.
pub fn wire_chain(data: &[u8]) {
    let mut inp = Input::new(data);
    let first = PayloadType(inp.u8());
    let chain = inp.rest();
    let spans = chain_spans(first, chain);
    let Ok(payloads) = read_chain(first, &mut Reader::new(chain)) else {
        return;
    };
    let mut b = Vec::new();
    encode_chain(&payloads, &mut b);
    let ty = payloads.first().map_or(PayloadType::NONE, Payload::ty);
    let again = read_chain(ty, &mut Reader::new(&b)).expect("re-encoded chain decodes");
    assert_eq!(again, payloads);
    let encrypted = payloads
        .iter()
        .any(|p| matches!(p, Payload::Encrypted(_) | Payload::EncryptedFragment(_)));
    if !encrypted {
        // What read_chain accepts, chain_spans splits the same way.
        let spans = spans.expect("chain_spans accepts what read_chain does");
        assert_eq!(spans.len(), payloads.len());
        for ((t, _), p) in spans.iter().zip(&payloads) {
            assert_eq!(*t, p.ty());
        }
        assert_eq!(spans.last().map_or(0, |(_, r)| r.end), chain.len());
    }
    check_all_exchanges(&payloads);
    for p in &payloads {
        match p {
            Payload::Gsa(g) => {
                let _ = (g.kek(), g.teks().count(), g.group_wide());
            }
            Payload::Kd(k) => {
                let _ = k.member_bag();
                for bag in k.group_bags() {
                    assert!(k.bag_for(&bag.sa).is_some());
                }
            }
            Payload::Notify(n) => {
                let _ = (n.sender_id_count(), n.is_error());
            }
            Payload::Delete(d) => {
                let _ = Delete::for_sas(&d.sas());
            }
            _ => {}
        }
    }
}

/// One payload or substructure body; the first octet picks the decoder.
pub fn wire_payloads(data: &[u8]) {
    let mut inp = Input::new(data);
    let which = inp.u8();
    let b = inp.rest();
    match which % 11 {
        0 => drop(decode::<IkeHeader>(b)),
        1 => drop(decode::<SaPayload>(b)),
        2 => drop(decode::<GroupId>(b)),
        3 => {
            if let Some(g) = decode::<Gsa>(b) {
                for p in g.sa_policies() {
                    let _ = (p.key_lifetime(), p.initial_message_id(), p.encr());
                    let _ = p.next_spis().count();
                }
            }
        }
        4 => drop(decode::<Kd>(b)),
        5 => drop(decode::<Notify>(b)),
        6 => {
            if let Some(d) = decode::<Delete>(b) {
                // The SAs named say the same thing re-grouped.
                let sas = d.sas();
                if !sas.is_empty() {
                    assert_eq!(Delete::for_sas(&sas), vec![d]);
                }
            }
        }
        7 => drop(decode::<Auth>(b)),
        8 => drop(decode::<TrafficSelector>(b)),
        9 => drop(decode::<RawAttr>(b)),
        _ => {
            // A run of attributes as the registries read them.
            let mut r = Reader::new(b);
            while let Ok(a) = RawAttr::read(&mut r) {
                round_trip(&a);
                let _ = (a.expect_tv("x"), a.expect_u32("x"));
            }
        }
    }
}
