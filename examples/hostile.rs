//! Hostile network input for running charons: IKE messages of the G-IKEv2
//! exchanges (GSA_AUTH 39, GSA_REGISTRATION 40, GSA_INBAND_REKEY 42) with
//! unknown SPIs or, encrypted and integrity-protected with a real IKE SA's
//! keys (a line of the `ikev2_decryption_table` strongSwan's save-keys
//! plugin writes), with hostile inner payloads; truncated, bit-flipped,
//! oversized, with lying length fields, old or future Message IDs; and
//! captured datagrams (GSA_REKEY from a group's segment, or an IKE message
//! this tool sent) replayed, altered or padded.
//!
//! ```text
//! cargo build --release --example hostile
//! hostile ike --from ADDR[:PORT] --to ADDR:PORT (--keys TABLE [--index N] --as gm|gcks | --unknown-spi)
//!     [--exchange N] [--message-id N] [--response] [--payloads KIND] [--group ID] [--size N]
//!     [--truncate N] [--flip-bit N] [--length N] [--pad-to N] [--save FILE] [--wait MS]
//! hostile capture --group ADDR:PORT [--iface ADDR] --out FILE [--count N] [--timeout SECS]
//! hostile udp --from ADDR[:PORT] --to ADDR:PORT --hex FILE [--line N] [--set-message-id N]
//!     [--truncate N] [--flip-bit N] [--length N] [--pad-to N] [--ttl N] [--wait MS]
//! ```
//!
//! `--as gm` sends as the IKE SA's original initiator (the GM: Initiator
//! flag, SK_ei/SK_ai), `--as gcks` as its original responder (the GCKS on a
//! kept IKE SA, SK_er/SK_ar). Payload kinds: registration (a well-formed
//! IDg for `--group`), idg-empty, idg-bad-type, idg-short-ipv4, idg-unknown,
//! sag-garbage, overlength (IDg length past the end), garbage (random inner
//! octets), gsa-garbage, kd-garbage, delete-garbage, empty, big (a Vendor ID
//! payload of `--size` octets). `--wait MS` waits for an answer and, with
//! keys, decrypts it and names its payloads and notifications. Each sending
//! command prints one line `hostile: sent ...`.

#[path = "forge_rekey/forge.rs"]
mod forge;

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use forge::{hex, unhex, wireshark_algs};
use gikev2::crypto::{OsRng, Rng, Secret, SkProtection};
use gikev2::iana::{ExchangeType, IdType, PayloadType};
use gikev2::wire::{GroupId, Payload, Reader, encode_chain, read_chain};

const FLAG_I: u8 = 0x08;
const FLAG_R: u8 = 0x20;
const HDR: usize = 28;

const USAGE: &str = "usage: hostile ike|capture|udp ... (see the source's header)";

/// One direction of an IKE SA's protection and its SPIs.
struct IkeKeys {
    spi_i: [u8; 8],
    spi_r: [u8; 8],
    /// What we send with.
    out: SkProtection,
    /// What the peer answers with.
    inb: SkProtection,
}

fn ike_keys(line: &str, as_gcks: bool) -> Result<IkeKeys, String> {
    let f: Vec<&str> = line.trim().split(',').map(str::trim).collect();
    if f.len() != 8 {
        return Err(format!("{} fields, expected 8", f.len()));
    }
    let spi = |what, s| -> Result<[u8; 8], String> {
        <[u8; 8]>::try_from(unhex(what, s)?).map_err(|_| format!("{what}: not 8 octets"))
    };
    let name = |s: &str| s.trim_matches('"').to_owned();
    let (encr, integ) = wireshark_algs(&name(f[4]), &name(f[7]))?;
    let key = |what, s| unhex(what, s).map(Secret::new);
    let (ei, er, ai, ar) = (
        key("SK_ei", f[2])?,
        key("SK_er", f[3])?,
        key("SK_ai", f[5])?,
        key("SK_ar", f[6])?,
    );
    let prot =
        |e: &Secret, a: &Secret| SkProtection::new(encr, integ, e, a).map_err(|e| e.to_string());
    let (i, r) = (prot(&ei, &ai)?, prot(&er, &ar)?);
    let (out, inb) = if as_gcks { (r, i) } else { (i, r) };
    Ok(IkeKeys {
        spi_i: spi("SPIi", f[0])?,
        spi_r: spi("SPIr", f[1])?,
        out,
        inb,
    })
}

fn number(what: &str, v: &str) -> Result<u64, String> {
    match v.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16),
        None => v.parse(),
    }
    .map_err(|e| format!("{what}: {e}"))
}

fn random(n: usize) -> Result<Vec<u8>, String> {
    let mut v = vec![0; n];
    OsRng.fill(&mut v).map_err(|e| e.to_string())?;
    Ok(v)
}

#[allow(clippy::too_many_arguments)]
fn header(
    spi_i: &[u8; 8],
    spi_r: &[u8; 8],
    next: u8,
    exchange: u8,
    flags: u8,
    message_id: u32,
    len: usize,
) -> Vec<u8> {
    let mut h = Vec::with_capacity(HDR);
    h.extend_from_slice(spi_i);
    h.extend_from_slice(spi_r);
    h.extend_from_slice(&[next, 0x20, exchange, flags]);
    h.extend_from_slice(&message_id.to_be_bytes());
    h.extend_from_slice(&(len as u32).to_be_bytes());
    h
}

/// A raw payload: generic header with `len` (or the true length) and body.
fn raw(next: u8, body: &[u8], len: Option<u16>) -> Vec<u8> {
    let mut p = vec![next, 0];
    let l = len.unwrap_or((4 + body.len()) as u16);
    p.extend_from_slice(&l.to_be_bytes());
    p.extend_from_slice(body);
    p
}

fn idg(group: &str) -> Payload {
    Payload::Idg(GroupId {
        id_type: IdType::ID_KEY_ID,
        data: group.as_bytes().to_vec(),
    })
}

/// The inner payloads of a kind: first payload type and encoded chain.
fn inner(kind: &str, group: &str, size: usize) -> Result<(u8, Vec<u8>), String> {
    let chain = |p: &[Payload]| {
        let mut v = Vec::new();
        encode_chain(p, &mut v);
        v
    };
    let (idg_t, sa_t, gsa_t, kd_t, del_t) = (
        PayloadType::IDG.0,
        PayloadType::SA.0,
        PayloadType::GSA.0,
        PayloadType::KD.0,
        PayloadType::DELETE.0,
    );
    Ok(match kind {
        "registration" => (idg_t, chain(&[idg(group)])),
        "idg-empty" => (idg_t, raw(0, &[], None)),
        "idg-bad-type" => (idg_t, raw(0, &[200, 0, 0, 0, b'x'], None)),
        "idg-short-ipv4" => (
            idg_t,
            raw(0, &[IdType::ID_IPV4_ADDR.0, 0, 0, 0, 10, 1], None),
        ),
        "idg-unknown" => (idg_t, chain(&[idg("no-such-group")])),
        "sag-garbage" => {
            let mut v = raw(sa_t, &[IdType::ID_KEY_ID.0, 0, 0, 0], None);
            v.extend_from_slice(group.as_bytes());
            let l = (v.len() as u16).to_be_bytes();
            v[2..4].copy_from_slice(&l);
            v.extend_from_slice(&raw(0, &random(20)?, None));
            (idg_t, v)
        }
        "overlength" => {
            let mut body = vec![IdType::ID_KEY_ID.0, 0, 0, 0];
            body.extend_from_slice(group.as_bytes());
            (idg_t, raw(0, &body, Some(0x1000)))
        }
        "garbage" => (idg_t, random(48)?),
        "gsa-garbage" => (gsa_t, raw(0, &random(24)?, None)),
        "kd-garbage" => (kd_t, raw(0, &random(24)?, None)),
        "delete-garbage" => (del_t, raw(0, &[6, 16, 0, 3, 1, 2, 3], None)),
        "empty" => (0, Vec::new()),
        "big" => {
            let mut v = chain(&[idg(group)]);
            v[0] = PayloadType::VENDOR_ID.0;
            v.extend_from_slice(&raw(0, &vec![0x5a; size.min(65000)], None));
            (idg_t, v)
        }
        _ => return Err(format!("unknown payload kind '{kind}'")),
    })
}

#[derive(Default)]
struct Tamper {
    truncate: Option<usize>,
    flip_bit: Option<usize>,
    length: Option<u32>,
    pad_to: Option<usize>,
    set_message_id: Option<u32>,
}

impl Tamper {
    fn flag(&mut self, flag: &str, v: &str) -> Result<bool, String> {
        match flag {
            "--truncate" => self.truncate = Some(number(flag, v)? as usize),
            "--flip-bit" => self.flip_bit = Some(number(flag, v)? as usize),
            "--length" => self.length = Some(number(flag, v)? as u32),
            "--pad-to" => self.pad_to = Some(number(flag, v)? as usize),
            "--set-message-id" => self.set_message_id = Some(number(flag, v)? as u32),
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn apply(&self, d: &mut Vec<u8>) -> Result<String, String> {
        let mut what = String::new();
        if let Some(m) = self.set_message_id {
            if d.len() >= 24 {
                d[20..24].copy_from_slice(&m.to_be_bytes());
            }
            what += &format!(", Message ID set to {m}");
        }
        if let Some(l) = self.length {
            if d.len() >= HDR {
                d[24..28].copy_from_slice(&l.to_be_bytes());
            }
            what += &format!(", IKE header length {l}");
        }
        if let Some(n) = self.pad_to {
            d.resize(n.max(d.len()), 0);
            what += &format!(", padded to {n} octets");
        }
        if let Some(b) = self.flip_bit {
            let o = d
                .get_mut(b / 8)
                .ok_or_else(|| format!("bit {b} is past the message's end"))?;
            *o ^= 0x80 >> (b % 8);
            what += &format!(", bit {b} flipped");
        }
        if let Some(n) = self.truncate {
            d.truncate(n);
            what += &format!(", truncated to {n} octets");
        }
        Ok(what)
    }
}

struct Net {
    from: Option<SocketAddr>,
    to: Option<SocketAddr>,
    ttl: u32,
    wait_ms: u64,
}

impl Net {
    fn flag(&mut self, flag: &str, v: &str) -> Result<bool, String> {
        match flag {
            "--from" => {
                self.from = Some(match v.parse::<SocketAddr>() {
                    Ok(s) => s,
                    Err(_) => {
                        SocketAddr::new(v.parse::<IpAddr>().map_err(|e| format!("--from: {e}"))?, 0)
                    }
                })
            }
            "--to" => self.to = Some(v.parse().map_err(|e| format!("--to: {e}"))?),
            "--ttl" => self.ttl = number(flag, v)? as u32,
            "--wait" => self.wait_ms = number(flag, v)?,
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Sends and, with `--wait`, returns the first answer.
    fn send(&self, d: &[u8]) -> Result<(UdpSocket, SocketAddr, SocketAddr), String> {
        let from = self.from.ok_or("--from is needed")?;
        let to = self.to.ok_or("--to is needed")?;
        let sock = UdpSocket::bind(from).map_err(|e| format!("binding to {from}: {e}"))?;
        if let IpAddr::V4(a) = to.ip()
            && a.is_multicast()
        {
            sock.set_multicast_ttl_v4(self.ttl)
                .map_err(|e| format!("IP_MULTICAST_TTL: {e}"))?;
        }
        sock.send_to(d, to)
            .map_err(|e| format!("sending {} octets to {to}: {e}", d.len()))?;
        let local = sock.local_addr().unwrap_or(from);
        Ok((sock, local, to))
    }

    fn answer(&self, sock: &UdpSocket) -> Option<Vec<u8>> {
        if self.wait_ms == 0 {
            return None;
        }
        sock.set_read_timeout(Some(Duration::from_millis(self.wait_ms)))
            .ok()?;
        let mut buf = vec![0; 65536];
        let n = sock.recv(&mut buf).ok()?;
        buf.truncate(n);
        Some(buf)
    }
}

/// Describes an answer: header, and with keys its decrypted payloads.
fn describe(d: &[u8], keys: Option<&IkeKeys>) -> String {
    if d.len() < HDR {
        return format!("{} octets, no IKE header", d.len());
    }
    let mid = u32::from_be_bytes(d[20..24].try_into().expect("4"));
    let mut s = format!(
        "{} octets, exchange {}, flags 0x{:02x}, Message ID {mid}",
        d.len(),
        d[18],
        d[19]
    );
    let Some(k) = keys else { return s };
    if d[16] != PayloadType::SK.0 || d.len() < HDR + 4 {
        return s + ", not encrypted";
    }
    match k.inb.open(&d[..HDR + 4], &d[HDR + 4..]) {
        Err(e) => s += &format!(", cannot open: {e}"),
        Ok(plain) => match read_chain(PayloadType(d[HDR]), &mut Reader::new(&plain)) {
            Err(e) => s += &format!(", inner payloads malformed: {e}"),
            Ok(ps) if ps.is_empty() => s += ", empty",
            Ok(ps) => {
                let names: Vec<String> = ps
                    .iter()
                    .map(|p| match p {
                        Payload::Notify(n) => format!("N({})", n.ty),
                        p => format!("{}", p.ty()),
                    })
                    .collect();
                s += &format!(", payloads {}", names.join(" "));
            }
        },
    }
    s
}

fn write_hex(path: &str, d: &[u8], append: bool) -> Result<(), String> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(append)
        .write(true)
        .truncate(!append)
        .open(path)
        .map_err(|e| format!("{path}: {e}"))?;
    writeln!(f, "{}", hex(d)).map_err(|e| format!("{path}: {e}"))
}

fn cmd_ike(args: &[String]) -> Result<(), String> {
    let mut net = Net {
        from: None,
        to: None,
        ttl: 1,
        wait_ms: 0,
    };
    let mut t = Tamper::default();
    let (mut table, mut index, mut as_gcks, mut unknown) = (None, None, None, false);
    let (mut exchange, mut message_id, mut response) =
        (ExchangeType::GSA_REGISTRATION.0, 2u32, false);
    let (mut kind, mut group, mut size) =
        ("registration".to_owned(), "market-data".to_owned(), 60000);
    let mut save = None;
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        if flag == "--unknown-spi" {
            unknown = true;
            continue;
        }
        if flag == "--response" {
            response = true;
            continue;
        }
        let v = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        if net.flag(flag, v)? || t.flag(flag, v)? {
            continue;
        }
        match flag.as_str() {
            "--keys" => table = Some(v.clone()),
            "--index" => index = Some(number(flag, v)? as usize),
            "--as" => {
                as_gcks = Some(match v.as_str() {
                    "gm" => false,
                    "gcks" => true,
                    _ => return Err("--as: gm or gcks".into()),
                })
            }
            "--exchange" => exchange = number(flag, v)? as u8,
            "--message-id" => message_id = number(flag, v)? as u32,
            "--payloads" => kind = v.clone(),
            "--group" => group = v.clone(),
            "--size" => size = number(flag, v)? as usize,
            "--save" => save = Some(v.clone()),
            _ => return Err(format!("unknown argument '{flag}'\n{USAGE}")),
        }
    }
    let keys = match (table, unknown) {
        (Some(path), false) => {
            let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
            let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
            let i = index.unwrap_or(lines.len().saturating_sub(1));
            let line = lines
                .get(i)
                .ok_or_else(|| format!("{path}: no line {i} ({} lines)", lines.len()))?;
            Some(ike_keys(
                line,
                as_gcks.ok_or("--as gm|gcks is needed with --keys")?,
            )?)
        }
        (None, true) => None,
        _ => {
            return Err(format!(
                "one of --keys and --unknown-spi is needed\n{USAGE}"
            ));
        }
    };
    let (first, plain) = inner(&kind, &group, size)?;
    let mut flags = if as_gcks == Some(true) { 0 } else { FLAG_I };
    if response {
        flags |= FLAG_R;
    }
    let (spi_i, spi_r) = match &keys {
        Some(k) => (k.spi_i, k.spi_r),
        None => {
            let (a, b) = (random(8)?, random(8)?);
            (a.try_into().expect("8"), b.try_into().expect("8"))
        }
    };
    let mut d = match &keys {
        Some(k) => {
            let total = HDR + 4 + k.out.sealed_len(plain.len());
            let mut d = header(
                &spi_i,
                &spi_r,
                PayloadType::SK.0,
                exchange,
                flags,
                message_id,
                total,
            );
            d.extend_from_slice(&[first, 0]);
            d.extend_from_slice(&((total - HDR) as u16).to_be_bytes());
            let body = k
                .out
                .seal(&d, &plain, &mut OsRng)
                .map_err(|e| e.to_string())?;
            d.extend_from_slice(&body);
            d
        }
        None => {
            // What an outsider can send: an SK payload of random octets.
            let body = random(16 + plain.len().div_ceil(16) * 16 + 16)?;
            let total = HDR + 4 + body.len();
            let mut d = header(
                &spi_i,
                &spi_r,
                PayloadType::SK.0,
                exchange,
                flags,
                message_id,
                total,
            );
            d.extend_from_slice(&[first, 0]);
            d.extend_from_slice(&((total - HDR) as u16).to_be_bytes());
            d.extend_from_slice(&body);
            d
        }
    };
    let damage = t.apply(&mut d)?;
    if let Some(path) = &save {
        write_hex(path, &d, false)?;
    }
    let (sock, local, to) = net.send(&d)?;
    let spis = if keys.is_some() {
        "IKE SA"
    } else {
        "unknown IKE SA"
    };
    println!(
        "hostile: sent exchange {exchange} {} Message ID {message_id} on {spis} {}_{} \
         as {}, payloads {kind}{damage}, {} octets from {local} to {to}",
        if response { "response" } else { "request" },
        hex(&spi_i),
        hex(&spi_r),
        if as_gcks == Some(true) { "GCKS" } else { "GM" },
        d.len(),
    );
    if net.wait_ms > 0 {
        match net.answer(&sock) {
            Some(a) => println!("hostile: answer {}", describe(&a, keys.as_ref())),
            None => println!("hostile: no answer within {} ms", net.wait_ms),
        }
    }
    Ok(())
}

fn cmd_capture(args: &[String]) -> Result<(), String> {
    let (mut group, mut iface, mut out, mut count, mut timeout) = (
        None::<SocketAddr>,
        Ipv4Addr::UNSPECIFIED,
        None,
        1usize,
        30u64,
    );
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let v = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--group" => group = Some(v.parse().map_err(|e| format!("--group: {e}"))?),
            "--iface" => iface = v.parse().map_err(|e| format!("--iface: {e}"))?,
            "--out" => out = Some(v.clone()),
            "--count" => count = number(flag, v)? as usize,
            "--timeout" => timeout = number(flag, v)?,
            _ => return Err(format!("unknown argument '{flag}'\n{USAGE}")),
        }
    }
    let group = group.ok_or("--group is needed")?;
    let out = out.ok_or("--out is needed")?;
    let IpAddr::V4(g) = group.ip() else {
        return Err("--group: IPv4 only".into());
    };
    let sock = UdpSocket::bind(group).map_err(|e| format!("binding to {group}: {e}"))?;
    sock.join_multicast_v4(&g, &iface)
        .map_err(|e| format!("joining {g}: {e}"))?;
    std::fs::write(&out, "").map_err(|e| format!("{out}: {e}"))?;
    let end = Instant::now() + Duration::from_secs(timeout);
    let mut got = 0;
    let mut buf = vec![0; 65536];
    while got < count {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        sock.set_read_timeout(Some(left))
            .map_err(|e| e.to_string())?;
        let Ok((n, src)) = sock.recv_from(&mut buf) else {
            break;
        };
        write_hex(&out, &buf[..n], true)?;
        got += 1;
        println!("hostile: captured {} from {src}", describe(&buf[..n], None));
    }
    if got < count {
        return Err(format!(
            "captured {got} of {count} datagrams in {timeout} s"
        ));
    }
    Ok(())
}

fn cmd_udp(args: &[String]) -> Result<(), String> {
    let mut net = Net {
        from: None,
        to: None,
        ttl: 1,
        wait_ms: 0,
    };
    let mut t = Tamper::default();
    let (mut file, mut line) = (None, None);
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let v = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        if net.flag(flag, v)? || t.flag(flag, v)? {
            continue;
        }
        match flag.as_str() {
            "--hex" => file = Some(v.clone()),
            "--line" => line = Some(number(flag, v)? as usize),
            _ => return Err(format!("unknown argument '{flag}'\n{USAGE}")),
        }
    }
    let path = file.ok_or("--hex is needed")?;
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let i = line.unwrap_or(lines.len().saturating_sub(1));
    let l = lines
        .get(i)
        .ok_or_else(|| format!("{path}: no line {i} ({} lines)", lines.len()))?;
    let mut d = unhex(&path, l)?;
    let orig = describe(&d, None);
    let damage = t.apply(&mut d)?;
    let (sock, local, to) = net.send(&d)?;
    println!(
        "hostile: sent captured datagram ({orig}){damage}, {} octets from {local} to {to}",
        d.len()
    );
    if net.wait_ms > 0 {
        match net.answer(&sock) {
            Some(a) => println!("hostile: answer {}", describe(&a, None)),
            None => println!("hostile: no answer within {} ms", net.wait_ms),
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let r = match args.first().map(String::as_str) {
        Some("ike") => cmd_ike(&args[1..]),
        Some("capture") => cmd_capture(&args[1..]),
        Some("udp") => cmd_udp(&args[1..]),
        _ => Err(USAGE.into()),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hostile: {e}");
            ExitCode::FAILURE
        }
    }
}
