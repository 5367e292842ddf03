//! Persistent GCKS state: the file format and its atomic storage.
//!
//! A restarted GCKS continues its groups from a state file written after
//! every change that matters (see `Gcks::save_group` and
//! `Gcks::restore_group`). This module knows nothing of groups: it seals a
//! body into a versioned, checksummed envelope, opens it again with typed
//! errors, offers the body's primitive encoder and decoder, and writes
//! files atomically.
//!
//! The envelope, all integers big-endian:
//!
//! ```text
//! magic     8 octets  "GIKEV2GS"
//! version   2 octets  STATE_VERSION
//! reserved  2 octets  zero
//! length    4 octets  of the body
//! body      length octets
//! digest   32 octets  SHA-256 of everything before it
//! ```
//!
//! The digest detects truncation and corruption, not forgery: the file
//! holds the group's secrets and is protected by its mode (0600) like a
//! private key file. Anyone who can write it can serve the group anyway.

use core::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use zeroize::Zeroizing;

/// The first octets of every state file.
pub const STATE_MAGIC: [u8; 8] = *b"GIKEV2GS";
/// The body layout this build writes. Bumped on any change of the body;
/// a newer file is refused, never reinterpreted.
pub const STATE_VERSION: u16 = 2;
/// The oldest layout this build still reads (the reader of a body is told
/// its version): version 1 lacks the Message IDs a restore skipped.
pub const STATE_VERSION_OLDEST: u16 = 1;
const HEADER_LEN: usize = 16;
const DIGEST_LEN: usize = 32;
/// A state file larger than this is refused unread (about 10^7 members).
pub const STATE_MAX_LEN: usize = 1 << 30;

/// Why a state could not be restored (or stored). The file is never
/// changed when one is returned.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StateError {
    /// Not a state file, truncated, its checksum does not match, or its
    /// contents are inconsistent.
    Corrupt(String),
    /// Written by a build with another state layout.
    Version { found: u16, expected: u16 },
    /// Written for a group whose configuration has since changed in a way
    /// its members' keys cannot follow; `what` names the setting.
    GroupMismatch { what: String },
    /// The group cannot be served as configured (bad policy, served twice,
    /// SPIs taken by another group).
    Group(String),
    /// Reading or writing the file failed.
    Io(String),
}

impl fmt::Display for StateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Corrupt(why) => write!(f, "corrupt state: {why}"),
            Self::Version { found, expected } => write!(
                f,
                "state format version {found}, this build reads versions \
                 {STATE_VERSION_OLDEST} to {expected}"
            ),
            Self::GroupMismatch { what } => write!(
                f,
                "written for another configuration of the group ({what} changed)"
            ),
            Self::Group(why) => write!(f, "{why}"),
            Self::Io(why) => write!(f, "{why}"),
        }
    }
}

impl std::error::Error for StateError {}

pub(crate) fn corrupt(why: impl Into<String>) -> StateError {
    StateError::Corrupt(why.into())
}

/// Wraps `body` in the envelope.
pub fn seal(body: &[u8]) -> Result<Zeroizing<Vec<u8>>, StateError> {
    let len = u32::try_from(body.len())
        .ok()
        .filter(|&l| l as usize <= STATE_MAX_LEN - HEADER_LEN - DIGEST_LEN)
        .ok_or_else(|| StateError::Io("state too large".into()))?;
    let mut out = Zeroizing::new(Vec::with_capacity(HEADER_LEN + body.len() + DIGEST_LEN));
    out.extend_from_slice(&STATE_MAGIC);
    out.extend_from_slice(&STATE_VERSION.to_be_bytes());
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(body);
    let digest = openssl::sha::sha256(&out);
    out.extend_from_slice(&digest);
    Ok(out)
}

/// A state's body and the layout version it was written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Opened<'a> {
    pub version: u16,
    pub body: &'a [u8],
}

/// The body of a sealed state, after checking magic, version, length and
/// digest (in that order).
pub fn open(file: &[u8]) -> Result<Opened<'_>, StateError> {
    if file.len() < STATE_MAGIC.len() || file[..STATE_MAGIC.len()] != STATE_MAGIC {
        return Err(corrupt("not a G-IKEv2 GCKS state file (bad magic)"));
    }
    if file.len() < HEADER_LEN + DIGEST_LEN {
        return Err(corrupt(format!("truncated ({} octets)", file.len())));
    }
    let version = u16::from_be_bytes([file[8], file[9]]);
    if !(STATE_VERSION_OLDEST..=STATE_VERSION).contains(&version) {
        return Err(StateError::Version {
            found: version,
            expected: STATE_VERSION,
        });
    }
    if file[10..12] != [0, 0] {
        return Err(corrupt("reserved header octets set"));
    }
    let len = u32::from_be_bytes([file[12], file[13], file[14], file[15]]) as usize;
    let want = HEADER_LEN as u64 + len as u64 + DIGEST_LEN as u64;
    if (file.len() as u64) < want {
        return Err(corrupt(format!(
            "truncated ({} of {want} octets)",
            file.len()
        )));
    }
    if file.len() as u64 > want {
        return Err(corrupt(format!(
            "{} octets after the end of the state",
            file.len() as u64 - want
        )));
    }
    let (content, digest) = file.split_at(HEADER_LEN + len);
    if !openssl::memcmp::eq(&openssl::sha::sha256(content), digest) {
        return Err(corrupt("checksum mismatch"));
    }
    Ok(Opened {
        version,
        body: &content[HEADER_LEN..],
    })
}

/// The body's encoder: fixed-width big-endian integers and
/// length-prefixed octet strings. The buffer holds keys: it is wiped when
/// dropped, and growing it wipes the allocation it leaves (a plain `Vec`
/// would leave copies of the keys in freed memory).
#[derive(Default)]
pub struct Enc(Zeroizing<Vec<u8>>);

impl Enc {
    pub fn new() -> Self {
        Self::default()
    }

    /// An encoder with room for about `n` octets, so that a large state
    /// is not copied (and wiped) over and over while it grows.
    pub fn with_capacity(n: usize) -> Self {
        Self(Zeroizing::new(Vec::with_capacity(n)))
    }

    fn grow(&mut self, n: usize) {
        let need = self.0.len() + n;
        if need > self.0.capacity() {
            let cap = need.max(self.0.capacity().saturating_mul(2)).max(4096);
            let mut fresh = Zeroizing::new(Vec::with_capacity(cap));
            fresh.extend_from_slice(&self.0);
            // The old buffer is wiped as it drops.
            self.0 = fresh;
        }
    }

    pub fn u8(&mut self, v: u8) {
        self.grow(1);
        self.0.push(v);
    }

    pub fn bool(&mut self, v: bool) {
        self.u8(u8::from(v));
    }

    pub fn u16(&mut self, v: u16) {
        self.raw(&v.to_be_bytes());
    }

    pub fn u32(&mut self, v: u32) {
        self.raw(&v.to_be_bytes());
    }

    pub fn u64(&mut self, v: u64) {
        self.raw(&v.to_be_bytes());
    }

    /// A count or length, which the format keeps to 32 bits.
    pub fn count(&mut self, n: usize) {
        self.u32(u32::try_from(n).unwrap_or(u32::MAX));
    }

    pub fn raw(&mut self, b: &[u8]) {
        self.grow(b.len());
        self.0.extend_from_slice(b);
    }

    /// Length-prefixed octets.
    pub fn bytes(&mut self, b: &[u8]) {
        self.count(b.len());
        self.raw(b);
    }

    pub fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }

    /// `Some(v)` as 1 and `v`, `None` as 0.
    pub fn opt<T>(&mut self, v: Option<T>, f: impl FnOnce(&mut Self, T)) {
        match v {
            Some(v) => {
                self.u8(1);
                f(self, v);
            }
            None => self.u8(0),
        }
    }

    /// The encoded body, still wiped on drop.
    pub fn finish(self) -> Zeroizing<Vec<u8>> {
        self.0
    }
}

/// The body's decoder: every read checked, every failure a
/// [`StateError::Corrupt`] naming the field.
pub struct Dec<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Dec<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, at: 0 }
    }

    pub fn raw(&mut self, n: usize, what: &str) -> Result<&'a [u8], StateError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| corrupt(format!("{what}: past the end of the state")))?;
        let b = &self.buf[self.at..end];
        self.at = end;
        Ok(b)
    }

    pub fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], StateError> {
        let mut a = [0; N];
        a.copy_from_slice(self.raw(N, what)?);
        Ok(a)
    }

    pub fn u8(&mut self, what: &str) -> Result<u8, StateError> {
        Ok(self.array::<1>(what)?[0])
    }

    pub fn bool(&mut self, what: &str) -> Result<bool, StateError> {
        match self.u8(what)? {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(corrupt(format!("{what}: {v} is not a boolean"))),
        }
    }

    pub fn u16(&mut self, what: &str) -> Result<u16, StateError> {
        Ok(u16::from_be_bytes(self.array(what)?))
    }

    pub fn u32(&mut self, what: &str) -> Result<u32, StateError> {
        Ok(u32::from_be_bytes(self.array(what)?))
    }

    pub fn u64(&mut self, what: &str) -> Result<u64, StateError> {
        Ok(u64::from_be_bytes(self.array(what)?))
    }

    /// A count of items each at least `min_item` octets long: checked
    /// against what is left, so a bad count cannot make a huge allocation.
    pub fn count(&mut self, min_item: usize, what: &str) -> Result<usize, StateError> {
        let n = self.u32(what)? as usize;
        if n.saturating_mul(min_item.max(1)) > self.buf.len() - self.at {
            return Err(corrupt(format!(
                "{what}: count {n} past the end of the state"
            )));
        }
        Ok(n)
    }

    pub fn bytes(&mut self, what: &str) -> Result<&'a [u8], StateError> {
        let n = self.count(1, what)?;
        self.raw(n, what)
    }

    pub fn string(&mut self, what: &str) -> Result<String, StateError> {
        String::from_utf8(self.bytes(what)?.to_vec())
            .map_err(|_| corrupt(format!("{what}: not UTF-8")))
    }

    pub fn opt<T>(
        &mut self,
        what: &str,
        f: impl FnOnce(&mut Self) -> Result<T, StateError>,
    ) -> Result<Option<T>, StateError> {
        if self.bool(what)? {
            f(self).map(Some)
        } else {
            Ok(None)
        }
    }

    /// Fails unless everything was read.
    pub fn end(&self) -> Result<(), StateError> {
        if self.at == self.buf.len() {
            Ok(())
        } else {
            Err(corrupt(format!(
                "{} unread octets at the end of the state",
                self.buf.len() - self.at
            )))
        }
    }
}

/// Reads a state file; `Ok(None)` if there is none.
pub fn read_file(path: &Path) -> Result<Option<Zeroizing<Vec<u8>>>, StateError> {
    let io = |e: io::Error| StateError::Io(format!("cannot read {}: {e}", path.display()));
    let mut f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(e)),
    };
    let len = f.metadata().map_err(io)?.len();
    if len > STATE_MAX_LEN as u64 {
        return Err(corrupt(format!("{len} octets, larger than any state")));
    }
    let mut buf = Zeroizing::new(Vec::with_capacity(len as usize));
    io::Read::read_to_end(&mut f, &mut buf).map_err(io)?;
    Ok(Some(buf))
}

/// Replaces `path` with `data` atomically: written to a temporary file in
/// the same directory (mode 0600), flushed to disk, renamed over `path`,
/// and the directory flushed so the rename survives a crash. The
/// directory is created (mode 0700) if missing. On failure `path` is
/// unchanged and the temporary file removed.
pub fn write_file_atomic(path: &Path, data: &[u8]) -> Result<(), StateError> {
    let io =
        |what: &str, e: io::Error| StateError::Io(format!("cannot {what} {}: {e}", path.display()));
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !dir.exists() {
        fs::create_dir_all(dir).map_err(|e| io("create the directory of", e))?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .map_err(|e| io("restrict the directory of", e))?;
    }
    let name = path
        .file_name()
        .ok_or_else(|| StateError::Io(format!("{}: not a file name", path.display())))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(".tmp");
    let tmp = dir.join(tmp_name);
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| io("create a temporary file for", e))?;
        // A stale temporary file keeps its old mode: make sure.
        f.set_permissions(fs::Permissions::from_mode(0o600))
            .map_err(|e| io("restrict", e))?;
        f.write_all(data).map_err(|e| io("write", e))?;
        f.sync_all().map_err(|e| io("flush", e))?;
        drop(f);
        fs::rename(&tmp, path).map_err(|e| io("rename the temporary file to", e))?;
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io("flush the directory of", e))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_and_refusals() {
        let sealed = seal(b"hello").unwrap();
        assert_eq!(open(&sealed).unwrap().body, b"hello");
        assert_eq!(open(&sealed).unwrap().version, STATE_VERSION);
        assert!(matches!(open(b""), Err(StateError::Corrupt(_))));
        assert!(matches!(
            open(&sealed[..sealed.len() - 1]),
            Err(StateError::Corrupt(_))
        ));
        // An older layout is read (and its version told); a newer one
        // is refused. The digest covers the version: set it again.
        let reversion = |version: u16| {
            let mut v = sealed[..sealed.len() - DIGEST_LEN].to_vec();
            v[8..10].copy_from_slice(&version.to_be_bytes());
            let digest = openssl::sha::sha256(&v);
            v.extend_from_slice(&digest);
            v
        };
        let old = reversion(STATE_VERSION_OLDEST);
        assert_eq!(open(&old).unwrap().version, STATE_VERSION_OLDEST);
        assert_eq!(
            open(&reversion(STATE_VERSION + 1)),
            Err(StateError::Version {
                found: STATE_VERSION + 1,
                expected: STATE_VERSION
            })
        );
        assert_eq!(
            open(&reversion(0)),
            Err(StateError::Version {
                found: 0,
                expected: STATE_VERSION
            })
        );
        let mut v = sealed.to_vec();
        v[17] ^= 1;
        assert_eq!(open(&v), Err(corrupt("checksum mismatch")));
        let mut v = sealed.to_vec();
        v.push(0);
        assert!(matches!(open(&v), Err(StateError::Corrupt(_))));
    }

    #[test]
    fn decoder_checks_every_read() {
        let mut e = Enc::new();
        e.u32(7);
        e.str("abc");
        e.opt(Some(5u64), |e, v| e.u64(v));
        let b = e.finish();
        let mut d = Dec::new(&b);
        assert_eq!(d.u32("a").unwrap(), 7);
        assert_eq!(d.string("b").unwrap(), "abc");
        assert_eq!(d.opt("c", |d| d.u64("c")).unwrap(), Some(5));
        d.end().unwrap();
        let mut d = Dec::new(&[0xff, 0xff, 0xff, 0xff]);
        assert!(d.bytes("huge").is_err());
    }

    #[test]
    fn atomic_write_is_private_and_replaces() {
        let dir = std::env::temp_dir().join(format!("gikev2-persist-{}", std::process::id()));
        let path = dir.join("sub").join("g.state");
        write_file_atomic(&path, b"one").unwrap();
        write_file_atomic(&path, b"two").unwrap();
        assert_eq!(read_file(&path).unwrap().unwrap().as_slice(), b"two");
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dmode = fs::metadata(path.parent().unwrap())
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(dmode, 0o700);
        assert!(read_file(&dir.join("none")).unwrap().is_none());
        let names: Vec<_> = fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("g.state")]);
        fs::remove_dir_all(&dir).unwrap();
    }
}
