//! The C ABI of the core: what charon's plugin calls, through
//! `include/gikev2.h` (generated from this module by cbindgen; see
//! `tests/ffi_c.rs` for how to regenerate it).
//!
//! This module is the only place of the crate with `unsafe` code. Every
//! entry point checks every pointer it is given, runs its body under
//! `catch_unwind` (a panic becomes `GIKEV2_ERR_PANIC`, it never crosses
//! into C), and returns an explicit error code; a readable message of the
//! last call's failure is available per thread through
//! [`gikev2_last_error`].
//!
//! Conventions shared by all functions (the header repeats them):
//! - Time is `now_ms`, a monotonic millisecond count of the caller's choice
//!   (charon's `time_monotonic()` in milliseconds); deadlines come back on
//!   the same clock.
//! - Input buffers are borrowed for the duration of the call only. A NULL
//!   input buffer is allowed only with a length of zero.
//! - Output buffers are `uint8_t *buf, size_t *len`: `*len` is the capacity
//!   on entry and the number of octets written on return. When the buffer
//!   is too small the call returns `GIKEV2_ERR_BUFFER_TOO_SMALL`, sets
//!   `*len` to the size needed and loses nothing (call again with a larger
//!   buffer). `buf` may be NULL when `*len` is 0, to ask for the size.
//! - Handles are safe to use from several threads at once: each holds a
//!   mutex, held for the duration of a call. The log callback runs on the
//!   calling thread while that mutex is held, so it must not call back into
//!   this library.
//! - Keys copied out to C are the caller's to wipe (strongSwan's
//!   `memwipe()` or `chunk_clear()`) as soon as they are handed to the
//!   kernel.
#![allow(unsafe_code)]
// The exported names are C names, spelled as the header spells them.
#![allow(non_camel_case_types)]

mod gcks;
mod gm;
mod gm_node;
mod logging;
mod records;

use core::ffi::c_char;
use std::any::Any;
use std::borrow::Cow;
use std::cell::RefCell;
use std::ffi::{CStr, CString};
use std::net::{IpAddr, SocketAddr};
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Mutex, MutexGuard};

pub use gcks::*;
pub use gm::*;
pub use gm_node::*;
pub use logging::*;

use crate::crypto::{CryptoError, KeyWrapAlg, PrfAlg, Secret};
use crate::iana::{ExchangeType, KwaId, PrfId};
use crate::wire::{AddrRange, DecodeError, GroupId, TrafficSelector};

/// Version of this ABI: bumped on every incompatible change of
/// `include/gikev2.h`. Compare it with `gikev2_abi_version()` at load time.
pub const GIKEV2_ABI_VERSION: u32 = 2;

/// The largest key (encryption key with its salt, or integrity key) this
/// version hands out: key buffers of this size are always large enough.
pub const GIKEV2_MAX_KEY_LEN: usize = 64;

/// Octets of a Rekey SA's SPI (the IKE header's two SPIs, §2.4.1).
pub const GIKEV2_REKEY_SPI_LEN: usize = 16;

/// Octets of the header of a payload record: type, flags, body length.
pub const GIKEV2_RECORD_HEADER_LEN: usize = 4;

/// The critical bit in a payload record's flags (RFC 7296 §3.2).
pub const GIKEV2_RECORD_CRITICAL: u8 = 0x80;

/// The result of every call. Values are fixed and never reused.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum gikev2_error_t {
    /// Success.
    GIKEV2_OK = 0,
    /// A required pointer was NULL (or a buffer NULL with a non-zero length).
    GIKEV2_ERR_NULL = 1,
    /// An argument is not acceptable: a string that is not UTF-8, an
    /// exchange type this call does not take, an empty key.
    GIKEV2_ERR_INVALID_ARG = 2,
    /// A setting is missing, unknown or bad; the message is "key: reason".
    GIKEV2_ERR_CONFIG = 3,
    /// An output buffer is too small; its length argument now holds the
    /// size needed, and nothing was lost.
    GIKEV2_ERR_BUFFER_TOO_SMALL = 4,
    /// Malformed payload records, payloads or a malformed datagram.
    GIKEV2_ERR_DECODE = 5,
    /// A key, signature or integrity check failed, or key material did not
    /// fit the negotiated algorithms.
    GIKEV2_ERR_CRYPTO = 6,
    /// The GCKS refused the registration (its notification type is
    /// reported separately).
    GIKEV2_ERR_REFUSED = 7,
    /// A GSA_REKEY whose Message ID was already taken (also every
    /// retransmission after the first copy: not a fault).
    GIKEV2_ERR_REPLAY = 8,
    /// A GSA_REKEY for a Rekey SA this member does not hold.
    GIKEV2_ERR_UNKNOWN_SA = 9,
    /// No such group or member.
    GIKEV2_ERR_NOT_FOUND = 10,
    /// The group is already configured.
    GIKEV2_ERR_EXISTS = 11,
    /// A transform ID (PRF, KWA) this library does not implement.
    GIKEV2_ERR_UNSUPPORTED = 12,
    /// The GCKS's policy is one this member cannot use.
    GIKEV2_ERR_UNACCEPTABLE = 13,
    /// Not possible now or under this configuration: a rekey before any
    /// registration, excluding a member from a group without LKH, a second
    /// logger in the process.
    GIKEV2_ERR_STATE = 14,
    /// An internal error (a bug) was caught; the handle that saw it
    /// refuses further work and should be destroyed.
    GIKEV2_ERR_PANIC = 15,
    /// A group's state file is corrupt or truncated, from another format
    /// version, or was written for the group configured differently. The
    /// file is left untouched; the message names it and the reason.
    GIKEV2_ERR_STATE_FILE = 16,
    /// Reading or writing a file failed; the message names it and the
    /// OS error.
    GIKEV2_ERR_IO = 17,
}

use gikev2_error_t::*;

/// An address family in the ABI's structures (not the OS's AF_* values).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum gikev2_family_t {
    /// No address: the field is unused.
    GIKEV2_FAMILY_NONE = 0,
    /// IPv4: the first 4 octets of the address array, network order.
    GIKEV2_FAMILY_IPV4 = 4,
    /// IPv6: all 16 octets.
    GIKEV2_FAMILY_IPV6 = 6,
}

/// An IP address and UDP port.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct gikev2_endpoint_t {
    pub family: gikev2_family_t,
    /// Network order; IPv4 in the first 4 octets, the rest zero.
    pub addr: [u8; 16],
    /// Host order.
    pub port: u16,
}

/// A traffic selector: an address range, an IP protocol and a port range.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct gikev2_ts_t {
    pub family: gikev2_family_t,
    /// IP protocol number; 0 is any.
    pub protocol: u8,
    /// Host order, inclusive; 0..65535 is any port.
    pub start_port: u16,
    pub end_port: u16,
    /// First and last address of the range, as in gikev2_endpoint_t.
    pub start: [u8; 16],
    pub end: [u8; 16],
}

/// Version of this ABI, to compare with GIKEV2_ABI_VERSION of the header
/// the caller was built with.
#[unsafe(no_mangle)]
pub extern "C" fn gikev2_abi_version() -> u32 {
    GIKEV2_ABI_VERSION
}

/// The library's version as a static NUL-terminated string (never freed).
#[unsafe(no_mangle)]
pub extern "C" fn gikev2_version() -> *const c_char {
    static VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");
    VERSION.as_ptr().cast()
}

/// The message of the last failed call on this thread: a NUL-terminated
/// string owned by the library, never NULL, empty after a successful call.
/// It stays valid until the next gikev2_* call on the same thread (other
/// than this one and the two version functions); copy it to keep it.
#[unsafe(no_mangle)]
pub extern "C" fn gikev2_last_error() -> *const c_char {
    LAST_ERROR
        .try_with(|e| e.borrow().as_ptr())
        .unwrap_or(c"".as_ptr())
}

/// Why the last gikev2_gcks_registration() on this thread refused its
/// member (the reason for the operator's log line; the notification is in
/// the response), or an empty string if it did not. Owned by the library,
/// never NULL, valid until the next gikev2_gcks_registration() on the
/// same thread.
#[unsafe(no_mangle)]
pub extern "C" fn gikev2_last_refusal() -> *const c_char {
    LAST_REFUSAL
        .try_with(|e| e.borrow().as_ptr())
        .unwrap_or(c"".as_ptr())
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
    static LAST_REFUSAL: RefCell<CString> = RefCell::new(CString::default());
}

fn c_string(msg: String) -> CString {
    CString::new(msg).unwrap_or_else(|e| {
        let mut v = e.into_vec();
        v.retain(|&b| b != 0);
        CString::new(v).unwrap_or_default()
    })
}

fn set_last_error(msg: String) {
    let msg = c_string(msg);
    // During thread teardown the slot may be gone: nothing to report to.
    let _ = LAST_ERROR.try_with(|e| *e.borrow_mut() = msg);
}

pub(crate) fn set_last_refusal(why: Option<&str>) {
    let msg = c_string(why.unwrap_or_default().to_owned());
    let _ = LAST_REFUSAL.try_with(|e| *e.borrow_mut() = msg);
}

/// A failure on its way to C: the code returned and the message kept.
#[derive(Debug)]
pub(crate) struct FfiError {
    code: gikev2_error_t,
    msg: String,
}

pub(crate) type FfiResult<T = ()> = Result<T, FfiError>;

pub(crate) fn fail(code: gikev2_error_t, msg: impl Into<String>) -> FfiError {
    FfiError {
        code,
        msg: msg.into(),
    }
}

impl From<DecodeError> for FfiError {
    fn from(e: DecodeError) -> Self {
        fail(GIKEV2_ERR_DECODE, e.to_string())
    }
}

impl From<CryptoError> for FfiError {
    fn from(e: CryptoError) -> Self {
        let code = match e {
            CryptoError::UnsupportedTransform { .. } | CryptoError::Unsupported(_) => {
                GIKEV2_ERR_UNSUPPORTED
            }
            _ => GIKEV2_ERR_CRYPTO,
        };
        fail(code, e.to_string())
    }
}

/// Runs an entry point's body: catches panics, records the message and
/// turns the outcome into the code returned to C.
pub(crate) fn guard(name: &str, body: impl FnOnce() -> FfiResult) -> gikev2_error_t {
    let (code, msg) = match panic::catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => (GIKEV2_OK, String::new()),
        Ok(Err(e)) => (e.code, e.msg),
        Err(payload) => (
            GIKEV2_ERR_PANIC,
            format!("{name}: internal error: {}", panic_message(&*payload)),
        ),
    };
    set_last_error(msg);
    code
}

fn panic_message(payload: &(dyn Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "panic"
    }
}

/// Locks a handle's state. A mutex poisoned by a caught panic stays
/// refused: the engine may be half-way through an update.
pub(crate) fn lock<T>(m: &Mutex<T>) -> FfiResult<MutexGuard<'_, T>> {
    m.lock().map_err(|_| {
        fail(
            GIKEV2_ERR_PANIC,
            "handle unusable after an earlier internal error; destroy it",
        )
    })
}

/// # Safety
/// `p` is NULL or points to a live `T` for the duration of the call.
pub(crate) unsafe fn handle<'a, T>(p: *const T, what: &str) -> FfiResult<&'a T> {
    // SAFETY: the caller guarantees `p` is NULL or valid.
    unsafe { p.as_ref() }.ok_or_else(|| fail(GIKEV2_ERR_NULL, format!("{what} is NULL")))
}

/// # Safety
/// `p` is NULL or valid for reads of `len` octets for the duration of the
/// call.
pub(crate) unsafe fn bytes<'a>(p: *const u8, len: usize, what: &str) -> FfiResult<&'a [u8]> {
    if len == 0 {
        return Ok(&[]);
    }
    if p.is_null() {
        return Err(fail(
            GIKEV2_ERR_NULL,
            format!("{what} is NULL with length {len}"),
        ));
    }
    // SAFETY: non-NULL and valid for `len` octets by the caller's contract.
    Ok(unsafe { std::slice::from_raw_parts(p, len) })
}

/// # Safety
/// `p` is NULL or a NUL-terminated string valid for the call.
pub(crate) unsafe fn c_str<'a>(p: *const c_char, what: &str) -> FfiResult<&'a CStr> {
    if p.is_null() {
        return Err(fail(GIKEV2_ERR_NULL, format!("{what} is NULL")));
    }
    // SAFETY: non-NULL and NUL-terminated by the caller's contract.
    Ok(unsafe { CStr::from_ptr(p) })
}

/// # Safety
/// As [`c_str`].
pub(crate) unsafe fn utf8<'a>(p: *const c_char, what: &str) -> FfiResult<&'a str> {
    // SAFETY: forwarded contract.
    unsafe { c_str(p, what) }?
        .to_str()
        .map_err(|_| fail(GIKEV2_ERR_INVALID_ARG, format!("{what} is not UTF-8")))
}

/// Reads `count` key/value string pairs.
///
/// # Safety
/// `keys` and `values` are NULL or arrays of `count` pointers, each NULL or
/// a NUL-terminated string, valid for the call.
pub(crate) unsafe fn settings<'a>(
    keys: *const *const c_char,
    values: *const *const c_char,
    count: usize,
) -> FfiResult<Vec<(&'a str, &'a str)>> {
    if count == 0 {
        return Ok(Vec::new());
    }
    if keys.is_null() || values.is_null() {
        return Err(fail(GIKEV2_ERR_NULL, "keys or values is NULL"));
    }
    (0..count)
        .map(|i| {
            // SAFETY: both arrays hold `count` valid pointers.
            let (k, v) = unsafe { (*keys.add(i), *values.add(i)) };
            // SAFETY: each is NULL or a valid string.
            let k = unsafe { utf8(k, &format!("keys[{i}]")) }?;
            // SAFETY: as above.
            let v = unsafe { utf8(v, &format!("values[{i}] ({k})")) }?;
            Ok((k, v))
        })
        .collect()
}

/// `count` strings from C, as they are (invalid UTF-8 replaced); `what`
/// names the array in errors.
///
/// # Safety
/// `p` is NULL or an array of `count` pointers, each NULL or a
/// NUL-terminated string, valid for the call.
pub(crate) unsafe fn strings<'a>(
    p: *const *const c_char,
    count: usize,
    what: &str,
) -> FfiResult<Vec<Cow<'a, str>>> {
    if count == 0 {
        return Ok(Vec::new());
    }
    if p.is_null() {
        return Err(fail(GIKEV2_ERR_NULL, format!("{what} is NULL")));
    }
    (0..count)
        .map(|i| {
            // SAFETY: the array holds `count` valid pointers.
            let s = unsafe { *p.add(i) };
            // SAFETY: each is NULL or a valid string.
            Ok(unsafe { c_str(s, &format!("{what}[{i}]")) }?.to_string_lossy())
        })
        .collect()
}

/// Writes a value through an out-pointer.
///
/// # Safety
/// `p` is NULL or valid for writing a `T`.
pub(crate) unsafe fn put<T>(p: *mut T, what: &str, value: T) -> FfiResult {
    if p.is_null() {
        return Err(fail(GIKEV2_ERR_NULL, format!("{what} is NULL")));
    }
    // SAFETY: non-NULL and writable by the caller's contract; the old
    // contents are not read or dropped (they may be uninitialized).
    unsafe { p.write(value) };
    Ok(())
}

/// Writes an engine's next deadline for a `*_poll_timeout` call:
/// `*has_deadline` and `*deadline_ms` (0 without a deadline).
///
/// # Safety
/// Each pointer is NULL or writable.
pub(crate) unsafe fn put_deadline(
    has_deadline: *mut bool,
    deadline_ms: *mut u64,
    at: Option<u64>,
) -> FfiResult {
    // SAFETY: forwarded contract.
    unsafe {
        put(has_deadline, "has_deadline", at.is_some())?;
        put(deadline_ms, "deadline_ms", at.unwrap_or(0))
    }
}

/// Checks an out-pointer before any work is done.
pub(crate) fn non_null<T>(p: *mut T, what: &str) -> FfiResult {
    if p.is_null() {
        Err(fail(GIKEV2_ERR_NULL, format!("{what} is NULL")))
    } else {
        Ok(())
    }
}

/// A caller's output buffer: `uint8_t *buf, size_t *len`.
pub(crate) struct OutBuf {
    ptr: *mut u8,
    cap: usize,
    len: *mut usize,
    what: &'static str,
}

impl OutBuf {
    /// # Safety
    /// `len` is NULL or valid for reading and writing a `size_t`; `ptr` is
    /// NULL or valid for writing `*len` octets; both for the whole call.
    pub(crate) unsafe fn new(ptr: *mut u8, len: *mut usize, what: &'static str) -> FfiResult<Self> {
        if len.is_null() {
            return Err(fail(GIKEV2_ERR_NULL, format!("length of {what} is NULL")));
        }
        // SAFETY: non-NULL and readable by the caller's contract.
        let cap = unsafe { len.read() };
        if ptr.is_null() && cap != 0 {
            return Err(fail(
                GIKEV2_ERR_NULL,
                format!("{what} is NULL with capacity {cap}"),
            ));
        }
        Ok(Self {
            ptr,
            cap,
            len,
            what,
        })
    }

    pub(crate) fn fits(&self, n: usize) -> bool {
        n <= self.cap
    }

    /// Reports the size needed without writing anything.
    pub(crate) fn too_small(&mut self, need: usize) -> FfiError {
        self.set_len(need);
        fail(
            GIKEV2_ERR_BUFFER_TOO_SMALL,
            format!("{} needs {need} octets, has {}", self.what, self.cap),
        )
    }

    pub(crate) fn set_len(&mut self, n: usize) {
        // SAFETY: `len` is valid for writes (checked in `new`).
        unsafe { self.len.write(n) };
    }

    /// Copies `data` out, or reports the size needed.
    pub(crate) fn write(&mut self, data: &[u8]) -> FfiResult {
        if !self.fits(data.len()) {
            return Err(self.too_small(data.len()));
        }
        if !data.is_empty() {
            // SAFETY: `ptr` is valid for `cap >= data.len()` octets and does
            // not overlap a Rust-owned buffer.
            unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), self.ptr, data.len()) };
        }
        self.set_len(data.len());
        Ok(())
    }

    /// Copies `text` out with a terminating NUL; the length reported
    /// counts the NUL.
    pub(crate) fn write_text(&mut self, text: &str) -> FfiResult {
        let mut v = Vec::with_capacity(text.len() + 1);
        v.extend(text.bytes().filter(|&b| b != 0));
        v.push(0);
        self.write(&v)
    }
}

/// The IKE SA's keys as C hands them in.
pub(crate) struct IkeInput {
    pub sk_d: Secret,
    pub prf: PrfAlg,
    pub kwa: KeyWrapAlg,
}

impl IkeInput {
    pub(crate) fn new(sk_d: &[u8], prf: u16, kwa: u16) -> FfiResult<Self> {
        if sk_d.is_empty() {
            return Err(fail(GIKEV2_ERR_INVALID_ARG, "SK_d is empty"));
        }
        Ok(Self {
            sk_d: Secret::from_slice(sk_d),
            prf: PrfAlg::from_id(PrfId(prf))?,
            kwa: KeyWrapAlg::from_id(KwaId(kwa))?,
        })
    }

    pub(crate) fn keys(&self) -> crate::ike_sa::IkeKeys<'_> {
        crate::ike_sa::IkeKeys {
            sk_d: &self.sk_d,
            prf: self.prf,
            kwa: self.kwa,
        }
    }
}

/// The registration exchanges a call takes.
pub(crate) fn registration_exchange(exchange: u8) -> FfiResult<ExchangeType> {
    match ExchangeType(exchange) {
        e @ (ExchangeType::GSA_AUTH | ExchangeType::GSA_REGISTRATION) => Ok(e),
        e => Err(fail(
            GIKEV2_ERR_INVALID_ARG,
            format!("exchange type {e} is not GSA_AUTH (39) or GSA_REGISTRATION (40)"),
        )),
    }
}

fn addr16(ip: IpAddr) -> (gikev2_family_t, [u8; 16]) {
    let mut out = [0; 16];
    match ip {
        IpAddr::V4(a) => {
            out[..4].copy_from_slice(&a.octets());
            (gikev2_family_t::GIKEV2_FAMILY_IPV4, out)
        }
        IpAddr::V6(a) => (gikev2_family_t::GIKEV2_FAMILY_IPV6, a.octets()),
    }
}

impl gikev2_endpoint_t {
    /// The address, if the family is one.
    pub(crate) fn ip(&self) -> Option<IpAddr> {
        match self.family {
            gikev2_family_t::GIKEV2_FAMILY_IPV4 => {
                Some(IpAddr::from(<[u8; 4]>::try_from(&self.addr[..4]).ok()?))
            }
            gikev2_family_t::GIKEV2_FAMILY_IPV6 => Some(IpAddr::from(self.addr)),
            _ => None,
        }
    }

    pub(crate) const NONE: Self = Self {
        family: gikev2_family_t::GIKEV2_FAMILY_NONE,
        addr: [0; 16],
        port: 0,
    };

    pub(crate) fn from_socket(s: Option<SocketAddr>) -> Self {
        match s {
            Some(s) => {
                let (family, addr) = addr16(s.ip());
                Self {
                    family,
                    addr,
                    port: s.port(),
                }
            }
            None => Self::NONE,
        }
    }
}

impl gikev2_ts_t {
    pub(crate) const NONE: Self = Self {
        family: gikev2_family_t::GIKEV2_FAMILY_NONE,
        protocol: 0,
        start_port: 0,
        end_port: 0,
        start: [0; 16],
        end: [0; 16],
    };

    pub(crate) fn from_ts(ts: &TrafficSelector) -> Self {
        let (a, b): (IpAddr, IpAddr) = match ts.addrs {
            AddrRange::V4(a, b) => (a.into(), b.into()),
            AddrRange::V6(a, b) => (a.into(), b.into()),
        };
        let (family, start) = addr16(a);
        let (_, end) = addr16(b);
        Self {
            family,
            protocol: ts.ip_protocol,
            start_port: ts.start_port,
            end_port: ts.end_port,
            start,
            end,
        }
    }
}

/// A group ID as the settings spell it (`config::parse_group_id`), so an
/// operator can paste it back into a command.
pub(crate) fn group_name(id: &GroupId) -> String {
    use crate::iana::IdType;
    let text = || String::from_utf8_lossy(&id.data).into_owned();
    match id.id_type {
        IdType::ID_IPV4_ADDR | IdType::ID_IPV6_ADDR => {
            let ip = match <[u8; 4]>::try_from(id.data.as_slice()) {
                Ok(a) => Some(IpAddr::from(a)),
                Err(_) => <[u8; 16]>::try_from(id.data.as_slice())
                    .ok()
                    .map(IpAddr::from),
            };
            ip.map_or_else(text, |ip| ip.to_string())
        }
        IdType::ID_FQDN => format!("fqdn:{}", text()),
        IdType::ID_RFC822_ADDR => format!("email:{}", text()),
        _ => text(),
    }
}

/// Parses a group ID string of C's, as the `id` setting is written.
///
/// # Safety
/// As [`c_str`].
pub(crate) unsafe fn group_arg(p: *const c_char) -> FfiResult<GroupId> {
    // SAFETY: forwarded contract.
    let s = unsafe { utf8(p, "group") }?;
    crate::config::parse_group_id(s)
        .map_err(|e| fail(GIKEV2_ERR_INVALID_ARG, format!("group '{s}': {e}")))
}

pub(crate) fn hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn last_error() -> String {
        // SAFETY: gikev2_last_error returns a valid NUL-terminated string.
        unsafe { CStr::from_ptr(gikev2_last_error()) }
            .to_string_lossy()
            .into_owned()
    }

    #[test]
    fn panics_become_error_codes_and_messages() {
        let code = guard("test_entry", || panic!("boom {}", 42));
        assert_eq!(code, GIKEV2_ERR_PANIC);
        assert_eq!(last_error(), "test_entry: internal error: boom 42");
        assert_eq!(guard("test_entry", || Ok(())), GIKEV2_OK);
        assert_eq!(last_error(), "");
        let code = guard("test_entry", || Err(fail(GIKEV2_ERR_CONFIG, "a\0b: c")));
        assert_eq!(code, GIKEV2_ERR_CONFIG);
        assert_eq!(last_error(), "ab: c");
    }

    #[test]
    fn a_handle_poisoned_by_a_panic_stays_refused() {
        let m = Mutex::new(0u8);
        let code = guard("test_entry", || {
            let _held = lock(&m)?;
            panic!("inside");
        });
        assert_eq!(code, GIKEV2_ERR_PANIC);
        assert_eq!(lock(&m).unwrap_err().code, GIKEV2_ERR_PANIC);
    }

    #[test]
    fn output_buffers_report_the_size_needed() {
        let mut buf = [0u8; 4];
        let mut len = buf.len();
        // SAFETY: buf and len outlive `out`.
        let mut out = unsafe { OutBuf::new(buf.as_mut_ptr(), &mut len, "buf") }.unwrap();
        assert_eq!(
            out.write(b"hello").unwrap_err().code,
            GIKEV2_ERR_BUFFER_TOO_SMALL
        );
        assert_eq!(len, 5);
        assert_eq!(buf, [0; 4], "nothing written");
        let mut len = 0;
        // SAFETY: a NULL buffer with capacity 0 is a size query.
        let mut out = unsafe { OutBuf::new(std::ptr::null_mut(), &mut len, "buf") }.unwrap();
        assert!(out.write(b"").is_ok());
        assert_eq!(
            out.write_text("ab").unwrap_err().code,
            GIKEV2_ERR_BUFFER_TOO_SMALL
        );
        assert_eq!(len, 3, "the NUL counts");
        let mut len = 1;
        // SAFETY: deliberately NULL with a capacity: refused, not used.
        let r = unsafe { OutBuf::new(std::ptr::null_mut(), &mut len, "buf") };
        assert_eq!(r.err().unwrap().code, GIKEV2_ERR_NULL);
    }

    #[test]
    fn group_names_read_back() {
        for s in [
            "market-data",
            "fqdn:video.example.com",
            "email:g@example.com",
            "10.1.2.3",
        ] {
            let id = crate::config::parse_group_id(s).unwrap();
            assert_eq!(group_name(&id), s);
        }
    }
}
