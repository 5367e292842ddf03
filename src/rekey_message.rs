//! Sealing and opening GSA_REKEY messages (§2.4.1): `HDR, SK{GSA, KD, [N,]
//! [AUTH]}` protected with the Rekey SA's keys, and signed over the A | P
//! chunks of Figure 10 when the GCKS authenticates with signatures.

use core::fmt;

use crate::crypto::{
    CryptoError, Rng, SigningKey, SkProtection, VerifyingKey, auth_data, parse_auth_data,
};
use crate::iana::{
    AuthMethod, ExchangeType, FLAG_RESPONSE, GENERIC_PAYLOAD_HEADER_LEN, IKE_HEADER_LEN,
    PayloadType,
};
use crate::wire::{
    Auth, Codec, DecodeError, Direction, IkeHeader, Payload, Reader, RekeySpi, chain_spans,
    check_exchange, encode_chain, read_chain,
};

/// Octets before the IV: the IKE header and the SK payload's header.
const A_LEN: usize = IKE_HEADER_LEN + GENERIC_PAYLOAD_HEADER_LEN;

/// How the GCKS authenticates its GSA_REKEY messages (GCAUTH, §4.4.2.1.1).
#[derive(Clone, Copy, Debug)]
pub enum RekeySigner<'a> {
    /// No AUTH payload: decrypting and checking the ICV is the proof.
    Implicit,
    DigitalSignature(&'a SigningKey),
}

/// How a GM checks GSA_REKEY authenticity: with the AUTH_KEY it holds.
#[derive(Clone, Copy, Debug)]
pub enum RekeyVerifier<'a> {
    Implicit,
    DigitalSignature(&'a VerifyingKey),
}

/// Why a GSA_REKEY message was refused.
#[derive(Debug)]
#[non_exhaustive]
pub enum RekeyError {
    /// Not a well-formed GSA_REKEY message.
    Decode(DecodeError),
    /// Decryption, ICV or signature failure.
    Crypto(CryptoError),
    /// The AUTH payload is missing, or present under implicit GCAUTH (M018).
    AuthPresence { expected: bool },
    /// The AUTH payload's method or algorithm is not the group's (§4.4.2.1.1).
    AuthAlgorithm(&'static str),
}

impl fmt::Display for RekeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Decode(e) => write!(f, "malformed GSA_REKEY: {e}"),
            Self::Crypto(e) => write!(f, "GSA_REKEY protection: {e}"),
            Self::AuthPresence { expected: true } => {
                f.write_str("GSA_REKEY lacks the AUTH payload its group requires")
            }
            Self::AuthPresence { expected: false } => {
                f.write_str("GSA_REKEY carries AUTH although GCAUTH is implicit")
            }
            Self::AuthAlgorithm(why) => write!(f, "GSA_REKEY AUTH payload: {why}"),
        }
    }
}

impl std::error::Error for RekeyError {}

impl From<DecodeError> for RekeyError {
    fn from(e: DecodeError) -> Self {
        Self::Decode(e)
    }
}

impl From<CryptoError> for RekeyError {
    fn from(e: CryptoError) -> Self {
        Self::Crypto(e)
    }
}

/// A GSA_REKEY message that passed decryption, ICV, authentication and the
/// §5 presence rules. The Message ID is not yet checked for replay: that
/// needs the GM's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenedRekey {
    pub spi: RekeySpi,
    pub message_id: u32,
    /// Inner payloads, AUTH included if present.
    pub payloads: Vec<Payload>,
}

/// The Rekey SA SPI and Message ID of a datagram, read before any crypto
/// so the GM can find the SA (and drop replays) cheaply.
pub fn peek(datagram: &[u8]) -> Result<(RekeySpi, u32), DecodeError> {
    let h = IkeHeader::read(&mut Reader::new(datagram))?;
    if h.exchange != ExchangeType::GSA_REKEY {
        return Err(DecodeError::UnexpectedExchange(h.exchange));
    }
    Ok((h.rekey_spi(), h.message_id))
}

/// Builds a GSA_REKEY message: `inner` are the payloads inside SK (GSA, KD,
/// Delete, Notify) without AUTH, which this function adds when signing.
/// Deterministic given `rng`, so a retransmission can be kept and resent
/// bitwise identical (M023).
pub fn seal(
    spi: RekeySpi,
    message_id: u32,
    inner: &[Payload],
    signer: RekeySigner<'_>,
    sk: &SkProtection,
    rng: &mut dyn Rng,
) -> Result<Vec<u8>, RekeyError> {
    let mut payloads = inner.to_vec();
    let first = payloads
        .first()
        .map(Payload::ty)
        .ok_or(DecodeError::Missing {
            what: "payloads of GSA_REKEY",
        })?;
    let mut plain = Vec::new();
    if let RekeySigner::DigitalSignature(key) = signer {
        plain = signed_payloads(spi, message_id, &mut payloads, key)?;
    } else {
        encode_chain(&payloads, &mut plain);
    }
    check_exchange(ExchangeType::GSA_REKEY, Direction::Request, &payloads)?;

    let sealed_len = sk.sealed_len(plain.len());
    let mut msg = header_bytes(spi, message_id, first, A_LEN + sealed_len);
    let body = sk.seal(&msg, &plain, rng)?;
    debug_assert_eq!(body.len(), sealed_len);
    msg.extend_from_slice(&body);
    Ok(msg)
}

/// The IKE header and SK payload header with the given total length; with
/// `total = A_LEN + len(P)` this is the A chunk of Figure 10.
fn header_bytes(spi: RekeySpi, message_id: u32, first: PayloadType, total: usize) -> Vec<u8> {
    let mut h = IkeHeader::rekey(spi, message_id);
    h.length = u32::try_from(total).expect("GSA_REKEY longer than 4 GiB");
    let mut out = h.to_bytes();
    let sk_len = u16::try_from(total - IKE_HEADER_LEN).expect("SK payload longer than 65535");
    out.push(first.0);
    out.push(0);
    out.extend_from_slice(&sk_len.to_be_bytes());
    out
}

/// Appends the AUTH payload to `payloads` and returns the encoded inner
/// payloads with the signature of §2.4.1.1 in place.
fn signed_payloads(
    spi: RekeySpi,
    message_id: u32,
    payloads: &mut Vec<Payload>,
    key: &SigningKey,
) -> Result<Vec<u8>, RekeyError> {
    let alg = key.alg();
    let sig_len = key.signature_len();
    // Sign over the payloads with the signature value zeroed but every
    // length final; ECDSA's DER signatures vary in length, so retry until
    // one has the length the zeroed placeholder assumed.
    for _ in 0..64 {
        payloads.retain(|p| !matches!(p, Payload::Auth(_)));
        payloads.push(Payload::Auth(Auth {
            method: AuthMethod::DIGITAL_SIGNATURE,
            data: auth_data(alg, &vec![0; sig_len]),
        }));
        let mut p = Vec::new();
        encode_chain(payloads, &mut p);
        let first = payloads[0].ty();
        let mut data = header_bytes(spi, message_id, first, A_LEN + p.len());
        data.extend_from_slice(&p);
        let sig = key.sign(&data)?;
        if sig.len() != sig_len {
            continue;
        }
        let sig_at = p.len() - sig_len;
        p[sig_at..].copy_from_slice(&sig);
        *payloads.last_mut().expect("AUTH just pushed") = Payload::Auth(Auth {
            method: AuthMethod::DIGITAL_SIGNATURE,
            data: auth_data(alg, &sig),
        });
        return Ok(p);
    }
    Err(CryptoError::Malformed("no signature of the expected length").into())
}

/// Opens a GSA_REKEY datagram (without the four zero octets of port 4500):
/// decrypts and checks the ICV with the current KEK, decodes and checks the
/// inner payloads, and verifies the AUTH payload as the group requires.
pub fn open(
    datagram: &[u8],
    sk: &SkProtection,
    verifier: RekeyVerifier<'_>,
) -> Result<OpenedRekey, RekeyError> {
    let mut r = Reader::new(datagram);
    let header = IkeHeader::read(&mut r)?;
    if header.exchange != ExchangeType::GSA_REKEY {
        return Err(DecodeError::UnexpectedExchange(header.exchange).into());
    }
    if header.flags & FLAG_RESPONSE != 0 {
        return Err(DecodeError::BadValue {
            what: "Flags",
            value: header.flags.into(),
            reason: "GSA_REKEY is never a response",
        }
        .into());
    }
    if header.length as usize != datagram.len() {
        return Err(DecodeError::BadLength {
            what: "IKE header Length",
            len: header.length as usize,
            reason: "differs from the datagram's size",
        }
        .into());
    }
    if header.next_payload != PayloadType::SK {
        return Err(DecodeError::Missing {
            what: "Encrypted payload as GSA_REKEY's only payload",
        }
        .into());
    }
    let first = PayloadType(r.u8("Next Payload")?);
    r.u8("Payload flags")?;
    let sk_len = r.u16("Payload Length")?;
    if usize::from(sk_len) != datagram.len() - IKE_HEADER_LEN {
        return Err(DecodeError::BadLength {
            what: "Encrypted payload Length",
            len: sk_len.into(),
            reason: "the SK payload must end the message",
        }
        .into());
    }
    let mut plain = sk.open(&datagram[..A_LEN], &datagram[A_LEN..])?;
    let payloads = read_chain(first, &mut Reader::new(&plain))?;
    check_exchange(ExchangeType::GSA_REKEY, Direction::Request, &payloads)?;

    let auth = payloads.iter().find_map(|p| match p {
        Payload::Auth(a) => Some(a),
        _ => None,
    });
    match (verifier, auth) {
        (RekeyVerifier::Implicit, None) => {}
        (RekeyVerifier::Implicit, Some(_)) => {
            return Err(RekeyError::AuthPresence { expected: false });
        }
        (RekeyVerifier::DigitalSignature(_), None) => {
            return Err(RekeyError::AuthPresence { expected: true });
        }
        (RekeyVerifier::DigitalSignature(key), Some(auth)) => {
            if auth.method != AuthMethod::DIGITAL_SIGNATURE {
                return Err(RekeyError::AuthAlgorithm(
                    "Auth Method is not Digital Signature",
                ));
            }
            let (alg, sig) = parse_auth_data(&auth.data)?;
            if alg != key.alg() {
                return Err(RekeyError::AuthAlgorithm(
                    "AlgorithmIdentifier differs from the group's",
                ));
            }
            let sig = sig.to_vec();
            // A | P with AdjustedLen and AdjustedPldLen, the signature
            // value zeroed in the AUTH payload as received.
            let (_, span) = chain_spans(first, &plain)?
                .into_iter()
                .find(|(t, _)| *t == PayloadType::AUTH)
                .ok_or(DecodeError::Missing {
                    what: "AUTH payload",
                })?;
            plain[span.end - sig.len()..span.end].fill(0);
            let mut data = datagram[..A_LEN].to_vec();
            let adjusted = (A_LEN + plain.len()) as u32;
            data[24..28].copy_from_slice(&adjusted.to_be_bytes());
            let adjusted_pld = (GENERIC_PAYLOAD_HEADER_LEN + plain.len()) as u16;
            data[30..32].copy_from_slice(&adjusted_pld.to_be_bytes());
            data.extend_from_slice(&plain);
            key.verify(&data, &sig)?;
        }
    }
    Ok(OpenedRekey {
        spi: header.rekey_spi(),
        message_id: header.message_id,
        payloads,
    })
}
