//! The GCKS engine behind an opaque handle.

use core::ffi::{c_char, c_void};
use std::borrow::Cow;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::gikev2_error_t::{self, *};
use super::records::{payloads_from_records, records_from_payloads};
use super::{
    IkeInput, OutBuf, bytes, c_str, fail, gikev2_endpoint_t, group_arg, group_name, guard, handle,
    hex, lock, non_null, put, put_deadline, registration_exchange, set_last_refusal, settings,
    strings, utf8,
};
use crate::config::group_from_settings;
use crate::crypto::{OsRng, Secret};
use crate::gcks::{Gcks, GcksAction, GcksError, MemberId, Registration};
use crate::iana::{NotifyType, ProtocolId};
use crate::persist::{StateError, read_file, write_file_atomic};
use crate::wire::{GroupId, Notify, Payload};

/// A GCKS: the key server of any number of groups. Created with
/// gikev2_gcks_new(), freed with gikev2_gcks_destroy(). Safe to use from
/// several threads (calls are serialized by a mutex inside).
pub struct gikev2_gcks_t {
    state: Mutex<GcksState>,
    /// Held by gikev2_gcks_drain() from taking an action until its host
    /// has acted on it, so actions leave in the order they were queued.
    pump: Mutex<()>,
}

struct GcksState {
    engine: Gcks,
    /// An action polled from the engine that did not fit the caller's
    /// buffer: handed out first next time.
    front: Option<GcksAction>,
    /// A registration response that did not fit the caller's buffer.
    stash: Option<Stash>,
    /// Groups whose state is kept in a file, saved whenever they changed
    /// before anything they produced leaves the handle.
    state_files: Vec<(GroupId, PathBuf)>,
    /// The latest `now_ms` a call gave, for saves from calls without one.
    last_now: u64,
}

/// Milliseconds since the Unix epoch: saved states carry the wall clock,
/// so a restore can subtract the time the GCKS was down.
fn wall_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl GcksState {
    /// The next action, once the state that produced it is saved (a safety
    /// net: the calls that queue actions have saved already).
    fn take_action(&mut self) -> Option<GcksAction> {
        let now = self.last_now;
        let _ = self.save(now);
        match self.front.take() {
            Some(a) => Some(a),
            None => self.engine.poll_action(),
        }
    }

    /// Saves every changed group that has a state file. A failure is
    /// logged (once per failed save) and returned; the group stays marked
    /// changed, so the next call tries again.
    fn save(&mut self, now_ms: u64) -> Result<(), String> {
        self.last_now = self.last_now.max(now_ms);
        let mut result = Ok(());
        for id in self.engine.dirty_groups() {
            let Some((_, path)) = self.state_files.iter().find(|(g, _)| *g == id) else {
                self.engine.mark_saved(&id);
                continue;
            };
            let saved = self
                .engine
                .save_group(&id, now_ms, wall_ms())
                .map_err(|e| e.to_string())
                .and_then(|state| write_file_atomic(path, &state).map_err(|e| e.to_string()));
            match saved {
                Ok(()) => self.engine.mark_saved(&id),
                Err(e) => {
                    let msg = format!(
                        "group {}: state not saved, a restart would lose its latest \
                         changes: {e}",
                        group_name(&id)
                    );
                    log::error!("{msg}");
                    result = Err(msg);
                }
            }
        }
        result
    }
}

/// A processed registration, kept until the same request asks again.
struct Stash {
    member: u64,
    identities: Vec<String>,
    peer: Option<std::net::IpAddr>,
    refusal: Option<String>,
    exchange: u8,
    request: Vec<u8>,
    sk_d: Secret,
    prf: u16,
    kwa: u16,
    response: Vec<u8>,
}

/// What gikev2_gcks_poll_action() returned.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum gikev2_gcks_action_kind_t {
    /// Nothing to do.
    GIKEV2_GCKS_ACTION_NONE = 0,
    /// Send the GSA_REKEY datagram in the data buffer (a whole IKE message,
    /// with the non-ESP marker when `dst` is port 4500) from `src` (if given)
    /// to `dst`.
    GIKEV2_GCKS_ACTION_MULTICAST = 1,
    /// Run a GSA_INBAND_REKEY exchange on member `member_id`'s IKE SA with
    /// the payload records in the data buffer (inside SK).
    GIKEV2_GCKS_ACTION_INBAND_REKEY = 2,
    /// Close member `member_id`'s IKE SA: it is no longer needed.
    GIKEV2_GCKS_ACTION_CLOSE_IKE_SA = 3,
}

/// An action of the GCKS for its host.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct gikev2_gcks_action_t {
    pub kind: gikev2_gcks_action_kind_t,
    /// INBAND_REKEY, CLOSE_IKE_SA: the member (as given at registration).
    pub member_id: u64,
    /// MULTICAST: the group's rekey address and port.
    pub dst: gikev2_endpoint_t,
    /// MULTICAST: the configured source (family NONE when not fixed).
    pub src: gikev2_endpoint_t,
    /// Zero; room to grow.
    pub reserved: [u64; 4],
}

/// The record and data of `next` as gikev2_gcks_poll_action() hands them
/// out (kind NONE and no data for `None`).
fn action_record(next: Option<&GcksAction>) -> (gikev2_gcks_action_t, Cow<'_, [u8]>) {
    let mut a = gikev2_gcks_action_t {
        kind: gikev2_gcks_action_kind_t::GIKEV2_GCKS_ACTION_NONE,
        member_id: 0,
        dst: gikev2_endpoint_t::NONE,
        src: gikev2_endpoint_t::NONE,
        reserved: [0; 4],
    };
    let payload: Cow<'_, [u8]> = match next {
        None => Cow::Borrowed(&[]),
        Some(GcksAction::Multicast {
            dst, src, datagram, ..
        }) => {
            a.kind = gikev2_gcks_action_kind_t::GIKEV2_GCKS_ACTION_MULTICAST;
            a.dst = gikev2_endpoint_t::from_socket(Some(*dst));
            a.src = gikev2_endpoint_t::from_socket(*src);
            Cow::Borrowed(datagram)
        }
        Some(GcksAction::InbandRekey { member, payloads }) => {
            a.kind = gikev2_gcks_action_kind_t::GIKEV2_GCKS_ACTION_INBAND_REKEY;
            a.member_id = member.0;
            Cow::Owned(records_from_payloads(payloads))
        }
        Some(GcksAction::CloseIkeSa { member }) => {
            a.kind = gikev2_gcks_action_kind_t::GIKEV2_GCKS_ACTION_CLOSE_IKE_SA;
            a.member_id = member.0;
            Cow::Borrowed(&[])
        }
    };
    (a, payload)
}

/// Receives one action from gikev2_gcks_drain(): the record, and the data
/// gikev2_gcks_poll_action() would write (`data_len` octets, borrowed for
/// the call), with the `ctx` given to gikev2_gcks_drain().
pub type gikev2_gcks_action_cb_t = Option<
    unsafe extern "C" fn(
        ctx: *mut c_void,
        action: *const gikev2_gcks_action_t,
        data: *const u8,
        data_len: usize,
    ),
>;

/// Hands every queued action to `cb`, one at a time, in the order the GCKS
/// queued them, and returns when none is left. Whatever threads call it,
/// actions are acted on in that order: a lock of the drain is held from
/// taking an action until `cb` returns, so two GSA_REKEY messages of one
/// Rekey SA are sent in Message ID order (§2.4.1.3). Other calls on the
/// handle go on meanwhile (a thread that queued actions then waits here
/// for its turn to send them); `cb` may call them, but not
/// gikev2_gcks_drain(), and must not unwind. Use this rather than
/// gikev2_gcks_poll_action() wherever several threads drive the handle.
///
/// # Safety
/// `gcks` is NULL or a live handle; `cb` NULL or a function that may be
/// called with `ctx` on this thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn gikev2_gcks_drain(
    gcks: *mut gikev2_gcks_t,
    cb: gikev2_gcks_action_cb_t,
    ctx: *mut c_void,
) -> gikev2_error_t {
    guard("gikev2_gcks_drain", || {
        // SAFETY: per the function's contract.
        let h = unsafe { handle(gcks, "gcks") }?;
        let cb = cb.ok_or_else(|| fail(GIKEV2_ERR_NULL, "cb is NULL"))?;
        let _turn = lock(&h.pump)?;
        loop {
            let next = lock(&h.state)?.take_action();
            let Some(next) = next else {
                return Ok(());
            };
            let (a, data) = action_record(Some(&next));
            // SAFETY: `cb` is callable with `ctx` per the contract; the
            // record and data outlive the call.
            unsafe { cb(ctx, &a, data.as_ptr(), data.len()) };
        }
    })
}

/// Creates a GCKS with no groups; randomness comes from OpenSSL's CSPRNG.
/// On success `*gcks` is a new handle the caller owns.
///
/// # Safety
/// `gcks` is NULL or valid for writing a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn gikev2_gcks_new(gcks: *mut *mut gikev2_gcks_t) -> gikev2_error_t {
    guard("gikev2_gcks_new", || {
        non_null(gcks, "gcks")?;
        let h = Box::new(gikev2_gcks_t {
            state: Mutex::new(GcksState {
                engine: Gcks::new(Box::new(OsRng)),
                front: None,
                stash: None,
                state_files: Vec::new(),
                last_now: 0,
            }),
            pump: Mutex::new(()),
        });
        // SAFETY: checked non-NULL; writable by the caller's contract.
        unsafe { put(gcks, "gcks", Box::into_raw(h)) }
    })
}

/// Frees a GCKS handle and everything it holds (keys are wiped). NULL is
/// ignored. No other call may use the handle at the same time or after.
///
/// # Safety
/// `gcks` is NULL or a handle from gikev2_gcks_new() not yet destroyed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn gikev2_gcks_destroy(gcks: *mut gikev2_gcks_t) {
    if gcks.is_null() {
        return;
    }
    guard("gikev2_gcks_destroy", || {
        // SAFETY: a live handle from Box::into_raw, given back once.
        drop(unsafe { Box::from_raw(gcks) });
        Ok(())
    });
}

fn gcks_error(e: GcksError) -> super::FfiError {
    let code = match &e {
        GcksError::Policy(_) => GIKEV2_ERR_CONFIG,
        GcksError::UnknownGroup | GcksError::UnknownMember => GIKEV2_ERR_NOT_FOUND,
        GcksError::DuplicateGroup => GIKEV2_ERR_EXISTS,
        GcksError::ExclusionNeedsLkh | GcksError::NoRekeySa => GIKEV2_ERR_STATE,
        GcksError::Crypto(_) => GIKEV2_ERR_CRYPTO,
    };
    fail(code, e.to_string())
}

/// Starts serving a group configured by `count` key/value settings (keys
/// relative to the group's section: `id`, `members`, `rekey.address`,
/// `tek.<name>.destination`, ...; see src/config.rs). The signing key named by
/// `rekey.key` is read from that file now. Errors: GIKEV2_ERR_CONFIG with
/// "key: reason" (a key file that cannot be read names its path and the
/// OS error), GIKEV2_ERR_EXISTS if the group ID is served already.
/// `keys` and `values` are borrowed for the call.
///
/// # Safety
/// `gcks` is NULL or a live handle; `keys`/`values` are NULL or arrays of
/// `count` NULL-or-NUL-terminated strings.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn gikev2_gcks_add_group(
    gcks: *mut gikev2_gcks_t,
    now_ms: u64,
    keys: *const *const c_char,
    values: *const *const c_char,
    count: usize,
) -> gikev2_error_t {
    guard("gikev2_gcks_add_group", || {
        // SAFETY: per the function's contract.
        let h = unsafe { handle(gcks, "gcks") }?;
        // SAFETY: per the function's contract.
        let pairs = unsafe { settings(keys, values, count) }?;
        let read = |path: &str| std::fs::read(path).map_err(|e| format!("cannot read {path}: {e}"));
        let cfg = group_from_settings(pairs, &read)
            .map_err(|e| fail(GIKEV2_ERR_CONFIG, e.to_string()))?;
        lock(&h.state)?
            .engine
            .add_group(now_ms, cfg)
            .map_err(gcks_error)
    })
}

/// Like gikev2_gcks_add_group(), with the group's state kept in the file
/// `state_path`: if it exists, the group continues from it (its keys, key
/// tree, members, exclusions, Message IDs and Sender-IDs, deadlines less
/// the time the GCKS was down), so members registered before a restart
/// keep following its rekeys; otherwise the group starts afresh and the
/// file is created (mode 0600, its directory 0700 if missing). From then
/// on the handle saves the group's state atomically (temporary file,
/// fsync, rename, fsync of the directory) after every change, before the
/// change's registration answer or GSA_REKEY leaves it; a failed save is
/// logged, and a registration that could not be saved is answered with
/// REGISTRATION_FAILED. `*restored` (if not NULL) tells whether the state
/// was restored.
///
/// Errors: as gikev2_gcks_add_group(); GIKEV2_ERR_STATE_FILE if the file
/// is corrupt or truncated, from another format version, or written for
/// the group configured differently (the message names the file, the
/// reason and, for a configuration change, the setting); GIKEV2_ERR_IO if
/// it cannot be read, or the new file cannot be written. The file is
/// never changed by a failing call, and the group is then not served.
///
/// # Safety
/// As gikev2_gcks_add_group(); `state_path` NULL or a NUL-terminated
/// path; `restored` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn gikev2_gcks_add_group_state(
    gcks: *mut gikev2_gcks_t,
    now_ms: u64,
    keys: *const *const c_char,
    values: *const *const c_char,
    count: usize,
    state_path: *const c_char,
    restored: *mut bool,
) -> gikev2_error_t {
    guard("gikev2_gcks_add_group_state", || {
        // SAFETY: per the function's contract.
        let h = unsafe { handle(gcks, "gcks") }?;
        // SAFETY: per the function's contract.
        let pairs = unsafe { settings(keys, values, count) }?;
        // SAFETY: per the function's contract.
        let path = PathBuf::from(unsafe { utf8(state_path, "state_path") }?);
        let read = |path: &str| std::fs::read(path).map_err(|e| format!("cannot read {path}: {e}"));
        let cfg = group_from_settings(pairs, &read)
            .map_err(|e| fail(GIKEV2_ERR_CONFIG, e.to_string()))?;
        let id = cfg.id.clone();
        let mut st = lock(&h.state)?;
        if st.state_files.iter().any(|(_, p)| *p == path) {
            return Err(fail(
                GIKEV2_ERR_EXISTS,
                format!("state file {} is another group's", path.display()),
            ));
        }
        let was = restore_or_add(&mut st, now_ms, cfg, &path)?;
        st.state_files.push((id, path));
        if !restored.is_null() {
            // SAFETY: checked non-NULL; writable per the contract.
            unsafe { put(restored, "restored", was) }?;
        }
        Ok(())
    })
}

/// Restores a group from its state file, or adds it fresh and creates
/// the file; true if restored.
fn restore_or_add(
    st: &mut GcksState,
    now_ms: u64,
    cfg: crate::policy::GroupConfig,
    path: &Path,
) -> super::FfiResult<bool> {
    let file_error = |e: StateError| {
        let code = match e {
            StateError::Io(_) => GIKEV2_ERR_IO,
            StateError::Group(_) => GIKEV2_ERR_CONFIG,
            _ => GIKEV2_ERR_STATE_FILE,
        };
        fail(
            code,
            format!("state file {} refused, left untouched: {e}", path.display()),
        )
    };
    match read_file(path).map_err(file_error)? {
        Some(state) => {
            st.engine
                .restore_group(now_ms, wall_ms(), cfg, &state)
                .map_err(file_error)?;
            Ok(true)
        }
        None => {
            let id = cfg.id.clone();
            st.engine.add_group(now_ms, cfg).map_err(gcks_error)?;
            let saved = st
                .engine
                .save_group(&id, now_ms, wall_ms())
                .map_err(gcks_error)
                .and_then(|state| {
                    write_file_atomic(path, &state).map_err(|e| fail(GIKEV2_ERR_IO, e.to_string()))
                });
            if let Err(e) = saved {
                let _ = st.engine.remove_group(&id);
                return Err(e);
            }
            st.engine.mark_saved(&id);
            Ok(false)
        }
    }
}

/// Stops serving the group `group` (written as the `id` setting is);
/// members keep their SAs until they expire. GIKEV2_ERR_NOT_FOUND if not
/// served.
///
/// # Safety
/// `gcks` is NULL or a live handle; `group` NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn gikev2_gcks_remove_group(
    gcks: *mut gikev2_gcks_t,
    group: *const c_char,
) -> gikev2_error_t {
    guard("gikev2_gcks_remove_group", || {
        // SAFETY: per the function's contract.
        let h = unsafe { handle(gcks, "gcks") }?;
        // SAFETY: per the function's contract.
        let id = unsafe { group_arg(group) }?;
        let mut st = lock(&h.state)?;
        st.engine.remove_group(&id).map_err(gcks_error)?;
        st.state_files.retain(|(g, _)| *g != id);
        Ok(())
    })
}

/// Answers a GSA_AUTH (39) or GSA_REGISTRATION (40) request of member
/// `member_id` (charon's IKE SA unique ID). `identities` are the
/// `identity_count` identities charon authenticated the peer as, printed as
/// charon prints them (invalid UTF-8 is replaced): one per completed
/// authentication round, the EAP identity of an EAP round, never a claim.
/// Call it only once charon has completed every round; with no identity
/// the member is refused (AUTHORIZATION_FAILED). `peer` is the address of
/// the member's IKE SA, or NULL if unknown: a sender gets its per-sender
/// SAs for it (refused without). A refusal is an answer (GIKEV2_OK with an
/// error notification); gikev2_last_refusal() then says why.
/// `request`/`request_len` are the request's payload records (IDg, SAg,
/// notifications; other payloads are carried along unread); `sk_d`, the
/// PRF and the Key Wrap Algorithm (IANA transform IDs) are the IKE SA's.
///
/// On GIKEV2_OK, `response` holds the response's payload records (GSA,
/// KD, notifications — or one error notification if the GCKS refuses the
/// member: that is an answer too) and `*response_len` their length.
/// GIKEV2_ERR_BUFFER_TOO_SMALL: the request was processed and its response
/// kept; call again with the same arguments and a buffer of `*response_len`
/// octets to get it (it is not processed twice). GIKEV2_ERR_DECODE: the
/// records were malformed; if `response` can hold it (8 octets), it
/// receives the error notification to answer with (INVALID_SYNTAX or
/// UNSUPPORTED_CRITICAL_PAYLOAD) and `*response_len` its length, otherwise
/// `*response_len` is 0. GIKEV2_ERR_UNSUPPORTED: PRF or KWA unknown.
/// All buffers are borrowed for the call.
///
/// # Safety
/// Every pointer is NULL or valid as described (buffers for their lengths).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn gikev2_gcks_registration(
    gcks: *mut gikev2_gcks_t,
    now_ms: u64,
    member_id: u64,
    identities: *const *const c_char,
    identity_count: usize,
    peer: *const gikev2_endpoint_t,
    exchange: u8,
    request: *const u8,
    request_len: usize,
    sk_d: *const u8,
    sk_d_len: usize,
    prf_id: u16,
    kwa_id: u16,
    response: *mut u8,
    response_len: *mut usize,
) -> gikev2_error_t {
    guard("gikev2_gcks_registration", || {
        // SAFETY: per the function's contract.
        let h = unsafe { handle(gcks, "gcks") }?;
        // SAFETY: per the function's contract.
        let identities = unsafe { strings(identities, identity_count, "identities") }?;
        // SAFETY: per the function's contract.
        let peer = unsafe { peer.as_ref() }.and_then(gikev2_endpoint_t::ip);
        set_last_refusal(None);
        // SAFETY: per the function's contract.
        let request = unsafe { bytes(request, request_len, "request") }?;
        // SAFETY: per the function's contract.
        let sk_d = unsafe { bytes(sk_d, sk_d_len, "sk_d") }?;
        // SAFETY: per the function's contract.
        let mut out = unsafe { OutBuf::new(response, response_len, "response") }?;
        let ex = registration_exchange(exchange)?;
        let ike = IkeInput::new(sk_d, prf_id, kwa_id)?;
        let mut st = lock(&h.state)?;
        if let Some(s) = st.stash.take() {
            let same = s.member == member_id
                && s.identities == identities
                && s.peer == peer
                && s.exchange == exchange
                && s.request == request
                && s.sk_d == ike.sk_d
                && (s.prf, s.kwa) == (prf_id, kwa_id);
            if same {
                if out.fits(s.response.len()) {
                    set_last_refusal(s.refusal.as_deref());
                    return out.write(&s.response);
                }
                let e = out.too_small(s.response.len());
                st.stash = Some(s);
                return Err(e);
            }
        }
        let payloads = match payloads_from_records(request) {
            Ok(p) => p,
            Err(e) => {
                let notify =
                    records_from_payloads(&[Payload::Notify(Notify::plain(e.notify_type()))]);
                if out.write(&notify).is_err() {
                    out.set_len(0);
                }
                return Err(e.into());
            }
        };
        let (answer, refusal) = st.engine.answer_registration(
            now_ms,
            &Registration {
                member: MemberId(member_id),
                identities: &identities.iter().map(|i| i.as_ref()).collect::<Vec<_>>(),
                peer,
                exchange: ex,
                payloads: &payloads,
                ike: ike.keys(),
            },
        );
        // The answer leaves only once the group's state (its new member,
        // Sender-IDs, tree keys) is on disk; a member the GCKS could not
        // remember after a restart is refused instead.
        let (answer, refusal) = match st.save(now_ms) {
            Ok(()) => (answer, refusal),
            Err(_) if answer.iter().any(|p| matches!(p, Payload::Gsa(_))) => (
                vec![Payload::Notify(Notify::plain(
                    NotifyType::REGISTRATION_FAILED,
                ))],
                Some("its state could not be saved".to_owned()),
            ),
            Err(_) => (answer, refusal),
        };
        set_last_refusal(refusal.as_deref());
        let records = records_from_payloads(&answer);
        if out.fits(records.len()) {
            return out.write(&records);
        }
        let e = out.too_small(records.len());
        st.stash = Some(Stash {
            member: member_id,
            identities: identities.into_iter().map(Cow::into_owned).collect(),
            peer,
            refusal,
            exchange,
            request: request.to_vec(),
            sk_d: ike.sk_d,
            prf: prf_id,
            kwa: kwa_id,
            response: records,
        });
        Err(e)
    })
}

/// Excludes member `member_id` from group `group` with forward access
/// control: rekeys the group so the member cannot follow (queues
/// MULTICAST or INBAND_REKEY actions). GIKEV2_ERR_NOT_FOUND for an unknown
/// group or member; GIKEV2_ERR_STATE when a multicast member of a group
/// without LKH cannot be excluded.
///
/// # Safety
/// `gcks` is NULL or a live handle; `group` NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn gikev2_gcks_exclude(
    gcks: *mut gikev2_gcks_t,
    now_ms: u64,
    group: *const c_char,
    member_id: u64,
) -> gikev2_error_t {
    guard("gikev2_gcks_exclude", || {
        // SAFETY: per the function's contract.
        let h = unsafe { handle(gcks, "gcks") }?;
        // SAFETY: per the function's contract.
        let id = unsafe { group_arg(group) }?;
        let mut st = lock(&h.state)?;
        let r = st.engine.exclude(now_ms, &id, MemberId(member_id));
        let _ = st.save(now_ms);
        r.map_err(gcks_error)
    })
}

/// Replaces the Rekey SA (KEK) of group `group` now (operator command),
/// announced by GSA_NEXT_SPI as its lifetime would. GIKEV2_ERR_NOT_FOUND
/// for an unknown group; GIKEV2_ERR_STATE for a group rekeyed only inband.
///
/// # Safety
/// `gcks` is NULL or a live handle; `group` NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn gikev2_gcks_rekey_kek(
    gcks: *mut gikev2_gcks_t,
    now_ms: u64,
    group: *const c_char,
) -> gikev2_error_t {
    guard("gikev2_gcks_rekey_kek", || {
        // SAFETY: per the function's contract.
        let h = unsafe { handle(gcks, "gcks") }?;
        // SAFETY: per the function's contract.
        let id = unsafe { group_arg(group) }?;
        let mut st = lock(&h.state)?;
        let r = st.engine.rekey_kek(now_ms, &id);
        let _ = st.save(now_ms);
        r.map_err(gcks_error)
    })
}

/// Lets `identity`, excluded from group `group`, register again.
/// GIKEV2_ERR_NOT_FOUND for an unknown group or an identity not excluded.
///
/// # Safety
/// `gcks` is NULL or a live handle; `group` and `identity` NULL or
/// NUL-terminated strings.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn gikev2_gcks_readmit(
    gcks: *mut gikev2_gcks_t,
    group: *const c_char,
    identity: *const c_char,
) -> gikev2_error_t {
    guard("gikev2_gcks_readmit", || {
        // SAFETY: per the function's contract.
        let h = unsafe { handle(gcks, "gcks") }?;
        // SAFETY: per the function's contract.
        let id = unsafe { group_arg(group) }?;
        // SAFETY: per the function's contract.
        let identity = unsafe { utf8(identity, "identity") }?;
        let mut st = lock(&h.state)?;
        let r = st.engine.readmit(&id, identity);
        let now = st.last_now;
        let _ = st.save(now);
        r.map_err(gcks_error)
    })
}

/// Rekeys the Data-Security SAs of group `group` now (operator command).
///
/// # Safety
/// `gcks` is NULL or a live handle; `group` NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn gikev2_gcks_rekey(
    gcks: *mut gikev2_gcks_t,
    now_ms: u64,
    group: *const c_char,
) -> gikev2_error_t {
    guard("gikev2_gcks_rekey", || {
        // SAFETY: per the function's contract.
        let h = unsafe { handle(gcks, "gcks") }?;
        // SAFETY: per the function's contract.
        let id = unsafe { group_arg(group) }?;
        let mut st = lock(&h.state)?;
        let r = st.engine.rekey(now_ms, &id);
        let _ = st.save(now_ms);
        r.map_err(gcks_error)
    })
}

/// Finds a member of group `group` for an operator: `member` is the
/// member's identity exactly as gikev2_gcks_status() prints it (e.g.
/// gm3@example.com) or, if no member has that identity, its member ID in
/// decimal. On success `*member_id` is the member's ID.
/// GIKEV2_ERR_NOT_FOUND for an unknown group or member.
///
/// # Safety
/// `gcks` is NULL or a live handle; `group` and `member` NULL or
/// NUL-terminated strings; `member_id` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn gikev2_gcks_find_member(
    gcks: *const gikev2_gcks_t,
    group: *const c_char,
    member: *const c_char,
    member_id: *mut u64,
) -> gikev2_error_t {
    guard("gikev2_gcks_find_member", || {
        // SAFETY: per the function's contract.
        let h = unsafe { handle(gcks, "gcks") }?;
        // SAFETY: per the function's contract.
        let id = unsafe { group_arg(group) }?;
        // SAFETY: per the function's contract.
        let who = unsafe { c_str(member, "member") }?.to_string_lossy();
        non_null(member_id, "member_id")?;
        // Only the member list is read: the clock does not matter.
        let groups = lock(&h.state)?.engine.status(0);
        let g = groups
            .iter()
            .find(|g| g.id == id)
            .ok_or_else(|| gcks_error(GcksError::UnknownGroup))?;
        let found = g
            .members
            .iter()
            .find(|(_, identity, _)| *identity == who)
            .or_else(|| {
                let n = who.parse::<u64>().ok()?;
                g.members.iter().find(|(m, _, _)| *m == n)
            })
            .map(|(m, _, _)| *m)
            .ok_or_else(|| {
                fail(
                    GIKEV2_ERR_NOT_FOUND,
                    format!("group {}: no member '{who}'", group_name(&id)),
                )
            })?;
        // SAFETY: checked non-NULL; writable per the contract.
        unsafe { put(member_id, "member_id", found) }
    })
}

/// Member `member_id`'s IKE SA went down: inband members leave their
/// groups (which may rekey), multicast members stay.
///
/// # Safety
/// `gcks` is NULL or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn gikev2_gcks_ike_sa_down(
    gcks: *mut gikev2_gcks_t,
    now_ms: u64,
    member_id: u64,
) -> gikev2_error_t {
    guard("gikev2_gcks_ike_sa_down", || {
        // SAFETY: per the function's contract.
        let h = unsafe { handle(gcks, "gcks") }?;
        let mut st = lock(&h.state)?;
        st.engine.ike_sa_down(now_ms, MemberId(member_id));
        let _ = st.save(now_ms);
        Ok(())
    })
}

/// Member `old_id`'s IKE SA was rekeyed into `new_id` (charon's unique
/// IDs): the member goes on as `new_id`, and its inband rekeys are wrapped
/// under the new IKE SA's key, derived from `sk_d` (the new IKE SA's SK_d
/// in force, `sk_d_len` octets) and the PRF and KWA it negotiated. Nothing
/// happens for an ID that is no member. Errors: GIKEV2_ERR_UNSUPPORTED
/// (PRF or KWA unknown), GIKEV2_ERR_INVALID_ARG (no SK_d).
///
/// # Safety
/// `gcks` is NULL or a live handle; `sk_d` NULL or readable for
/// `sk_d_len` octets.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn gikev2_gcks_ike_sa_rekeyed(
    gcks: *mut gikev2_gcks_t,
    now_ms: u64,
    old_id: u64,
    new_id: u64,
    sk_d: *const u8,
    sk_d_len: usize,
    prf_id: u16,
    kwa_id: u16,
) -> gikev2_error_t {
    guard("gikev2_gcks_ike_sa_rekeyed", || {
        // SAFETY: per the function's contract.
        let h = unsafe { handle(gcks, "gcks") }?;
        // SAFETY: per the function's contract.
        let sk_d = unsafe { bytes(sk_d, sk_d_len, "sk_d") }?;
        let ike = IkeInput::new(sk_d, prf_id, kwa_id)?;
        let mut st = lock(&h.state)?;
        let r = st
            .engine
            .ike_sa_rekeyed(MemberId(old_id), MemberId(new_id), ike.keys());
        let _ = st.save(now_ms);
        r.map_err(gcks_error)
    })
}

/// When gikev2_gcks_handle_timeout() has work next: `*has_deadline` is
/// true and `*deadline_ms` the time (on the now_ms clock, possibly already
/// past) — or `*has_deadline` is false and `*deadline_ms` 0. Ask again
/// after every call that changes the GCKS.
///
/// # Safety
/// `gcks` is NULL or a live handle; the out-pointers NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn gikev2_gcks_poll_timeout(
    gcks: *const gikev2_gcks_t,
    has_deadline: *mut bool,
    deadline_ms: *mut u64,
) -> gikev2_error_t {
    guard("gikev2_gcks_poll_timeout", || {
        // SAFETY: per the function's contract.
        let h = unsafe { handle(gcks, "gcks") }?;
        non_null(has_deadline, "has_deadline")?;
        non_null(deadline_ms, "deadline_ms")?;
        let at = lock(&h.state)?.engine.poll_timeout();
        // SAFETY: checked non-NULL; writable per the contract.
        unsafe { put_deadline(has_deadline, deadline_ms, at) }
    })
}

/// Runs the rekeys, retransmissions and retirements due at `now_ms`
/// (queuing actions).
///
/// # Safety
/// `gcks` is NULL or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn gikev2_gcks_handle_timeout(
    gcks: *mut gikev2_gcks_t,
    now_ms: u64,
) -> gikev2_error_t {
    guard("gikev2_gcks_handle_timeout", || {
        // SAFETY: per the function's contract.
        let h = unsafe { handle(gcks, "gcks") }?;
        let mut st = lock(&h.state)?;
        st.engine.handle_timeout(now_ms);
        let _ = st.save(now_ms);
        Ok(())
    })
}

/// Takes the next action: fills `*action` (kind NONE when there is none)
/// and copies its data (MULTICAST: the datagram; INBAND_REKEY: payload
/// records) into `data`, setting `*data_len` (0 for actions without data).
/// GIKEV2_ERR_BUFFER_TOO_SMALL: `*data_len` is the size needed, `*action`
/// is untouched and the action stays first in the queue. Poll until NONE
/// after every call that may queue actions. Two threads polling may act
/// on what they took in either order: a host with several threads uses
/// gikev2_gcks_drain().
///
/// # Safety
/// `gcks` is NULL or a live handle; `action` NULL or writable; `data_len`
/// NULL or readable/writable; `data` NULL or writable for `*data_len`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn gikev2_gcks_poll_action(
    gcks: *mut gikev2_gcks_t,
    action: *mut gikev2_gcks_action_t,
    data: *mut u8,
    data_len: *mut usize,
) -> gikev2_error_t {
    guard("gikev2_gcks_poll_action", || {
        // SAFETY: per the function's contract.
        let h = unsafe { handle(gcks, "gcks") }?;
        non_null(action, "action")?;
        // SAFETY: per the function's contract.
        let mut out = unsafe { OutBuf::new(data, data_len, "data") }?;
        let mut st = lock(&h.state)?;
        let next = st.take_action();
        let (a, payload) = action_record(next.as_ref());
        if !out.fits(payload.len()) {
            let e = out.too_small(payload.len());
            st.front = next;
            return Err(e);
        }
        out.write(&payload)?;
        // SAFETY: checked non-NULL; writable per the contract.
        unsafe { put(action, "action", a) }
    })
}

/// Writes the operator's view as text, one line per group, member, SA and
/// recent rekey message, NUL-terminated. `*text_len` is the capacity on
/// entry and the length written (NUL included) on return, or the length
/// needed with GIKEV2_ERR_BUFFER_TOO_SMALL.
///
/// # Safety
/// `gcks` is NULL or a live handle; `text_len` NULL or readable/writable;
/// `text` NULL or writable for `*text_len` octets.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn gikev2_gcks_status(
    gcks: *const gikev2_gcks_t,
    now_ms: u64,
    text: *mut c_char,
    text_len: *mut usize,
) -> gikev2_error_t {
    guard("gikev2_gcks_status", || {
        // SAFETY: per the function's contract.
        let h = unsafe { handle(gcks, "gcks") }?;
        // SAFETY: per the function's contract.
        let mut out = unsafe { OutBuf::new(text.cast(), text_len, "text") }?;
        let status = lock(&h.state)?.engine.status(now_ms);
        out.write_text(&status_text(&status))
    })
}

fn status_text(groups: &[crate::gcks::GroupStatus]) -> String {
    let mut t = String::new();
    for g in groups {
        let _ = write!(
            t,
            "group {}: {} member(s)",
            group_name(&g.id),
            g.members.len()
        );
        match (g.rekey_spi, g.rekey_expires_in, g.next_message_id) {
            (Some(spi), Some(exp), Some(mid)) => {
                let _ = writeln!(
                    t,
                    ", rekey SA {} expires in {}s, next message ID {mid}",
                    hex(&spi.0),
                    exp / 1000
                );
            }
            _ => t.push_str(", no rekey SA\n"),
        }
        for (id, identity, sender) in &g.members {
            let role = if *sender { "sender" } else { "receiver" };
            let _ = writeln!(t, "  member {id} {identity} {role}");
        }
        for (proto, spi, exp) in &g.teks {
            let proto = match *proto {
                ProtocolId::ESP => "ESP".to_owned(),
                ProtocolId::AH => "AH".to_owned(),
                p => p.to_string(),
            };
            let _ = writeln!(
                t,
                "  tek {proto} spi 0x{spi:08x} expires in {}s",
                exp / 1000
            );
        }
        for identity in &g.excluded {
            let _ = writeln!(t, "  excluded {identity}");
        }
        for r in &g.recent_rekeys {
            let _ = writeln!(
                t,
                "  rekey message ID {}: {} wrapped key(s), {} octets",
                r.message_id, r.wrapped_keys, r.bytes
            );
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ffi::{gikev2_gm_destroy, gikev2_gm_new, gikev2_gm_registration_payloads};
    use std::ffi::CString;

    fn strings(v: &[&str]) -> Vec<CString> {
        v.iter().map(|s| CString::new(*s).unwrap()).collect()
    }

    fn ptrs(v: &[CString]) -> Vec<*const c_char> {
        v.iter().map(|s| s.as_ptr()).collect()
    }

    /// Registers `identity` as member `member` of group market-data;
    /// returns the response's payloads.
    fn register(gcks: *mut gikev2_gcks_t, member: u64, identity: &str) -> Vec<Payload> {
        register_at(gcks, 0, member, identity)
    }

    fn register_at(
        gcks: *mut gikev2_gcks_t,
        now: u64,
        member: u64,
        identity: &str,
    ) -> Vec<Payload> {
        let keys = strings(&["id", "role"]);
        let values = strings(&["market-data", "receiver"]);
        let mut gm = std::ptr::null_mut();
        let (k, v) = (ptrs(&keys), ptrs(&values));
        // SAFETY: arrays of 2 NUL-terminated strings, `gm` writable.
        assert_eq!(
            unsafe { gikev2_gm_new(k.as_ptr(), v.as_ptr(), 2, &mut gm) },
            GIKEV2_OK
        );
        let mut req = vec![0u8; 2048];
        let mut req_len = req.len();
        // SAFETY: live handle, buffer of `req_len` octets.
        assert_eq!(
            unsafe { gikev2_gm_registration_payloads(gm, req.as_mut_ptr(), &mut req_len) },
            GIKEV2_OK
        );
        let sk_d = [7u8; 32];
        let who = CString::new(identity).unwrap();
        let mut resp = vec![0u8; 16384];
        let mut resp_len = resp.len();
        // SAFETY: live handle; every buffer valid for its length.
        let err = unsafe {
            gikev2_gcks_registration(
                gcks,
                now,
                member,
                [who.as_ptr()].as_ptr(),
                1,
                std::ptr::null(),
                39,
                req.as_ptr(),
                req_len,
                sk_d.as_ptr(),
                sk_d.len(),
                5,
                3,
                resp.as_mut_ptr(),
                &mut resp_len,
            )
        };
        assert_eq!(err, GIKEV2_OK);
        // SAFETY: a handle from gikev2_gm_new().
        unsafe { gikev2_gm_destroy(gm) };
        payloads_from_records(&resp[..resp_len]).unwrap()
    }

    fn find(gcks: *mut gikev2_gcks_t, group: &str, member: &str) -> (gikev2_error_t, u64) {
        let (g, m) = (CString::new(group).unwrap(), CString::new(member).unwrap());
        let mut id = 0;
        // SAFETY: live handle, NUL-terminated strings, `id` writable.
        let err = unsafe { gikev2_gcks_find_member(gcks, g.as_ptr(), m.as_ptr(), &mut id) };
        (err, id)
    }

    /// Group market-data's settings: LKH, a multicast Rekey SA, one TEK.
    fn market_lkh() -> (Vec<CString>, Vec<CString>) {
        (
            strings(&[
                "id",
                "members",
                "key_management",
                "rekey.address",
                "rekey.auth",
                "tek.feed.destination",
            ]),
            strings(&[
                "market-data",
                "*@example.com",
                "lkh",
                "239.1.1.2:848",
                "implicit",
                "239.1.1.1[udp/5000]",
            ]),
        )
    }

    /// Adds group market-data with its state in `path`; (error, restored).
    fn add_with_state(gcks: *mut gikev2_gcks_t, path: &std::path::Path) -> (gikev2_error_t, bool) {
        let (keys, values) = market_lkh();
        let (k, v) = (ptrs(&keys), ptrs(&values));
        let p = CString::new(path.to_str().unwrap()).unwrap();
        let mut restored = false;
        // SAFETY: live handle, arrays of 6 NUL-terminated strings, a path.
        let err = unsafe {
            gikev2_gcks_add_group_state(
                gcks,
                0,
                k.as_ptr(),
                v.as_ptr(),
                6,
                p.as_ptr(),
                &mut restored,
            )
        };
        (err, restored)
    }

    fn new_gcks() -> *mut gikev2_gcks_t {
        let mut gcks = std::ptr::null_mut();
        // SAFETY: `gcks` writable.
        assert_eq!(unsafe { gikev2_gcks_new(&mut gcks) }, GIKEV2_OK);
        gcks
    }

    #[test]
    fn state_file_created_restored_and_refused_when_corrupt() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("gikev2-ffi-state-{}", std::process::id()));
        let path = dir.join("market.state");
        let gcks = new_gcks();
        assert_eq!(add_with_state(gcks, &path), (GIKEV2_OK, false));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the file holds keys");
        let fresh = std::fs::read(&path).unwrap();
        register(gcks, 41, "gm1@example.com");
        let after = std::fs::read(&path).unwrap();
        assert_ne!(fresh, after, "saved before the registration was answered");
        // SAFETY: a handle from gikev2_gcks_new().
        unsafe { gikev2_gcks_destroy(gcks) };

        // A restart continues from it, and keeps the member.
        let gcks = new_gcks();
        assert_eq!(add_with_state(gcks, &path), (GIKEV2_OK, true));
        assert_eq!(find(gcks, "market-data", "gm1@example.com").0, GIKEV2_OK);
        // SAFETY: a handle from gikev2_gcks_new().
        unsafe { gikev2_gcks_destroy(gcks) };

        // A registration whose state cannot be saved is refused: the
        // GCKS could not remember its Sender-IDs after a restart.
        let gcks = new_gcks();
        assert_eq!(add_with_state(gcks, &path), (GIKEV2_OK, true));
        let kept = std::fs::read(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        std::fs::create_dir(dir.join(".market.state.tmp")).unwrap();
        let answer = register(gcks, 43, "gm3@example.com");
        assert!(
            matches!(answer.as_slice(), [Payload::Notify(n)] if n.ty == NotifyType::REGISTRATION_FAILED),
            "{answer:?}"
        );
        std::fs::remove_dir(dir.join(".market.state.tmp")).unwrap();
        std::fs::write(&path, kept).unwrap();
        // SAFETY: a handle from gikev2_gcks_new().
        unsafe { gikev2_gcks_destroy(gcks) };

        // A corrupt file is refused, named, and left as it was.
        let mut bad = std::fs::read(&path).unwrap();
        let mid = bad.len() / 2;
        bad[mid] ^= 0x40;
        std::fs::write(&path, &bad).unwrap();
        let gcks = new_gcks();
        assert_eq!(add_with_state(gcks, &path).0, GIKEV2_ERR_STATE_FILE);
        // SAFETY: gikev2_last_error returns a valid NUL-terminated string.
        let msg = unsafe { std::ffi::CStr::from_ptr(crate::ffi::gikev2_last_error()) }
            .to_string_lossy()
            .into_owned();
        assert!(
            msg.contains("market.state") && msg.contains("checksum"),
            "{msg}"
        );
        assert_eq!(std::fs::read(&path).unwrap(), bad, "left untouched");
        assert_eq!(
            find(gcks, "market-data", "gm1@example.com").0,
            GIKEV2_ERR_NOT_FOUND
        );
        // SAFETY: a handle from gikev2_gcks_new().
        unsafe { gikev2_gcks_destroy(gcks) };
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn find_member_by_identity_or_id() {
        let mut gcks = std::ptr::null_mut();
        // SAFETY: `gcks` writable.
        assert_eq!(unsafe { gikev2_gcks_new(&mut gcks) }, GIKEV2_OK);
        let keys = strings(&[
            "id",
            "members",
            "rekey.address",
            "rekey.auth",
            "tek.feed.destination",
        ]);
        let values = strings(&[
            "market-data",
            "*@example.com",
            "239.1.1.2:848",
            "implicit",
            "239.1.1.1[udp/5000]",
        ]);
        let (k, v) = (ptrs(&keys), ptrs(&values));
        // SAFETY: live handle, arrays of 5 NUL-terminated strings.
        assert_eq!(
            unsafe { gikev2_gcks_add_group(gcks, 0, k.as_ptr(), v.as_ptr(), 5) },
            GIKEV2_OK
        );
        register(gcks, 41, "gm1@example.com");
        register(gcks, 42, "gm2@example.com");

        assert_eq!(
            find(gcks, "market-data", "gm2@example.com"),
            (GIKEV2_OK, 42)
        );
        assert_eq!(find(gcks, "market-data", "41"), (GIKEV2_OK, 41));
        assert_eq!(
            find(gcks, "market-data", "gm3@example.com").0,
            GIKEV2_ERR_NOT_FOUND
        );
        assert_eq!(find(gcks, "market-data", "43").0, GIKEV2_ERR_NOT_FOUND);
        assert_eq!(find(gcks, "no-such-group", "41").0, GIKEV2_ERR_NOT_FOUND);
        // SAFETY: live handle; NULL strings are reported, not read.
        let err = unsafe {
            gikev2_gcks_find_member(
                gcks,
                std::ptr::null(),
                std::ptr::null(),
                std::ptr::null_mut(),
            )
        };
        assert_eq!(err, GIKEV2_ERR_NULL);
        // SAFETY: a handle from gikev2_gcks_new().
        unsafe { gikev2_gcks_destroy(gcks) };
    }
    /// Where the drain test's callback sends GSA_REKEY datagrams: a
    /// datagram socket pair, which keeps the order of sends and, unlike UDP,
    /// blocks rather than drops when the reader falls behind.
    struct Wire {
        sock: std::os::unix::net::UnixDatagram,
        sent: std::sync::atomic::AtomicUsize,
    }

    unsafe extern "C" fn send_to_wire(
        ctx: *mut c_void,
        action: *const gikev2_gcks_action_t,
        data: *const u8,
        len: usize,
    ) {
        // SAFETY: `ctx` is the `Wire` the test gave gikev2_gcks_drain();
        // the record and data are valid for the call.
        let (wire, action, data) = unsafe {
            (
                &*(ctx as *const Wire),
                &*action,
                std::slice::from_raw_parts(data, len),
            )
        };
        if action.kind == gikev2_gcks_action_kind_t::GIKEV2_GCKS_ACTION_MULTICAST {
            // Let another thread run between taking the action and sending
            // it: where two drains could interleave, they now would.
            std::thread::yield_now();
            if wire.sock.send(data).is_ok() {
                wire.sent.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        }
    }

    /// Issue 14: four threads drive one GCKS at once (operator rekeys, KEK
    /// rekeys, joins and their flushes, timers with retransmissions), each
    /// draining what it queued. On the wire (a datagram socket) the
    /// messages of every Rekey SA are in Message ID order.
    #[test]
    fn drain_sends_each_rekey_sa_in_message_id_order_from_many_threads() {
        use std::sync::atomic::{AtomicU64, Ordering};
        let gcks = new_gcks();
        let (keys, values) = market_lkh();
        let (k, v) = (ptrs(&keys), ptrs(&values));
        // SAFETY: live handle, arrays of 6 NUL-terminated strings.
        assert_eq!(
            unsafe { gikev2_gcks_add_group(gcks, 0, k.as_ptr(), v.as_ptr(), 6) },
            GIKEV2_OK
        );
        register(gcks, 1, "gm1@example.com");
        let (tx, rx) = std::os::unix::net::UnixDatagram::pair().unwrap();
        rx.set_read_timeout(Some(std::time::Duration::from_secs(60)))
            .unwrap();
        let wire = Wire {
            sock: tx,
            sent: 0.into(),
        };
        let clock = AtomicU64::new(1);
        struct Handle(*mut gikev2_gcks_t);
        // SAFETY: the handle is made for use from several threads.
        unsafe impl Sync for Handle {}
        let h = Handle(gcks);
        let group = CString::new("market-data").unwrap();
        let received = std::thread::scope(|s| {
            let reader = s.spawn(|| {
                let mut got = Vec::new();
                let mut buf = [0u8; 65536];
                // Until the empty datagram that ends the test.
                while let Ok(n @ 1..) = rx.recv(&mut buf) {
                    got.push(buf[..n].to_vec());
                }
                got
            });
            let workers: Vec<_> = (0..4u64)
                .map(|t| {
                    let (h, wire, clock, group) = (&h, &wire, &clock, &group);
                    s.spawn(move || {
                        for i in 0..40u64 {
                            let now = clock.fetch_add(300, Ordering::SeqCst);
                            // SAFETY: live handle, NUL-terminated group.
                            let err = unsafe {
                                match (t + i) % 4 {
                                    0 => gikev2_gcks_rekey(h.0, now, group.as_ptr()),
                                    1 => gikev2_gcks_rekey_kek(h.0, now, group.as_ptr()),
                                    2 => gikev2_gcks_handle_timeout(h.0, now),
                                    _ => {
                                        let id = 100 + t * 1000 + i;
                                        register_at(h.0, now, id, &format!("gm{id}@example.com"));
                                        GIKEV2_OK
                                    }
                                }
                            };
                            assert_eq!(err, GIKEV2_OK);
                            let ctx = wire as *const Wire as *mut c_void;
                            // SAFETY: live handle; the callback takes this `ctx`.
                            let err = unsafe { gikev2_gcks_drain(h.0, Some(send_to_wire), ctx) };
                            assert_eq!(err, GIKEV2_OK);
                        }
                    })
                })
                .collect();
            for w in workers {
                w.join().unwrap();
            }
            wire.sock.send(&[]).unwrap();
            reader.join().unwrap()
        });
        let sent = wire.sent.load(Ordering::SeqCst);
        assert!(sent > 100, "{sent} GSA_REKEY sent");
        assert_eq!(received.len(), sent, "every datagram sent arrived");
        let mut last: std::collections::HashMap<Vec<u8>, u32> = Default::default();
        for d in &received {
            let (spi, id) = crate::rekey_message::peek(d).unwrap();
            if let Some(prev) = last.insert(spi.0.to_vec(), id) {
                assert!(id >= prev, "Message ID {id} after {prev} on {spi:?}");
            }
        }
        // SAFETY: a handle from gikev2_gcks_new().
        unsafe { gikev2_gcks_destroy(gcks) };
    }
}
