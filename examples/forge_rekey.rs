//! Sends a forged GSA_REKEY onto a group's segment: encrypted and
//! integrity-protected with a Rekey SA's real keys, taken from a GM's
//! Wireshark key table (`charon.plugins.gikev2.wireshark_keys`), but signed
//! with a freshly generated key of the group's signature algorithm, so a GM
//! of a signature-authenticated group must refuse it (RFC 9838 §2.4.1.1).
//!
//! ```text
//! cargo build --release --example forge_rekey
//! forge_rekey --table DIR/ikev2_decryption_table --from 10.97.1.1 \
//!     [--to 239.1.1.2:848] [--ttl 1] [--index N | --line 'SPIi,SPIr,...'] \
//!     [--message-id N] [--sig-alg ecdsa-256] [--implicit] [--wrong-spi] \
//!     [--truncate N] [--flip-bit N] [--tek-dst 239.1.1.1[udp/5000]] \
//!     [--tek-src 0.0.0.0/0] [--tek-spi 0x12345678] [--tek-proposal aes256gcm16] \
//!     [--lifetime SECS] [--dry-run]
//! ```
//!
//! `--index` picks a line of the table (0 is the first; default the last,
//! the Rekey SA the GM took most recently). The datagram goes from `--from`
//! (address[:port]); binding the socket to that address makes Linux send
//! the multicast out of its interface, as IP_MULTICAST_IF would.

#[path = "forge_rekey/forge.rs"]
mod forge;

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::process::ExitCode;

use forge::{Forgery, KeyLine, Signature, Tamper, hex};
use gikev2::config::parse_ts;
use gikev2::crypto::{OsRng, Rng};
use gikev2::wire::RekeySpi;

struct Args {
    line: String,
    to: SocketAddr,
    from: Option<SocketAddr>,
    ttl: u32,
    message_id: u32,
    sig: Option<String>,
    wrong_spi: bool,
    tamper: Tamper,
    tek_dst: String,
    tek_src: String,
    tek_spi: Option<u32>,
    tek_proposal: String,
    lifetime: u32,
    dry_run: bool,
}

const USAGE: &str = "usage: forge_rekey (--table FILE [--index N] | --line CSV) \
--from ADDR[:PORT] [--to ADDR:PORT] [--ttl N] [--message-id N] [--sig-alg ALG] \
[--implicit] [--wrong-spi] [--truncate N] [--flip-bit N] [--tek-dst TS] [--tek-src TS] \
[--tek-spi N] [--tek-proposal P] [--lifetime SECS] [--dry-run]";

fn number(what: &str, v: &str) -> Result<u32, String> {
    match v.strip_prefix("0x") {
        Some(h) => u32::from_str_radix(h, 16),
        None => v.parse(),
    }
    .map_err(|e| format!("{what}: {e}"))
}

fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let mut table = None;
    let mut index: Option<usize> = None;
    let mut line = None;
    let mut a = Args {
        line: String::new(),
        to: "239.1.1.2:848".parse().expect("valid"),
        from: None,
        ttl: 1,
        message_id: 0x7fff_ffff,
        sig: Some("ecdsa-256".into()),
        wrong_spi: false,
        tamper: Tamper::None,
        tek_dst: "239.1.1.1[udp/5000]".into(),
        tek_src: "0.0.0.0/0".into(),
        tek_spi: None,
        tek_proposal: "aes256gcm16".into(),
        lifetime: 3600,
        dry_run: false,
    };
    while let Some(flag) = it.next() {
        let mut val = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--table" => table = Some(val()?),
            "--index" => index = Some(number("--index", &val()?)? as usize),
            "--line" => line = Some(val()?),
            "--to" => a.to = val()?.parse().map_err(|e| format!("--to: {e}"))?,
            "--from" => {
                let v = val()?;
                a.from = Some(match v.parse::<SocketAddr>() {
                    Ok(s) => s,
                    Err(_) => {
                        SocketAddr::new(v.parse::<IpAddr>().map_err(|e| format!("--from: {e}"))?, 0)
                    }
                });
            }
            "--ttl" => a.ttl = number("--ttl", &val()?)?,
            "--message-id" => a.message_id = number("--message-id", &val()?)?,
            "--sig-alg" => a.sig = Some(val()?),
            "--implicit" => a.sig = None,
            "--wrong-spi" => a.wrong_spi = true,
            "--truncate" => a.tamper = Tamper::Truncate(number("--truncate", &val()?)? as usize),
            "--flip-bit" => a.tamper = Tamper::FlipBit(number("--flip-bit", &val()?)? as usize),
            "--tek-dst" => a.tek_dst = val()?,
            "--tek-src" => a.tek_src = val()?,
            "--tek-spi" => a.tek_spi = Some(number("--tek-spi", &val()?)?),
            "--tek-proposal" => a.tek_proposal = val()?,
            "--lifetime" => a.lifetime = number("--lifetime", &val()?)?,
            "--dry-run" => a.dry_run = true,
            "-h" | "--help" => return Err(USAGE.into()),
            _ => return Err(format!("unknown argument '{flag}'\n{USAGE}")),
        }
    }
    a.line = match (line, table) {
        (Some(l), None) => l,
        (None, Some(path)) => {
            let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
            let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
            let i = index.unwrap_or(lines.len().saturating_sub(1));
            lines
                .get(i)
                .ok_or_else(|| format!("{path}: no line {i} ({} lines)", lines.len()))?
                .to_string()
        }
        _ => return Err(format!("one of --table and --line is needed\n{USAGE}")),
    };
    if a.from.is_none() && !a.dry_run {
        return Err(format!("--from is needed\n{USAGE}"));
    }
    Ok(a)
}

fn run() -> Result<(), String> {
    let a = parse_args()?;
    let key = KeyLine::parse(&a.line).map_err(|e| format!("key table line: {e}"))?;
    let sk = key.sk()?;
    let mut rng = OsRng;
    let mut spi = key.spi;
    if a.wrong_spi {
        spi = RekeySpi(spi.0.map(|b| !b));
    }
    let tek_spi = match a.tek_spi {
        Some(s) => s,
        None => {
            let mut b = [0; 4];
            rng.fill(&mut b).map_err(|e| e.to_string())?;
            u32::from_be_bytes(b) | 0x100
        }
    };
    let ((encr, bits), integ) = forge::tek_proposal(&a.tek_proposal)?;
    let auth = match &a.sig {
        Some(name) => Signature::Fresh(forge::sig_alg(name)?),
        None => Signature::Implicit,
    };
    let f = Forgery {
        spi,
        message_id: a.message_id,
        tek_spi,
        tek_src: parse_ts(&a.tek_src).map_err(|e| format!("--tek-src: {e}"))?,
        tek_dst: parse_ts(&a.tek_dst).map_err(|e| format!("--tek-dst: {e}"))?,
        tek_encr: (encr, bits),
        tek_integ: integ,
        lifetime_secs: a.lifetime,
        kwk: None,
        auth,
        tamper: a.tamper,
    };
    let forged = forge::forge(&f, &sk, &mut rng)?;
    let signed = match &forged.signer {
        Some((alg, _)) => format!("signed with a fresh {alg:?} key (not the GCKS's)"),
        None => "without AUTH (implicit GCAUTH)".into(),
    };
    let damage = match a.tamper {
        Tamper::None => String::new(),
        Tamper::Truncate(n) => format!(", truncated to {n} octets"),
        Tamper::FlipBit(b) => format!(", bit {b} flipped"),
    };
    let what = format!(
        "GSA_REKEY on Rekey SA {}{} message ID {}: new TEK ESP SPI 0x{tek_spi:08x} to {}, \
         {}, {} octets{damage}",
        hex(&spi.0),
        if a.wrong_spi { " (wrong SPI)" } else { "" },
        a.message_id,
        a.tek_dst,
        signed,
        forged.datagram.len(),
    );
    if a.dry_run {
        println!("forge_rekey: would send {what}");
        println!("{}", hex(&forged.datagram));
        return Ok(());
    }
    let from = a.from.expect("checked");
    let sock = UdpSocket::bind(from).map_err(|e| format!("binding to {from}: {e}"))?;
    if a.to.is_ipv4() {
        sock.set_multicast_ttl_v4(a.ttl)
            .map_err(|e| format!("IP_MULTICAST_TTL: {e}"))?;
    }
    let sent = sock
        .send_to(&forged.datagram, a.to)
        .map_err(|e| format!("sending to {}: {e}", a.to))?;
    println!(
        "forge_rekey: sent {what} from {} to {} ({sent} octets)",
        sock.local_addr().map_or(from, |l| l),
        a.to
    );
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("forge_rekey: {e}");
            ExitCode::FAILURE
        }
    }
}
