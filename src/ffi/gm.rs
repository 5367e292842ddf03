//! The GM engine (one group membership) behind an opaque handle.

use core::ffi::c_char;
use std::fmt::Write as _;
use std::sync::Mutex;

use super::gikev2_error_t::{self, *};
use super::records::{payloads_from_records, records_from_payloads};
use super::{
    FfiError, FfiResult, GIKEV2_REKEY_SPI_LEN, IkeInput, OutBuf, bytes, fail, gikev2_endpoint_t,
    gikev2_ts_t, group_name, guard, handle, hex, lock, non_null, put, put_deadline,
    registration_exchange, settings,
};
use crate::config::{FailMode, membership_settings};
use crate::crypto::OsRng;
use crate::gm::{Gm, GmAction, GmError, ReregisterReason, SaDirection};
use crate::iana::NotifyType;
use crate::policy::Mode;
use crate::rekey_message::RekeyError;
use crate::wire::{RekeySpi, SaRef};

/// A GM: this host's membership in one group. Created with gikev2_gm_new(),
/// freed with gikev2_gm_destroy(). Safe to use from several threads (calls
/// are serialized by a mutex inside).
pub struct gikev2_gm_t {
    state: Mutex<GmState>,
    fail_mode: FailMode,
}

struct GmState {
    engine: Gm,
    /// An action that did not fit the caller's key buffers.
    front: Option<GmAction>,
}

/// What gikev2_gm_poll_action() returned.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum gikev2_gm_action_kind_t {
    /// Nothing to do.
    GIKEV2_GM_ACTION_NONE = 0,
    /// Install a Data-Security SA (XFRM state and policy) as described.
    GIKEV2_GM_ACTION_INSTALL = 1,
    /// Delete the SA `protocol`/`spi` in `direction`.
    GIKEV2_GM_ACTION_DELETE = 2,
    /// Receive GSA_REKEY datagrams for Rekey SA `rekey_spi` on the
    /// multicast address and port `rekey_dst`, and hand them to
    /// gikev2_gm_rekey().
    GIKEV2_GM_ACTION_LISTEN_REKEY = 3,
    /// Stop receiving for Rekey SA `rekey_spi`.
    GIKEV2_GM_ACTION_STOP_REKEY = 4,
    /// Register again (GSA_REGISTRATION on a kept IKE SA, or IKE_SA_INIT
    /// and GSA_AUTH), for `reason`.
    GIKEV2_GM_ACTION_REREGISTER = 5,
}

/// A Data-Security SA's protocol (IANA Security Protocol Identifier values,
/// as charon's protocol_id_t).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum gikev2_protocol_t {
    GIKEV2_PROTO_NONE = 0,
    GIKEV2_PROTO_AH = 2,
    GIKEV2_PROTO_ESP = 3,
}

/// Direction of an SA in the kernel.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum gikev2_direction_t {
    GIKEV2_DIR_NONE = 0,
    GIKEV2_DIR_IN = 1,
    GIKEV2_DIR_OUT = 2,
}

/// IPsec mode of a Data-Security SA. Tunnel mode is tunnel mode with
/// address preservation (RFC 5374).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum gikev2_mode_t {
    GIKEV2_MODE_NONE = 0,
    GIKEV2_MODE_TUNNEL = 1,
    GIKEV2_MODE_TRANSPORT = 2,
}

/// Why a GM asks to register again.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum gikev2_reregister_reason_t {
    GIKEV2_REREGISTER_NONE = 0,
    /// A GSA_REKEY arrived on an announced next SPI: one was lost.
    GIKEV2_REREGISTER_LOST_REKEY = 1,
    /// An SA is about to expire and nothing replaced it.
    GIKEV2_REREGISTER_EXPIRING = 2,
    /// A sender got a counter-mode SA but holds no Sender-ID.
    GIKEV2_REREGISTER_NO_SENDER_ID = 3,
    /// A Sender-ID does not fit the group's Sender-ID bits.
    GIKEV2_REREGISTER_SENDER_ID_TOO_WIDE = 4,
    /// The GCKS excluded this member (or deleted the group SA).
    GIKEV2_REREGISTER_EXCLUDED = 5,
    /// The last registration failed: a retry after a backoff.
    GIKEV2_REREGISTER_RETRY = 6,
    /// The IKE SA an inband group's rekeys come over went down.
    GIKEV2_REREGISTER_IKE_SA_LOST = 7,
}

/// An action of the GM for its host. Fields not used by `kind` are zero.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct gikev2_gm_action_t {
    pub kind: gikev2_gm_action_kind_t,
    /// INSTALL, DELETE: the SA's protocol, SPI (host order) and direction.
    pub protocol: gikev2_protocol_t,
    pub spi: u32,
    pub direction: gikev2_direction_t,
    /// INSTALL: the mode and the traffic selectors (the destination is the
    /// group's multicast address).
    pub mode: gikev2_mode_t,
    pub src: gikev2_ts_t,
    pub dst: gikev2_ts_t,
    /// INSTALL: ENCR transform ID (0 for AH) and its Key Length attribute
    /// in bits (0 when it has none); INTEG transform ID (0 for none, as
    /// with AEAD ciphers). The keys are in the caller's key buffers: the
    /// encryption key with its salt appended for AEAD and counter modes (as
    /// charon's kernel interface takes it), and the integrity key.
    pub encr_id: u16,
    pub encr_key_bits: u16,
    pub integ_id: u16,
    /// INSTALL: hard lifetime in seconds.
    pub lifetime_secs: u32,
    /// INSTALL: replay window; 0 disables replay protection (several
    /// senders share the SA).
    pub replay_window: u32,
    /// LISTEN_REKEY, STOP_REKEY: the Rekey SA's SPI (the IKE header's
    /// initiator SPI followed by the responder SPI).
    pub rekey_spi: [u8; GIKEV2_REKEY_SPI_LEN],
    /// LISTEN_REKEY: the multicast address and UDP port of GSA_REKEY.
    pub rekey_dst: gikev2_endpoint_t,
    /// REREGISTER: why.
    pub reason: gikev2_reregister_reason_t,
    /// Zero; room to grow.
    pub reserved: [u64; 4],
}

impl gikev2_gm_action_t {
    const NONE: Self = Self {
        kind: gikev2_gm_action_kind_t::GIKEV2_GM_ACTION_NONE,
        protocol: gikev2_protocol_t::GIKEV2_PROTO_NONE,
        spi: 0,
        direction: gikev2_direction_t::GIKEV2_DIR_NONE,
        mode: gikev2_mode_t::GIKEV2_MODE_NONE,
        src: gikev2_ts_t::NONE,
        dst: gikev2_ts_t::NONE,
        encr_id: 0,
        encr_key_bits: 0,
        integ_id: 0,
        lifetime_secs: 0,
        replay_window: 0,
        rekey_spi: [0; GIKEV2_REKEY_SPI_LEN],
        rekey_dst: gikev2_endpoint_t::NONE,
        reason: gikev2_reregister_reason_t::GIKEV2_REREGISTER_NONE,
        reserved: [0; 4],
    };
}

fn gm_error(e: GmError) -> FfiError {
    let code = match &e {
        GmError::Refused(_) => GIKEV2_ERR_REFUSED,
        GmError::Decode(_) | GmError::Rekey(RekeyError::Decode(_)) => GIKEV2_ERR_DECODE,
        GmError::Rekey(_) | GmError::Crypto(_) => GIKEV2_ERR_CRYPTO,
        GmError::UnknownRekeySa(_) => GIKEV2_ERR_UNKNOWN_SA,
        GmError::Replay { .. } => GIKEV2_ERR_REPLAY,
        GmError::Unacceptable(_) => GIKEV2_ERR_UNACCEPTABLE,
        GmError::NotRegistered => GIKEV2_ERR_STATE,
    };
    fail(code, e.to_string())
}

/// Creates a GM for the membership configured by `count` key/value
/// settings (keys relative to the membership's section: `id`, `role`,
/// `sender_ids`, `accept.esp`, ...). Errors: GIKEV2_ERR_CONFIG with "key:
/// reason". On success `*gm` is a new handle the caller owns. `keys` and
/// `values` are borrowed for the call.
///
/// # Safety
/// `keys`/`values` are NULL or arrays of `count` NULL-or-NUL-terminated
/// strings; `gm` is NULL or valid for writing a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn gikev2_gm_new(
    keys: *const *const c_char,
    values: *const *const c_char,
    count: usize,
    gm: *mut *mut gikev2_gm_t,
) -> gikev2_error_t {
    guard("gikev2_gm_new", || {
        non_null(gm, "gm")?;
        // SAFETY: per the function's contract.
        let pairs = unsafe { settings(keys, values, count) }?;
        let (cfg, fail_mode) =
            membership_settings(pairs).map_err(|e| fail(GIKEV2_ERR_CONFIG, e.to_string()))?;
        let h = Box::new(gikev2_gm_t {
            state: Mutex::new(GmState {
                engine: Gm::new(cfg, Box::new(OsRng)),
                front: None,
            }),
            fail_mode,
        });
        // SAFETY: checked non-NULL; writable by the caller's contract.
        unsafe { put(gm, "gm", Box::into_raw(h)) }
    })
}

/// Frees a GM handle and everything it holds (keys are wiped). NULL is
/// ignored. No other call may use the handle at the same time or after.
///
/// # Safety
/// `gm` is NULL or a handle from gikev2_gm_new() not yet destroyed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn gikev2_gm_destroy(gm: *mut gikev2_gm_t) {
    if gm.is_null() {
        return;
    }
    guard("gikev2_gm_destroy", || {
        // SAFETY: a live handle from Box::into_raw, given back once.
        drop(unsafe { Box::from_raw(gm) });
        Ok(())
    });
}

/// The G-IKEv2 payload records of a GSA_AUTH or GSA_REGISTRATION request
/// (IDg, SAg if configured, GROUP_SENDER for senders), into `out`.
///
/// # Safety
/// `gm` is NULL or a live handle; `out_len` NULL or readable/writable;
/// `out` NULL or writable for `*out_len` octets.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn gikev2_gm_registration_payloads(
    gm: *const gikev2_gm_t,
    out: *mut u8,
    out_len: *mut usize,
) -> gikev2_error_t {
    guard("gikev2_gm_registration_payloads", || {
        // SAFETY: per the function's contract.
        let h = unsafe { handle(gm, "gm") }?;
        // SAFETY: per the function's contract.
        let mut out = unsafe { OutBuf::new(out, out_len, "out") }?;
        let payloads = lock(&h.state)?.engine.registration_payloads();
        out.write(&records_from_payloads(&payloads))
    })
}

/// The payload records telling the GCKS this member leaves or cannot use
/// the policy (IDg and a notification of type `notify_type`), into `out`.
///
/// # Safety
/// As gikev2_gm_registration_payloads().
#[unsafe(no_mangle)]
pub unsafe extern "C" fn gikev2_gm_leave_payloads(
    gm: *const gikev2_gm_t,
    notify_type: u16,
    out: *mut u8,
    out_len: *mut usize,
) -> gikev2_error_t {
    guard("gikev2_gm_leave_payloads", || {
        // SAFETY: per the function's contract.
        let h = unsafe { handle(gm, "gm") }?;
        // SAFETY: per the function's contract.
        let mut out = unsafe { OutBuf::new(out, out_len, "out") }?;
        let payloads = lock(&h.state)?
            .engine
            .leave_payloads(NotifyType(notify_type));
        out.write(&records_from_payloads(&payloads))
    })
}

/// Takes the response to this member's GSA_AUTH (39) or GSA_REGISTRATION
/// (40): its payload records inside SK, and the IKE SA's SK_d, PRF and Key
/// Wrap Algorithm (IANA transform IDs). On success the SAs to install come
/// out of gikev2_gm_poll_action(). GIKEV2_ERR_REFUSED: the GCKS answered
/// with an error notification, whose type is stored in `*refused_notify`
/// (which may be NULL if not wanted; it is set to 0 on other outcomes).
/// Other errors leave the GM unchanged. Buffers are borrowed for the call.
///
/// # Safety
/// Every pointer is NULL or valid as described (buffers for their lengths).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn gikev2_gm_registration_response(
    gm: *mut gikev2_gm_t,
    now_ms: u64,
    exchange: u8,
    records: *const u8,
    records_len: usize,
    sk_d: *const u8,
    sk_d_len: usize,
    prf_id: u16,
    kwa_id: u16,
    refused_notify: *mut u16,
) -> gikev2_error_t {
    guard("gikev2_gm_registration_response", || {
        if !refused_notify.is_null() {
            // SAFETY: non-NULL and writable per the contract.
            unsafe { put(refused_notify, "refused_notify", 0) }?;
        }
        // SAFETY: per the function's contract.
        let h = unsafe { handle(gm, "gm") }?;
        // SAFETY: per the function's contract.
        let records = unsafe { bytes(records, records_len, "records") }?;
        // SAFETY: per the function's contract.
        let sk_d = unsafe { bytes(sk_d, sk_d_len, "sk_d") }?;
        let ex = registration_exchange(exchange)?;
        let ike = IkeInput::new(sk_d, prf_id, kwa_id)?;
        let payloads = payloads_from_records(records)?;
        let r =
            lock(&h.state)?
                .engine
                .handle_registration_response(now_ms, ex, &payloads, ike.keys());
        if let (Err(GmError::Refused(n)), false) = (&r, refused_notify.is_null()) {
            // SAFETY: non-NULL and writable per the contract.
            unsafe { put(refused_notify, "refused_notify", n.0) }?;
        }
        r.map_err(gm_error)
    })
}

/// Takes a GSA_REKEY datagram received for one of the Rekey SAs this GM
/// listens on, as it arrived (on port 4500 the non-ESP marker comes first
/// and is dropped by the core).
/// GIKEV2_ERR_REPLAY also for retransmitted copies after the first (not a
/// fault); GIKEV2_ERR_UNKNOWN_SA for a Rekey SA not held; GIKEV2_ERR_CRYPTO
/// when protection, signature or keys fail — including a member excluded
/// by this very message, which then queues a REREGISTER action. The GM is
/// unchanged by a datagram it refuses. `datagram` is borrowed for the call.
///
/// # Safety
/// `gm` is NULL or a live handle; `datagram` NULL or readable for `len`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn gikev2_gm_rekey(
    gm: *mut gikev2_gm_t,
    now_ms: u64,
    datagram: *const u8,
    len: usize,
) -> gikev2_error_t {
    guard("gikev2_gm_rekey", || {
        // SAFETY: per the function's contract.
        let h = unsafe { handle(gm, "gm") }?;
        // SAFETY: per the function's contract.
        let datagram = unsafe { bytes(datagram, len, "datagram") }?;
        lock(&h.state)?
            .engine
            .handle_rekey(now_ms, datagram)
            .map_err(gm_error)
    })
}

/// Takes a GSA_INBAND_REKEY request's payload records (inside SK) received
/// on the IKE SA with these SK_d, PRF and KWA (IANA transform IDs). The
/// exchange's response carries no G-IKEv2 payloads. Buffers are borrowed
/// for the call.
///
/// # Safety
/// Every pointer is NULL or valid as described (buffers for their lengths).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn gikev2_gm_inband_rekey(
    gm: *mut gikev2_gm_t,
    now_ms: u64,
    records: *const u8,
    records_len: usize,
    sk_d: *const u8,
    sk_d_len: usize,
    prf_id: u16,
    kwa_id: u16,
) -> gikev2_error_t {
    guard("gikev2_gm_inband_rekey", || {
        // SAFETY: per the function's contract.
        let h = unsafe { handle(gm, "gm") }?;
        // SAFETY: per the function's contract.
        let records = unsafe { bytes(records, records_len, "records") }?;
        // SAFETY: per the function's contract.
        let sk_d = unsafe { bytes(sk_d, sk_d_len, "sk_d") }?;
        let ike = IkeInput::new(sk_d, prf_id, kwa_id)?;
        let payloads = payloads_from_records(records)?;
        lock(&h.state)?
            .engine
            .handle_inband_rekey(now_ms, &payloads, ike.keys())
            .map_err(gm_error)
    })
}

/// When gikev2_gm_handle_timeout() has work next, as
/// gikev2_gcks_poll_timeout().
///
/// # Safety
/// `gm` is NULL or a live handle; the out-pointers NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn gikev2_gm_poll_timeout(
    gm: *const gikev2_gm_t,
    has_deadline: *mut bool,
    deadline_ms: *mut u64,
) -> gikev2_error_t {
    guard("gikev2_gm_poll_timeout", || {
        // SAFETY: per the function's contract.
        let h = unsafe { handle(gm, "gm") }?;
        non_null(has_deadline, "has_deadline")?;
        non_null(deadline_ms, "deadline_ms")?;
        let at = lock(&h.state)?.engine.poll_timeout();
        // SAFETY: checked non-NULL; writable per the contract.
        unsafe { put_deadline(has_deadline, deadline_ms, at) }
    })
}

/// Runs what is due at `now_ms`: outbound SAs activated after ATD, SAs
/// deleted after DTD or at expiry, re-registration (queuing actions).
///
/// # Safety
/// `gm` is NULL or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn gikev2_gm_handle_timeout(
    gm: *mut gikev2_gm_t,
    now_ms: u64,
) -> gikev2_error_t {
    guard("gikev2_gm_handle_timeout", || {
        // SAFETY: per the function's contract.
        let h = unsafe { handle(gm, "gm") }?;
        lock(&h.state)?.engine.handle_timeout(now_ms);
        Ok(())
    })
}

/// Tells the membership its own address (its registering IKE SA's local
/// address), by which it knows which per-sender SA is its own to send on;
/// NULL or family NONE: unknown (it then sends on every single-sender SA
/// it gets). Call it before handing over a registration response.
///
/// # Safety
/// `gm` is NULL or a live handle; `addr` NULL or readable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn gikev2_gm_set_local_address(
    gm: *mut gikev2_gm_t,
    addr: *const gikev2_endpoint_t,
) -> gikev2_error_t {
    guard("gikev2_gm_set_local_address", || {
        // SAFETY: per the function's contract.
        let h = unsafe { handle(gm, "gm") }?;
        // SAFETY: per the function's contract.
        let addr = unsafe { addr.as_ref() }.and_then(gikev2_endpoint_t::ip);
        lock(&h.state)?.engine.set_local_address(addr);
        Ok(())
    })
}

/// Whether the membership's host keeps the group's traffic blocked when
/// its keys expire with nothing to replace them (setting `fail_mode`,
/// default closed): writes it to `*closed`.
///
/// # Safety
/// `gm` is NULL or a live handle; `closed` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn gikev2_gm_fail_closed(
    gm: *const gikev2_gm_t,
    closed: *mut bool,
) -> gikev2_error_t {
    guard("gikev2_gm_fail_closed", || {
        non_null(closed, "closed")?;
        // SAFETY: per the function's contract.
        let h = unsafe { handle(gm, "gm") }?;
        let v = h.fail_mode == FailMode::Closed;
        // SAFETY: checked non-NULL; writable per the contract.
        unsafe { closed.write(v) };
        Ok(())
    })
}

/// Reports that the IKE SA the membership registered on went down at
/// `now_ms`. For a group rekeyed inband the GM then registers again (a
/// REREGISTER action, reason IKE_SA_LOST, within 2.5 to 5 s); `*reregisters`
/// (may be NULL) says whether it will.
///
/// # Safety
/// `gm` is NULL or a live handle; `reregisters` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn gikev2_gm_ike_sa_down(
    gm: *mut gikev2_gm_t,
    now_ms: u64,
    reregisters: *mut bool,
) -> gikev2_error_t {
    guard("gikev2_gm_ike_sa_down", || {
        // SAFETY: per the function's contract.
        let h = unsafe { handle(gm, "gm") }?;
        let again = lock(&h.state)?.engine.ike_sa_down(now_ms);
        if !reregisters.is_null() {
            // SAFETY: non-NULL and writable per the contract.
            unsafe { reregisters.write(again) };
        }
        Ok(())
    })
}

/// Reports that a registration attempt failed at `now_ms` (no IKE SA with
/// the GCKS came up, or it went without an answer). The GM keeps its SAs
/// and asks to register again (a REREGISTER action, reason RETRY) after an
/// exponential backoff with jitter: 5 s doubling up to 300 s. Writes the
/// wait in ms to `*retry_ms` and the failures in a row to `*failures`
/// (either may be NULL).
///
/// # Safety
/// `gm` is NULL or a live handle; `retry_ms` and `failures` are NULL or
/// writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn gikev2_gm_registration_failed(
    gm: *mut gikev2_gm_t,
    now_ms: u64,
    retry_ms: *mut u64,
    failures: *mut u32,
) -> gikev2_error_t {
    guard("gikev2_gm_registration_failed", || {
        // SAFETY: per the function's contract.
        let h = unsafe { handle(gm, "gm") }?;
        let mut state = lock(&h.state)?;
        let wait = state.engine.registration_failed(now_ms);
        let count = state.engine.failures();
        if !retry_ms.is_null() {
            // SAFETY: non-NULL and writable per the contract.
            unsafe { retry_ms.write(wait) };
        }
        if !failures.is_null() {
            // SAFETY: non-NULL and writable per the contract.
            unsafe { failures.write(count) };
        }
        Ok(())
    })
}

/// Takes the next action: fills `*action` (kind NONE when there is none).
/// For INSTALL the encryption key is copied into `encr_key` and the
/// integrity key into `integ_key`, their lengths into `*encr_key_len` and
/// `*integ_key_len` (capacities on entry; 0 when absent and for other
/// kinds). Buffers of GIKEV2_MAX_KEY_LEN octets always suffice. The caller
/// must wipe both key buffers (memwipe) once the SA is installed.
/// GIKEV2_ERR_BUFFER_TOO_SMALL: both lengths hold the sizes needed,
/// nothing was written to `*action` or the buffers, and the action stays
/// first in the queue.
///
/// # Safety
/// `gm` is NULL or a live handle; `action` NULL or writable; each length
/// NULL or readable/writable; each key buffer NULL or writable for its
/// length.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn gikev2_gm_poll_action(
    gm: *mut gikev2_gm_t,
    action: *mut gikev2_gm_action_t,
    encr_key: *mut u8,
    encr_key_len: *mut usize,
    integ_key: *mut u8,
    integ_key_len: *mut usize,
) -> gikev2_error_t {
    guard("gikev2_gm_poll_action", || {
        // SAFETY: per the function's contract.
        let h = unsafe { handle(gm, "gm") }?;
        non_null(action, "action")?;
        // SAFETY: per the function's contract.
        let mut ek = unsafe { OutBuf::new(encr_key, encr_key_len, "encr_key") }?;
        // SAFETY: per the function's contract.
        let mut ik = unsafe { OutBuf::new(integ_key, integ_key_len, "integ_key") }?;
        let mut st = lock(&h.state)?;
        let next = match st.front.take() {
            Some(a) => Some(a),
            None => st.engine.poll_action(),
        };
        let (a, keys) = gm_action(next.as_ref());
        let (e, i) = keys.unwrap_or((&[], &[]));
        let (e_len, i_len) = (e.len(), i.len());
        if !ek.fits(e_len) || !ik.fits(i_len) {
            ek.set_len(e_len);
            ik.set_len(i_len);
            st.front = next;
            return Err(fail(
                GIKEV2_ERR_BUFFER_TOO_SMALL,
                format!("key buffers need {e_len} and {i_len} octets"),
            ));
        }
        ek.write(e)?;
        ik.write(i)?;
        // SAFETY: checked non-NULL; writable per the contract.
        unsafe { put(action, "action", a) }
    })
}

type Keys<'a> = Option<(&'a [u8], &'a [u8])>;

fn gm_action(a: Option<&GmAction>) -> (gikev2_gm_action_t, Keys<'_>) {
    use gikev2_gm_action_kind_t::*;
    let mut out = gikev2_gm_action_t::NONE;
    let sa = |out: &mut gikev2_gm_action_t, sa: &SaRef, d: SaDirection| {
        (out.protocol, out.spi) = match *sa {
            SaRef::Esp(spi) => (gikev2_protocol_t::GIKEV2_PROTO_ESP, spi),
            SaRef::Ah(spi) => (gikev2_protocol_t::GIKEV2_PROTO_AH, spi),
            // Rekey SAs come as LISTEN/STOP_REKEY, never as INSTALL/DELETE.
            SaRef::Rekey(_) => (gikev2_protocol_t::GIKEV2_PROTO_NONE, 0),
        };
        out.direction = match d {
            SaDirection::Inbound => gikev2_direction_t::GIKEV2_DIR_IN,
            SaDirection::Outbound => gikev2_direction_t::GIKEV2_DIR_OUT,
        };
    };
    let mut keys = None;
    match a {
        None => {}
        Some(GmAction::Install(t)) => {
            out.kind = GIKEV2_GM_ACTION_INSTALL;
            sa(&mut out, &t.sa, t.direction);
            out.mode = match t.mode {
                Mode::Tunnel => gikev2_mode_t::GIKEV2_MODE_TUNNEL,
                Mode::Transport => gikev2_mode_t::GIKEV2_MODE_TRANSPORT,
            };
            out.src = gikev2_ts_t::from_ts(&t.src);
            out.dst = gikev2_ts_t::from_ts(&t.dst);
            if let Some((id, bits)) = t.encr {
                out.encr_id = id.0;
                out.encr_key_bits = bits.unwrap_or(0);
            }
            out.integ_id = t.integ.0;
            out.lifetime_secs = t.lifetime_secs;
            out.replay_window = t.replay_window;
            keys = Some((t.encr_key.expose(), t.integ_key.expose()));
        }
        Some(GmAction::Delete { sa: s, direction }) => {
            out.kind = GIKEV2_GM_ACTION_DELETE;
            sa(&mut out, s, *direction);
        }
        Some(GmAction::ListenRekey { spi, dst }) => {
            out.kind = GIKEV2_GM_ACTION_LISTEN_REKEY;
            out.rekey_spi = spi.0;
            out.rekey_dst = gikev2_endpoint_t::from_socket(Some(*dst));
        }
        Some(GmAction::StopRekey { spi }) => {
            out.kind = GIKEV2_GM_ACTION_STOP_REKEY;
            out.rekey_spi = spi.0;
        }
        Some(GmAction::Reregister { reason }) => {
            use gikev2_reregister_reason_t::*;
            out.kind = GIKEV2_GM_ACTION_REREGISTER;
            out.reason = match reason {
                ReregisterReason::LostRekey => GIKEV2_REREGISTER_LOST_REKEY,
                ReregisterReason::Expiring => GIKEV2_REREGISTER_EXPIRING,
                ReregisterReason::NoSenderId => GIKEV2_REREGISTER_NO_SENDER_ID,
                ReregisterReason::SenderIdTooWide => GIKEV2_REREGISTER_SENDER_ID_TOO_WIDE,
                ReregisterReason::Excluded => GIKEV2_REREGISTER_EXCLUDED,
                ReregisterReason::Retry => GIKEV2_REREGISTER_RETRY,
                ReregisterReason::IkeSaLost => GIKEV2_REREGISTER_IKE_SA_LOST,
            };
        }
    }
    (out, keys)
}

/// Writes the operator's view of the membership as text, one line for the
/// group and one per Rekey SA and Data-Security SA, NUL-terminated; lengths
/// as gikev2_gcks_status().
///
/// # Safety
/// `gm` is NULL or a live handle; `text_len` NULL or readable/writable;
/// `text` NULL or writable for `*text_len` octets.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn gikev2_gm_status(
    gm: *const gikev2_gm_t,
    now_ms: u64,
    text: *mut c_char,
    text_len: *mut usize,
) -> gikev2_error_t {
    guard("gikev2_gm_status", || {
        // SAFETY: per the function's contract.
        let h = unsafe { handle(gm, "gm") }?;
        // SAFETY: per the function's contract.
        let mut out = unsafe { OutBuf::new(text.cast(), text_len, "text") }?;
        let s = lock(&h.state)?.engine.status(now_ms);
        out.write_text(&status_text(&s))
    })
}

pub(crate) fn status_text(s: &crate::gm::GmStatus) -> String {
    let list = |v: &[u32]| {
        if v.is_empty() {
            "none".to_owned()
        } else {
            v.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
        }
    };
    let mut t = String::new();
    let _ = write!(
        t,
        "group {}: {}",
        group_name(&s.group),
        if s.registered {
            "registered"
        } else {
            "not registered"
        }
    );
    if let Some(m) = s.last_message_id {
        let _ = write!(t, ", last message ID {m}");
    }
    let _ = writeln!(
        t,
        ", sender IDs {}, key path {}",
        list(&s.sender_ids),
        list(&s.key_path)
    );
    for spi in &s.rekey_spis {
        let _ = writeln!(t, "  rekey SA {}", hex(&spi.0));
    }
    for (sa, inbound, outbound, exp) in &s.teks {
        let (proto, spi) = match sa {
            SaRef::Esp(s) => ("ESP", *s),
            SaRef::Ah(s) => ("AH", *s),
            SaRef::Rekey(_) => continue,
        };
        let dirs = match (inbound, outbound) {
            (true, true) => "in+out",
            (true, false) => "in",
            (false, true) => "out",
            (false, false) => "pending",
        };
        let _ = writeln!(
            t,
            "  tek {proto} spi 0x{spi:08x} {dirs} expires in {}s",
            exp / 1000
        );
    }
    t
}

/// The algorithms of a Rekey SA, from gikev2_gm_rekey_sa_keys().
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct gikev2_rekey_sa_algs_t {
    /// ENCR transform ID (IANA, as charon's encryption_algorithm_t) and
    /// its Key Length attribute in bits (0 when it has none).
    pub encr_id: u16,
    pub encr_key_bits: u16,
    /// INTEG transform ID (IANA, as integrity_algorithm_t); 0 (NONE) with
    /// an AEAD cipher.
    pub integ_id: u16,
    /// Zero; room to grow.
    pub reserved: [u64; 2],
}

/// The algorithms and keys of the Rekey SA `rekey_spi` (GIKEV2_REKEY_SPI_LEN
/// octets, as in a LISTEN_REKEY action), for a packet analyser: Wireshark's
/// IKEv2 decryption table takes them as SK_ei/SK_er and SK_ai/SK_ar. The
/// encryption key GSK_e (with the salt appended for AEAD ciphers, as
/// Wireshark and charon take it) is copied into `encr_key`, the integrity
/// key GSK_a (empty with AEAD) into `integ_key`, their lengths into
/// `*encr_key_len` and `*integ_key_len` (capacities on entry; buffers of
/// GIKEV2_MAX_KEY_LEN octets always suffice). The caller must wipe both
/// buffers (memwipe) after use. The GM holds a Rekey SA from its
/// LISTEN_REKEY action until its STOP_REKEY. Errors: GIKEV2_ERR_UNKNOWN_SA
/// when the GM does not hold it; GIKEV2_ERR_BUFFER_TOO_SMALL with both
/// lengths set to the sizes needed and nothing else written.
///
/// # Safety
/// `gm` is NULL or a live handle; `rekey_spi` NULL or readable for
/// GIKEV2_REKEY_SPI_LEN octets; `algs` NULL or writable; each length NULL
/// or readable/writable; each key buffer NULL or writable for its length.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn gikev2_gm_rekey_sa_keys(
    gm: *const gikev2_gm_t,
    rekey_spi: *const u8,
    algs: *mut gikev2_rekey_sa_algs_t,
    encr_key: *mut u8,
    encr_key_len: *mut usize,
    integ_key: *mut u8,
    integ_key_len: *mut usize,
) -> gikev2_error_t {
    guard("gikev2_gm_rekey_sa_keys", || {
        // SAFETY: per the function's contract.
        let h = unsafe { handle(gm, "gm") }?;
        // SAFETY: NULL or readable for the SPI's length per the contract.
        let spi = unsafe { rekey_spi_arg(rekey_spi) }?;
        let keys = lock(&h.state)?.engine.rekey_sa_keys(spi);
        // SAFETY: forwarded contract.
        unsafe {
            put_rekey_sa_keys(
                keys,
                spi,
                algs,
                encr_key,
                encr_key_len,
                integ_key,
                integ_key_len,
            )
        }
    })
}

/// A Rekey SA's SPI given as GIKEV2_REKEY_SPI_LEN octets.
///
/// # Safety
/// `p` is NULL or readable for GIKEV2_REKEY_SPI_LEN octets.
pub(crate) unsafe fn rekey_spi_arg(p: *const u8) -> FfiResult<RekeySpi> {
    // SAFETY: forwarded contract.
    let spi = unsafe { bytes(p, GIKEV2_REKEY_SPI_LEN, "rekey_spi") }?;
    Ok(RekeySpi(
        spi.try_into().expect("GIKEV2_REKEY_SPI_LEN octets"),
    ))
}

/// Writes a Rekey SA's algorithms and keys for gikev2_gm_rekey_sa_keys()
/// and gikev2_gm_node_rekey_sa_keys(); `keys` None: the SA is not held.
///
/// # Safety
/// As gikev2_gm_rekey_sa_keys() for `algs` and the key buffers.
pub(crate) unsafe fn put_rekey_sa_keys(
    keys: Option<crate::gm::RekeySaSecrets>,
    spi: RekeySpi,
    algs: *mut gikev2_rekey_sa_algs_t,
    encr_key: *mut u8,
    encr_key_len: *mut usize,
    integ_key: *mut u8,
    integ_key_len: *mut usize,
) -> FfiResult {
    non_null(algs, "algs")?;
    // SAFETY: per the function's contract.
    let mut ek = unsafe { OutBuf::new(encr_key, encr_key_len, "encr_key") }?;
    // SAFETY: per the function's contract.
    let mut ik = unsafe { OutBuf::new(integ_key, integ_key_len, "integ_key") }?;
    let keys = keys.ok_or_else(|| {
        fail(
            GIKEV2_ERR_UNKNOWN_SA,
            format!("no Rekey SA {}", hex(&spi.0)),
        )
    })?;
    let (e, i) = (keys.gsk_e.expose(), keys.gsk_a.expose());
    if !ek.fits(e.len()) || !ik.fits(i.len()) {
        ek.set_len(e.len());
        ik.set_len(i.len());
        return Err(fail(
            GIKEV2_ERR_BUFFER_TOO_SMALL,
            format!("key buffers need {} and {} octets", e.len(), i.len()),
        ));
    }
    ek.write(e)?;
    ik.write(i)?;
    let a = gikev2_rekey_sa_algs_t {
        encr_id: keys.encr.id().0,
        encr_key_bits: keys.encr.key_bits().unwrap_or(0),
        integ_id: keys.integ.id().0,
        reserved: [0; 2],
    };
    // SAFETY: checked non-NULL; writable per the contract.
    unsafe { put(algs, "algs", a) }
}
