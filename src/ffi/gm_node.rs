//! The GM node (every membership of one charon) behind an opaque handle:
//! one function per charon event, actions handed to a callback in order.

use core::ffi::{c_char, c_void};
use std::ffi::CString;
use std::sync::Mutex;

use super::gikev2_error_t::{self, *};
use super::gm::{gikev2_direction_t, gikev2_mode_t, gikev2_protocol_t, rekey_spi_arg, status_text};
use super::records::{payloads_from_records, records_from_payloads};
use super::{
    GIKEV2_REKEY_SPI_LEN, IkeInput, OutBuf, bytes, fail, gikev2_endpoint_t, gikev2_ts_t, guard,
    handle, lock, non_null, put, put_deadline, settings, utf8,
};
use crate::crypto::OsRng;
use crate::gm::SaDirection;
use crate::iana::NotifyType;
use crate::node::gm::{GmNode, GmNodeAction, MembershipDef, MembershipId, RekeyOutcome};
use crate::policy::Mode;
use crate::wire::SaRef;

/// The GM node: every membership of one charon. Created with
/// gikev2_gm_node_new(), configured with gikev2_gm_node_reload(), freed
/// with gikev2_gm_node_destroy(). Safe to use from several threads.
pub struct gikev2_gm_node_t {
    state: Mutex<NodeState>,
    /// Held by gikev2_gm_node_drain() from taking an action until its host
    /// has acted on it, so actions are carried out in the node's order.
    pump: Mutex<()>,
}

struct NodeState {
    node: GmNode,
}

/// What a node action asks of the plugin.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum gikev2_gm_node_action_kind_t {
    GIKEV2_GM_NODE_NONE = 0,
    /// Install the SA `protocol`/`spi` in `direction` and its policy, as
    /// described (keys in the callback's buffers); an outbound SA leaves
    /// from `local`.
    GIKEV2_GM_NODE_INSTALL = 1,
    /// Delete the SA `protocol`/`spi` in `direction` of `membership`, and
    /// its policy.
    GIKEV2_GM_NODE_DELETE = 2,
    /// Receive GSA_REKEY for Rekey SA `rekey_spi` of `membership` on
    /// `rekey_dst` (joined on the interface of `local`), handing each
    /// datagram to gikev2_gm_node_rekey_datagram().
    GIKEV2_GM_NODE_LISTEN_REKEY = 3,
    /// Close the socket of Rekey SA `rekey_spi` of `membership`.
    GIKEV2_GM_NODE_STOP_REKEY = 4,
    /// A fallback policy dropping traffic `src` === `dst` in `direction`,
    /// below the SAs' policies (fail_mode = closed).
    GIKEV2_GM_NODE_ADD_DROP = 5,
    GIKEV2_GM_NODE_REMOVE_DROP = 6,
    /// Initiate the connection named by the callback's `connection`;
    /// report one charon does not know with
    /// gikev2_gm_node_connection_unknown().
    GIKEV2_GM_NODE_INITIATE = 7,
    /// Run a GSA_REGISTRATION for `membership` on IKE SA `ike_sa`.
    GIKEV2_GM_NODE_REGISTER = 8,
    /// Run the GSA_REGISTRATION with which `membership` leaves its group,
    /// saying `notify` (REGISTRATION_FAILED or NO_PROPOSAL_CHOSEN), on IKE
    /// SA `ike_sa`.
    GIKEV2_GM_NODE_LEAVE = 9,
    /// Delete IKE SA `ike_sa`.
    GIKEV2_GM_NODE_CLOSE_IKE_SA = 10,
}

/// An action of the node. Fields not used by `kind` are zero.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct gikev2_gm_node_action_t {
    pub kind: gikev2_gm_node_action_kind_t,
    /// The membership it concerns (0 for none).
    pub membership: u64,
    /// REGISTER, LEAVE, CLOSE_IKE_SA: charon's unique ID of the IKE SA.
    pub ike_sa: u32,
    /// LEAVE: the notification type it sends.
    pub notify: u16,
    /// INSTALL, DELETE: the SA; ADD_DROP, REMOVE_DROP: the direction.
    pub protocol: gikev2_protocol_t,
    pub spi: u32,
    pub direction: gikev2_direction_t,
    /// INSTALL: mode, algorithms, lifetime and replay window as
    /// gikev2_gm_action_t describes them.
    pub mode: gikev2_mode_t,
    /// INSTALL, ADD_DROP, REMOVE_DROP: the policy's selectors.
    pub src: gikev2_ts_t,
    pub dst: gikev2_ts_t,
    pub encr_id: u16,
    pub encr_key_bits: u16,
    pub integ_id: u16,
    pub lifetime_secs: u32,
    pub replay_window: u32,
    /// INSTALL, LISTEN_REKEY: this host's address on the registering IKE
    /// SA (family NONE when unknown).
    pub local: gikev2_endpoint_t,
    /// LISTEN_REKEY, STOP_REKEY: the Rekey SA.
    pub rekey_spi: [u8; GIKEV2_REKEY_SPI_LEN],
    /// LISTEN_REKEY: the multicast address and port of GSA_REKEY.
    pub rekey_dst: gikev2_endpoint_t,
    /// Zero; room to grow.
    pub reserved: [u64; 4],
}

impl gikev2_gm_node_action_t {
    const NONE: Self = Self {
        kind: gikev2_gm_node_action_kind_t::GIKEV2_GM_NODE_NONE,
        membership: 0,
        ike_sa: 0,
        notify: 0,
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
        local: gikev2_endpoint_t::NONE,
        rekey_spi: [0; GIKEV2_REKEY_SPI_LEN],
        rekey_dst: gikev2_endpoint_t::NONE,
        reserved: [0; 4],
    };
}

/// Receives one action from gikev2_gm_node_drain(): the record, the
/// INSTALL keys (empty otherwise; the encryption key with its salt for
/// AEAD and counter modes), and for INITIATE the connection's name (NULL
/// otherwise). Everything is valid only during the call; the callback
/// must wipe copies of keys once installed, and must not unwind.
pub type gikev2_gm_node_action_cb_t = Option<
    unsafe extern "C" fn(
        ctx: *mut c_void,
        action: *const gikev2_gm_node_action_t,
        encr_key: *const u8,
        encr_key_len: usize,
        integ_key: *const u8,
        integ_key_len: usize,
        connection: *const c_char,
    ),
>;

/// A membership as configured: its section's name, its connection, and
/// its other settings (keys relative to the section).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct gikev2_membership_def_t {
    pub name: *const c_char,
    pub connection: *const c_char,
    pub keys: *const *const c_char,
    pub values: *const *const c_char,
    pub count: usize,
}

/// Receives a refused membership's name and "key: reason"; valid only
/// during the call.
pub type gikev2_def_error_cb_t =
    Option<unsafe extern "C" fn(ctx: *mut c_void, name: *const c_char, message: *const c_char)>;

/// Receives one membership's status: its name, its connection and the
/// operator's text of gikev2_gm_status(); valid only during the call.
pub type gikev2_gm_node_status_cb_t = Option<
    unsafe extern "C" fn(
        ctx: *mut c_void,
        name: *const c_char,
        connection: *const c_char,
        text: *const c_char,
    ),
>;

/// What gikev2_gm_node_rekey_datagram() did with a datagram.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum gikev2_rekey_outcome_t {
    GIKEV2_REKEY_TAKEN = 0,
    /// A copy of the last one taken: the GCKS retransmits.
    GIKEV2_REKEY_RETRANSMISSION = 1,
    /// Not taken; the node logged why.
    GIKEV2_REKEY_DROPPED = 2,
}

fn cstring(s: &str) -> CString {
    CString::new(s.replace('\0', "")).expect("NULs removed")
}

/// # Safety
/// `node` is NULL or a live handle.
unsafe fn with<R>(
    node: *const gikev2_gm_node_t,
    f: impl FnOnce(&mut GmNode) -> super::FfiResult<R>,
) -> super::FfiResult<R> {
    // SAFETY: forwarded contract.
    let h = unsafe { handle(node, "node") }?;
    f(&mut lock(&h.state)?.node)
}

/// Creates a node without memberships (gikev2_gm_node_reload() adds
/// them); randomness comes from OpenSSL's CSPRNG. On success `*node` is
/// a new handle the caller owns.
///
/// # Safety
/// `node` is NULL or valid for writing a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn gikev2_gm_node_new(node: *mut *mut gikev2_gm_node_t) -> gikev2_error_t {
    guard("gikev2_gm_node_new", || {
        non_null(node, "node")?;
        let (n, _) = GmNode::new(Vec::new(), Box::new(|| Box::new(OsRng)));
        let h = Box::new(gikev2_gm_node_t {
            state: Mutex::new(NodeState { node: n }),
            pump: Mutex::new(()),
        });
        // SAFETY: checked non-NULL; writable by the caller's contract.
        unsafe { put(node, "node", Box::into_raw(h)) }
    })
}

/// Frees a node; its kernel state must have been taken out before
/// (gikev2_gm_node_shut_down() and a drain). NULL is ignored.
///
/// # Safety
/// `node` is NULL or a handle from gikev2_gm_node_new() not yet destroyed,
/// used by no other call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn gikev2_gm_node_destroy(node: *mut gikev2_gm_node_t) {
    if node.is_null() {
        return;
    }
    guard("gikev2_gm_node_destroy", || {
        // SAFETY: a live handle from Box::into_raw, given back once.
        drop(unsafe { Box::from_raw(node) });
        Ok(())
    });
}

/// The memberships configured now (`count` of them). An unchanged one
/// keeps its SAs; a changed one is replaced and registers again; a removed
/// one takes its SAs out and leaves its group. A membership whose settings
/// are refused is reported to `error_cb` (may be NULL) and keeps its
/// previous configuration if it had one; the call then returns
/// GIKEV2_ERR_CONFIG, having applied the others. `*configured` (may be
/// NULL) receives the number of memberships now configured.
///
/// # Safety
/// `node` is NULL or a live handle; `defs` NULL or an array of `count`
/// definitions whose strings and arrays are valid for the call;
/// `error_cb` NULL or callable with `ctx`; `configured` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn gikev2_gm_node_reload(
    node: *mut gikev2_gm_node_t,
    defs: *const gikev2_membership_def_t,
    count: usize,
    error_cb: gikev2_def_error_cb_t,
    ctx: *mut c_void,
    configured: *mut usize,
) -> gikev2_error_t {
    guard("gikev2_gm_node_reload", || {
        if count > 0 && defs.is_null() {
            return Err(fail(GIKEV2_ERR_NULL, "defs is NULL"));
        }
        let mut list = Vec::with_capacity(count);
        for i in 0..count {
            // SAFETY: `defs` holds `count` definitions per the contract.
            let d = unsafe { &*defs.add(i) };
            // SAFETY: the strings and arrays are valid per the contract.
            let (name, connection, pairs) = unsafe {
                (
                    utf8(d.name, "name")?,
                    utf8(d.connection, "connection")?,
                    settings(d.keys, d.values, d.count)?,
                )
            };
            list.push(MembershipDef {
                name: name.to_owned(),
                connection: connection.to_owned(),
                settings: pairs
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect(),
            });
        }
        // SAFETY: per the function's contract.
        let (errors, n) = unsafe {
            with(node, |node| {
                let errors = node.reload(list);
                Ok((errors, node.len()))
            })
        }?;
        if !configured.is_null() {
            // SAFETY: non-NULL and writable per the contract.
            unsafe { configured.write(n) };
        }
        if let Some(cb) = error_cb {
            for e in &errors {
                let (name, msg) = (cstring(&e.name), cstring(&e.error.to_string()));
                // SAFETY: callable with `ctx` per the contract; the
                // strings outlive the call.
                unsafe { cb(ctx, name.as_ptr(), msg.as_ptr()) };
            }
        }
        match errors.first() {
            None => Ok(()),
            Some(e) => Err(fail(GIKEV2_ERR_CONFIG, format!("{}: {}", e.name, e.error))),
        }
    })
}

/// charon sends the IKE_SA_INIT of IKE SA `ike_sa` (of `connection`) it
/// initiated, to `gcks`. `*registers` says whether it registers a
/// membership: then it is a G-IKEv2 IKE SA (GSA_AUTH, not IKE_AUTH).
///
/// # Safety
/// `node` NULL or a live handle; `connection` NULL or a string; `gcks`
/// NULL or readable; `registers` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn gikev2_gm_node_ike_sa_init(
    node: *mut gikev2_gm_node_t,
    ike_sa: u32,
    connection: *const c_char,
    gcks: *const gikev2_endpoint_t,
    registers: *mut bool,
) -> gikev2_error_t {
    guard("gikev2_gm_node_ike_sa_init", || {
        non_null(registers, "registers")?;
        // SAFETY: per the function's contract.
        let connection = unsafe { utf8(connection, "connection") }?;
        // SAFETY: per the function's contract.
        let gcks = unsafe { gcks.as_ref() }
            .and_then(gikev2_endpoint_t::ip)
            .ok_or_else(|| fail(GIKEV2_ERR_INVALID_ARG, "gcks is no address"))?;
        // SAFETY: per the function's contract.
        let r = unsafe { with(node, |n| Ok(n.ike_sa_init(ike_sa, connection, gcks))) }?;
        // SAFETY: checked non-NULL; writable per the contract.
        unsafe { put(registers, "registers", r) }
    })
}

/// The payload records to add to the GSA_AUTH request of IKE SA `ike_sa`
/// (of `connection`), into `out`; `*drop_initial_contact` says to leave
/// INITIAL_CONTACT out (another of our IKE SAs registers with this GCKS).
/// GIKEV2_ERR_NOT_FOUND: it registers no membership.
///
/// # Safety
/// As gikev2_gm_node_ike_sa_init(); `out`/`out_len` an output buffer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn gikev2_gm_node_gsa_auth_request(
    node: *mut gikev2_gm_node_t,
    ike_sa: u32,
    connection: *const c_char,
    out: *mut u8,
    out_len: *mut usize,
    drop_initial_contact: *mut bool,
) -> gikev2_error_t {
    guard("gikev2_gm_node_gsa_auth_request", || {
        non_null(drop_initial_contact, "drop_initial_contact")?;
        // SAFETY: per the function's contract.
        let connection = unsafe { utf8(connection, "connection") }?;
        // SAFETY: per the function's contract.
        let mut out = unsafe { OutBuf::new(out, out_len, "out") }?;
        // SAFETY: per the function's contract.
        let req = unsafe { with(node, |n| Ok(n.gsa_auth_request(ike_sa, connection))) }?
            .ok_or_else(|| fail(GIKEV2_ERR_NOT_FOUND, "no membership registers on it"))?;
        out.write(&records_from_payloads(&req.payloads))?;
        // SAFETY: checked non-NULL; writable per the contract.
        unsafe {
            put(
                drop_initial_contact,
                "drop_initial_contact",
                req.drop_initial_contact,
            )
        }
    })
}

/// The GCKS's GSA_AUTH response on IKE SA `ike_sa`: its payload records
/// (inside SK), kept until the IKE SA is up.
///
/// # Safety
/// `node` NULL or a live handle; `connection` NULL or a string; `records`
/// NULL or readable for `records_len`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn gikev2_gm_node_gsa_auth_response(
    node: *mut gikev2_gm_node_t,
    ike_sa: u32,
    connection: *const c_char,
    records: *const u8,
    records_len: usize,
) -> gikev2_error_t {
    guard("gikev2_gm_node_gsa_auth_response", || {
        // SAFETY: per the function's contract.
        let connection = unsafe { utf8(connection, "connection") }?;
        // SAFETY: per the function's contract.
        let records = unsafe { bytes(records, records_len, "records") }?;
        let payloads = payloads_from_records(records)?;
        // SAFETY: per the function's contract.
        unsafe {
            with(node, |n| {
                n.gsa_auth_response(ike_sa, connection, payloads);
                Ok(())
            })
        }
    })
}

/// IKE SA `ike_sa` (of `connection`), initiated by this charon, is
/// established: `local` and `remote` are its addresses, `sk_d` the SK_d in
/// force (after a PPK), `prf_id` and `kwa_id` its PRF and Key Wrap
/// Algorithm (0 when none was negotiated: then it registers nothing).
///
/// # Safety
/// `node` NULL or a live handle; `connection` NULL or a string; `local`,
/// `remote` NULL or readable; `sk_d` NULL or readable for `sk_d_len`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn gikev2_gm_node_ike_sa_up(
    node: *mut gikev2_gm_node_t,
    now_ms: u64,
    ike_sa: u32,
    connection: *const c_char,
    local: *const gikev2_endpoint_t,
    remote: *const gikev2_endpoint_t,
    sk_d: *const u8,
    sk_d_len: usize,
    prf_id: u16,
    kwa_id: u16,
) -> gikev2_error_t {
    guard("gikev2_gm_node_ike_sa_up", || {
        // SAFETY: per the function's contract.
        let connection = unsafe { utf8(connection, "connection") }?;
        // SAFETY: per the function's contract.
        let addr = |e: *const gikev2_endpoint_t, what: &str| {
            unsafe { e.as_ref() }
                .and_then(gikev2_endpoint_t::ip)
                .ok_or_else(|| fail(GIKEV2_ERR_INVALID_ARG, format!("{what} is no address")))
        };
        let (local, remote) = (addr(local, "local")?, addr(remote, "remote")?);
        // SAFETY: per the function's contract.
        let sk_d = unsafe { bytes(sk_d, sk_d_len, "sk_d") }?;
        // without a KWA (or usable keys) the node says why it cannot register
        let ike = IkeInput::new(sk_d, prf_id, kwa_id).ok();
        // SAFETY: per the function's contract.
        unsafe {
            with(node, |n| {
                let keys = ike.as_ref().map(IkeInput::keys);
                n.ike_sa_up(now_ms, ike_sa, connection, (local, remote), keys);
                Ok(())
            })
        }
    })
}

/// IKE SA `ike_sa` went down.
///
/// # Safety
/// `node` NULL or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn gikev2_gm_node_ike_sa_down(
    node: *mut gikev2_gm_node_t,
    now_ms: u64,
    ike_sa: u32,
) -> gikev2_error_t {
    guard("gikev2_gm_node_ike_sa_down", || {
        // SAFETY: per the function's contract.
        unsafe {
            with(node, |n| {
                n.ike_sa_down(now_ms, ike_sa);
                Ok(())
            })
        }
    })
}

/// charon rekeyed IKE SA `old` into `new`.
///
/// # Safety
/// `node` NULL or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn gikev2_gm_node_ike_sa_rekeyed(
    node: *mut gikev2_gm_node_t,
    old: u32,
    new: u32,
) -> gikev2_error_t {
    guard("gikev2_gm_node_ike_sa_rekeyed", || {
        // SAFETY: per the function's contract.
        unsafe {
            with(node, |n| {
                n.ike_sa_rekeyed(old, new);
                Ok(())
            })
        }
    })
}

/// charon destroys IKE SA `ike_sa`.
///
/// # Safety
/// `node` NULL or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn gikev2_gm_node_ike_sa_destroyed(
    node: *mut gikev2_gm_node_t,
    now_ms: u64,
    ike_sa: u32,
) -> gikev2_error_t {
    guard("gikev2_gm_node_ike_sa_destroyed", || {
        // SAFETY: per the function's contract.
        unsafe {
            with(node, |n| {
                n.ike_sa_destroyed(now_ms, ike_sa);
                Ok(())
            })
        }
    })
}

/// An INITIATE named a connection charon does not know.
///
/// # Safety
/// `node` NULL or a live handle; `connection` NULL or a string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn gikev2_gm_node_connection_unknown(
    node: *mut gikev2_gm_node_t,
    connection: *const c_char,
) -> gikev2_error_t {
    guard("gikev2_gm_node_connection_unknown", || {
        // SAFETY: per the function's contract.
        let connection = unsafe { utf8(connection, "connection") }?;
        // SAFETY: per the function's contract.
        unsafe {
            with(node, |n| {
                n.connection_unknown(connection);
                Ok(())
            })
        }
    })
}

/// The payload records of a REGISTER action's GSA_REGISTRATION request,
/// into `out`. GIKEV2_ERR_NOT_FOUND: the membership is gone.
///
/// # Safety
/// `node` NULL or a live handle; `out`/`out_len` an output buffer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn gikev2_gm_node_registration_request(
    node: *mut gikev2_gm_node_t,
    membership: u64,
    ike_sa: u32,
    out: *mut u8,
    out_len: *mut usize,
) -> gikev2_error_t {
    guard("gikev2_gm_node_registration_request", || {
        // SAFETY: per the function's contract.
        let mut out = unsafe { OutBuf::new(out, out_len, "out") }?;
        // SAFETY: per the function's contract.
        let p = unsafe {
            with(node, |n| {
                Ok(n.registration_request(MembershipId(membership), ike_sa))
            })
        }?
        .ok_or_else(|| fail(GIKEV2_ERR_NOT_FOUND, "no such membership"))?;
        out.write(&records_from_payloads(&p))
    })
}

/// The response to a REGISTER action's GSA_REGISTRATION: its payload
/// records, and the IKE SA's keys as for gikev2_gm_node_ike_sa_up().
///
/// # Safety
/// `node` NULL or a live handle; `records` NULL or readable for
/// `records_len`; `sk_d` NULL or readable for `sk_d_len`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn gikev2_gm_node_registration_response(
    node: *mut gikev2_gm_node_t,
    now_ms: u64,
    membership: u64,
    ike_sa: u32,
    records: *const u8,
    records_len: usize,
    sk_d: *const u8,
    sk_d_len: usize,
    prf_id: u16,
    kwa_id: u16,
) -> gikev2_error_t {
    guard("gikev2_gm_node_registration_response", || {
        // SAFETY: per the function's contract.
        let records = unsafe { bytes(records, records_len, "records") }?;
        // SAFETY: per the function's contract.
        let sk_d = unsafe { bytes(sk_d, sk_d_len, "sk_d") }?;
        let ike = IkeInput::new(sk_d, prf_id, kwa_id)?;
        let payloads = payloads_from_records(records)?;
        // SAFETY: per the function's contract.
        unsafe {
            with(node, |n| {
                n.registration_response(
                    now_ms,
                    MembershipId(membership),
                    ike_sa,
                    &payloads,
                    ike.keys(),
                );
                Ok(())
            })
        }
    })
}

/// The payload records of a LEAVE action's request, into `out`.
///
/// # Safety
/// As gikev2_gm_node_registration_request().
#[unsafe(no_mangle)]
pub unsafe extern "C" fn gikev2_gm_node_leave_request(
    node: *mut gikev2_gm_node_t,
    membership: u64,
    ike_sa: u32,
    notify: u16,
    out: *mut u8,
    out_len: *mut usize,
) -> gikev2_error_t {
    guard("gikev2_gm_node_leave_request", || {
        // SAFETY: per the function's contract.
        let mut out = unsafe { OutBuf::new(out, out_len, "out") }?;
        // SAFETY: per the function's contract.
        let p = unsafe {
            with(node, |n| {
                Ok(n.leave_request(MembershipId(membership), ike_sa, NotifyType(notify)))
            })
        }?
        .ok_or_else(|| fail(GIKEV2_ERR_NOT_FOUND, "no such membership"))?;
        out.write(&records_from_payloads(&p))
    })
}

/// The GCKS's answer to a LEAVE action's request (payload records).
///
/// # Safety
/// `node` NULL or a live handle; `records` NULL or readable for
/// `records_len`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn gikev2_gm_node_leave_response(
    node: *mut gikev2_gm_node_t,
    membership: u64,
    notify: u16,
    records: *const u8,
    records_len: usize,
) -> gikev2_error_t {
    guard("gikev2_gm_node_leave_response", || {
        // SAFETY: per the function's contract.
        let records = unsafe { bytes(records, records_len, "records") }?;
        // an answer we cannot read still ends the leave
        let payloads = payloads_from_records(records).unwrap_or_default();
        // SAFETY: per the function's contract.
        unsafe {
            with(node, |n| {
                n.leave_response(MembershipId(membership), NotifyType(notify), &payloads);
                Ok(())
            })
        }
    })
}

/// A GSA_INBAND_REKEY request on IKE SA `ike_sa` (of `connection`): its
/// payload records and the IKE SA's keys in force. GIKEV2_ERR_NOT_FOUND:
/// no membership registered on it; GIKEV2_ERR_REFUSED: the membership did
/// not take it. Both are logged by the node.
///
/// # Safety
/// As gikev2_gm_node_registration_response(); `connection` NULL or a
/// string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn gikev2_gm_node_inband_rekey(
    node: *mut gikev2_gm_node_t,
    now_ms: u64,
    ike_sa: u32,
    connection: *const c_char,
    records: *const u8,
    records_len: usize,
    sk_d: *const u8,
    sk_d_len: usize,
    prf_id: u16,
    kwa_id: u16,
) -> gikev2_error_t {
    guard("gikev2_gm_node_inband_rekey", || {
        // SAFETY: per the function's contract.
        let connection = unsafe { utf8(connection, "connection") }?;
        // SAFETY: per the function's contract.
        let records = unsafe { bytes(records, records_len, "records") }?;
        // SAFETY: per the function's contract.
        let sk_d = unsafe { bytes(sk_d, sk_d_len, "sk_d") }?;
        let ike = IkeInput::new(sk_d, prf_id, kwa_id)?;
        let payloads = payloads_from_records(records)?;
        // SAFETY: per the function's contract.
        let taken = unsafe {
            with(node, |n| {
                Ok(n.inband_rekey(now_ms, ike_sa, connection, &payloads, ike.keys()))
            })
        }?;
        if taken {
            Ok(())
        } else {
            Err(fail(GIKEV2_ERR_REFUSED, "GSA_INBAND_REKEY not taken"))
        }
    })
}

/// A datagram received on a socket of a LISTEN_REKEY action of
/// `membership`, as it arrived; `*outcome` says what became of it.
///
/// # Safety
/// `node` NULL or a live handle; `datagram` NULL or readable for `len`;
/// `outcome` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn gikev2_gm_node_rekey_datagram(
    node: *mut gikev2_gm_node_t,
    now_ms: u64,
    membership: u64,
    datagram: *const u8,
    len: usize,
    outcome: *mut gikev2_rekey_outcome_t,
) -> gikev2_error_t {
    guard("gikev2_gm_node_rekey_datagram", || {
        non_null(outcome, "outcome")?;
        // SAFETY: per the function's contract.
        let datagram = unsafe { bytes(datagram, len, "datagram") }?;
        // SAFETY: per the function's contract.
        let o = unsafe {
            with(node, |n| {
                Ok(n.rekey_datagram(now_ms, MembershipId(membership), datagram))
            })
        }?;
        let o = match o {
            RekeyOutcome::Taken => gikev2_rekey_outcome_t::GIKEV2_REKEY_TAKEN,
            RekeyOutcome::Retransmission => gikev2_rekey_outcome_t::GIKEV2_REKEY_RETRANSMISSION,
            RekeyOutcome::Dropped => gikev2_rekey_outcome_t::GIKEV2_REKEY_DROPPED,
        };
        // SAFETY: checked non-NULL; writable per the contract.
        unsafe { put(outcome, "outcome", o) }
    })
}

/// When gikev2_gm_node_handle_timeout() is due next.
///
/// # Safety
/// `node` NULL or a live handle; the out-pointers NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn gikev2_gm_node_poll_timeout(
    node: *const gikev2_gm_node_t,
    has_deadline: *mut bool,
    deadline_ms: *mut u64,
) -> gikev2_error_t {
    guard("gikev2_gm_node_poll_timeout", || {
        non_null(has_deadline, "has_deadline")?;
        non_null(deadline_ms, "deadline_ms")?;
        // SAFETY: per the function's contract.
        let at = unsafe { with(node, |n| Ok(n.poll_timeout())) }?;
        // SAFETY: checked non-NULL; writable per the contract.
        unsafe { put_deadline(has_deadline, deadline_ms, at) }
    })
}

/// Runs what is due at `now_ms`.
///
/// # Safety
/// `node` NULL or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn gikev2_gm_node_handle_timeout(
    node: *mut gikev2_gm_node_t,
    now_ms: u64,
) -> gikev2_error_t {
    guard("gikev2_gm_node_handle_timeout", || {
        // SAFETY: per the function's contract.
        unsafe {
            with(node, |n| {
                n.handle_timeout(now_ms);
                Ok(())
            })
        }
    })
}

/// The operator asks membership `name` (or the membership of group ID
/// `name`) to register now: its connection is written to `connection`
/// (NUL-terminated) and an INITIATE action queued. GIKEV2_ERR_NOT_FOUND:
/// none matches.
///
/// # Safety
/// `node` NULL or a live handle; `name` NULL or a string;
/// `connection`/`connection_len` an output buffer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn gikev2_gm_node_register(
    node: *mut gikev2_gm_node_t,
    name: *const c_char,
    connection: *mut c_char,
    connection_len: *mut usize,
) -> gikev2_error_t {
    guard("gikev2_gm_node_register", || {
        // SAFETY: per the function's contract.
        let name = unsafe { utf8(name, "name") }?;
        // SAFETY: per the function's contract.
        let mut out = unsafe { OutBuf::new(connection.cast(), connection_len, "connection") }?;
        // SAFETY: per the function's contract.
        let conn = unsafe { with(node, |n| Ok(n.register(name))) }?
            .ok_or_else(|| fail(GIKEV2_ERR_NOT_FOUND, format!("no membership '{name}'")))?;
        out.write_text(&conn)
    })
}

/// The name of membership `membership` (configured or leaving), into
/// `name` (NUL-terminated). GIKEV2_ERR_NOT_FOUND: no such membership.
///
/// # Safety
/// `node` NULL or a live handle; `name`/`name_len` an output buffer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn gikev2_gm_node_membership_name(
    node: *const gikev2_gm_node_t,
    membership: u64,
    name: *mut c_char,
    name_len: *mut usize,
) -> gikev2_error_t {
    guard("gikev2_gm_node_membership_name", || {
        // SAFETY: per the function's contract.
        let mut out = unsafe { OutBuf::new(name.cast(), name_len, "name") }?;
        // SAFETY: per the function's contract.
        let n = unsafe { with(node, |n| Ok(n.name(MembershipId(membership)))) }?
            .ok_or_else(|| fail(GIKEV2_ERR_NOT_FOUND, "no such membership"))?;
        out.write_text(&n)
    })
}

/// Every membership is to take its state out of the kernel (charon
/// stops): the actions come from the next drain.
///
/// # Safety
/// `node` NULL or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn gikev2_gm_node_shut_down(node: *mut gikev2_gm_node_t) -> gikev2_error_t {
    guard("gikev2_gm_node_shut_down", || {
        // SAFETY: per the function's contract.
        unsafe {
            with(node, |n| {
                n.shut_down();
                Ok(())
            })
        }
    })
}

/// Hands each configured membership's status to `cb`, in configuration
/// order; the node's lock is held meanwhile, so `cb` must not call it.
///
/// # Safety
/// `node` NULL or a live handle; `cb` NULL or callable with `ctx`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn gikev2_gm_node_status(
    node: *const gikev2_gm_node_t,
    now_ms: u64,
    cb: gikev2_gm_node_status_cb_t,
    ctx: *mut c_void,
) -> gikev2_error_t {
    guard("gikev2_gm_node_status", || {
        let cb = cb.ok_or_else(|| fail(GIKEV2_ERR_NULL, "cb is NULL"))?;
        // SAFETY: per the function's contract.
        let list = unsafe { with(node, |n| Ok(n.status(now_ms))) }?;
        for s in list {
            let (name, conn, text) = (
                cstring(&s.name),
                cstring(&s.connection),
                cstring(&status_text(&s.engine)),
            );
            // SAFETY: callable with `ctx`; the strings outlive the call.
            unsafe { cb(ctx, name.as_ptr(), conn.as_ptr(), text.as_ptr()) };
        }
        Ok(())
    })
}

/// The algorithms and keys of Rekey SA `rekey_spi` of `membership`, as
/// gikev2_gm_rekey_sa_keys() describes them.
///
/// # Safety
/// As gikev2_gm_rekey_sa_keys(), with `node` for `gm`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn gikev2_gm_node_rekey_sa_keys(
    node: *const gikev2_gm_node_t,
    membership: u64,
    rekey_spi: *const u8,
    algs: *mut super::gm::gikev2_rekey_sa_algs_t,
    encr_key: *mut u8,
    encr_key_len: *mut usize,
    integ_key: *mut u8,
    integ_key_len: *mut usize,
) -> gikev2_error_t {
    guard("gikev2_gm_node_rekey_sa_keys", || {
        // SAFETY: NULL or readable for the SPI's length per the contract.
        let spi = unsafe { rekey_spi_arg(rekey_spi) }?;
        // SAFETY: per the function's contract.
        let keys = unsafe {
            with(node, |n| {
                Ok(n.engine(MembershipId(membership))
                    .and_then(|gm| gm.rekey_sa_keys(spi)))
            })
        }?;
        // SAFETY: forwarded contract.
        unsafe {
            super::gm::put_rekey_sa_keys(
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

/// Hands every queued action to `cb`, one at a time, in the node's order,
/// and returns when none is left. A lock of the drain is held from taking
/// an action until `cb` returns, so actions are carried out in order
/// whatever threads drain; other calls on the node go on meanwhile and
/// `cb` may make them, but not gikev2_gm_node_drain() or
/// gikev2_gm_node_status().
///
/// # Safety
/// `node` NULL or a live handle; `cb` NULL or callable with `ctx` on this
/// thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn gikev2_gm_node_drain(
    node: *mut gikev2_gm_node_t,
    cb: gikev2_gm_node_action_cb_t,
    ctx: *mut c_void,
) -> gikev2_error_t {
    guard("gikev2_gm_node_drain", || {
        // SAFETY: per the function's contract.
        let h = unsafe { handle(node, "node") }?;
        let cb = cb.ok_or_else(|| fail(GIKEV2_ERR_NULL, "cb is NULL"))?;
        let _turn = lock(&h.pump)?;
        loop {
            let next = lock(&h.state)?.node.poll_action();
            let Some(next) = next else {
                return Ok(());
            };
            let (a, keys, conn) = action_record(&next);
            let (e, i) = keys.unwrap_or((&[], &[]));
            let conn = conn.map(cstring);
            // SAFETY: callable with `ctx` per the contract; the record,
            // keys and string outlive the call.
            unsafe {
                cb(
                    ctx,
                    &a,
                    e.as_ptr(),
                    e.len(),
                    i.as_ptr(),
                    i.len(),
                    conn.as_ref().map_or(std::ptr::null(), |c| c.as_ptr()),
                )
            };
        }
    })
}

type Keys<'a> = Option<(&'a [u8], &'a [u8])>;

fn sa_fields(out: &mut gikev2_gm_node_action_t, sa: SaRef, d: SaDirection) {
    (out.protocol, out.spi) = match sa {
        SaRef::Esp(spi) => (gikev2_protocol_t::GIKEV2_PROTO_ESP, spi),
        SaRef::Ah(spi) => (gikev2_protocol_t::GIKEV2_PROTO_AH, spi),
        SaRef::Rekey(_) => (gikev2_protocol_t::GIKEV2_PROTO_NONE, 0),
    };
    out.direction = direction(d);
}

fn direction(d: SaDirection) -> gikev2_direction_t {
    match d {
        SaDirection::Inbound => gikev2_direction_t::GIKEV2_DIR_IN,
        SaDirection::Outbound => gikev2_direction_t::GIKEV2_DIR_OUT,
    }
}

fn action_record(a: &GmNodeAction) -> (gikev2_gm_node_action_t, Keys<'_>, Option<&str>) {
    use gikev2_gm_node_action_kind_t::*;
    let mut out = gikev2_gm_node_action_t::NONE;
    let local = |ip: Option<std::net::IpAddr>| {
        gikev2_endpoint_t::from_socket(ip.map(|ip| std::net::SocketAddr::new(ip, 0)))
    };
    let mut keys = None;
    let mut conn = None;
    match a {
        GmNodeAction::Install {
            membership,
            tek,
            local: l,
        } => {
            out.kind = GIKEV2_GM_NODE_INSTALL;
            out.membership = membership.0;
            sa_fields(&mut out, tek.sa, tek.direction);
            out.mode = match tek.mode {
                Mode::Tunnel => gikev2_mode_t::GIKEV2_MODE_TUNNEL,
                Mode::Transport => gikev2_mode_t::GIKEV2_MODE_TRANSPORT,
            };
            out.src = gikev2_ts_t::from_ts(&tek.src);
            out.dst = gikev2_ts_t::from_ts(&tek.dst);
            if let Some((id, bits)) = tek.encr {
                out.encr_id = id.0;
                out.encr_key_bits = bits.unwrap_or(0);
            }
            out.integ_id = tek.integ.0;
            out.lifetime_secs = tek.lifetime_secs;
            out.replay_window = tek.replay_window;
            out.local = local(*l);
            keys = Some((tek.encr_key.expose(), tek.integ_key.expose()));
        }
        GmNodeAction::Delete {
            membership,
            sa,
            direction,
        } => {
            out.kind = GIKEV2_GM_NODE_DELETE;
            out.membership = membership.0;
            sa_fields(&mut out, *sa, *direction);
        }
        GmNodeAction::AddDrop(s) | GmNodeAction::RemoveDrop(s) => {
            out.kind = if matches!(a, GmNodeAction::AddDrop(_)) {
                GIKEV2_GM_NODE_ADD_DROP
            } else {
                GIKEV2_GM_NODE_REMOVE_DROP
            };
            out.direction = direction(s.direction);
            out.src = gikev2_ts_t::from_ts(&s.src);
            out.dst = gikev2_ts_t::from_ts(&s.dst);
        }
        GmNodeAction::ListenRekey {
            membership,
            spi,
            dst,
            local: l,
        } => {
            out.kind = GIKEV2_GM_NODE_LISTEN_REKEY;
            out.membership = membership.0;
            out.rekey_spi = spi.0;
            out.rekey_dst = gikev2_endpoint_t::from_socket(Some(*dst));
            out.local = local(*l);
        }
        GmNodeAction::StopRekey { membership, spi } => {
            out.kind = GIKEV2_GM_NODE_STOP_REKEY;
            out.membership = membership.0;
            out.rekey_spi = spi.0;
        }
        GmNodeAction::Initiate { connection } => {
            out.kind = GIKEV2_GM_NODE_INITIATE;
            conn = Some(connection.as_str());
        }
        GmNodeAction::Register { membership, ike_sa } => {
            out.kind = GIKEV2_GM_NODE_REGISTER;
            out.membership = membership.0;
            out.ike_sa = *ike_sa;
        }
        GmNodeAction::Leave {
            membership,
            ike_sa,
            why,
        } => {
            out.kind = GIKEV2_GM_NODE_LEAVE;
            out.membership = membership.0;
            out.ike_sa = *ike_sa;
            out.notify = why.0;
        }
        GmNodeAction::CloseIkeSa { ike_sa } => {
            out.kind = GIKEV2_GM_NODE_CLOSE_IKE_SA;
            out.ike_sa = *ike_sa;
        }
    }
    (out, keys, conn)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{Secret, SeededRng};
    use crate::gcks::{Gcks, GcksAction, MemberId, Registration};
    use crate::iana::ExchangeType;
    use crate::ike_sa::IkeKeys;
    use std::collections::HashSet;
    use std::sync::atomic::{AtomicU64, Ordering};

    const SK_D: [u8; 32] = [7; 32];

    fn c(s: &str) -> CString {
        CString::new(s).unwrap()
    }

    /// What the plugin's callback saw, replayed as a kernel: an action
    /// out of order deletes what is not installed or closes a socket not
    /// open.
    #[derive(Default)]
    struct Kernel {
        sas: HashSet<(u8, u32, u8)>,
        sockets: HashSet<[u8; GIKEV2_REKEY_SPI_LEN]>,
        faults: Vec<String>,
        actions: usize,
    }

    unsafe extern "C" fn record(
        ctx: *mut c_void,
        a: *const gikev2_gm_node_action_t,
        _: *const u8,
        _: usize,
        _: *const u8,
        _: usize,
        _: *const c_char,
    ) {
        // SAFETY: `ctx` is the test's Mutex<Kernel>, `a` a live record.
        let (k, a) = unsafe { (&*(ctx as *const Mutex<Kernel>), &*a) };
        // a host's kernel call takes a while: the window a lost order
        // shows in
        std::thread::sleep(std::time::Duration::from_micros(200));
        let mut k = k.lock().unwrap();
        k.actions += 1;
        let sa = (a.protocol as u8, a.spi, a.direction as u8);
        use gikev2_gm_node_action_kind_t::*;
        let fault = match a.kind {
            GIKEV2_GM_NODE_INSTALL => (!k.sas.insert(sa)).then(|| format!("{sa:?} twice")),
            GIKEV2_GM_NODE_DELETE => (!k.sas.remove(&sa)).then(|| format!("{sa:?} deleted first")),
            GIKEV2_GM_NODE_LISTEN_REKEY => {
                (!k.sockets.insert(a.rekey_spi)).then(|| "socket twice".to_owned())
            }
            GIKEV2_GM_NODE_STOP_REKEY => {
                (!k.sockets.remove(&a.rekey_spi)).then(|| "socket closed first".to_owned())
            }
            _ => None,
        };
        k.faults.extend(fault);
    }

    struct Node(*mut gikev2_gm_node_t);
    // SAFETY: the handle is made for use from several threads.
    unsafe impl Sync for Node {}

    impl Node {
        fn ptr(&self) -> *mut gikev2_gm_node_t {
            self.0
        }
    }

    /// A GCKS engine's group market-data (no ATD or DTD: a rekey installs
    /// the new TEK and deletes the old one at once) and a node whose
    /// membership registered to it; the node's actions not yet drained.
    fn registered() -> (Gcks, Node) {
        let settings = [
            ("id", "market-data"),
            ("members", "*@example.com"),
            ("rekey.address", "239.1.1.2:848"),
            ("rekey.auth", "implicit"),
            ("tek.feed.destination", "239.1.1.1[udp/5000]"),
        ];
        let cfg =
            crate::config::group_from_settings(settings, &|f| Err(format!("no {f}"))).unwrap();
        let mut gcks = Gcks::new(Box::new(SeededRng::from_u64(9)));
        gcks.add_group(0, cfg).unwrap();

        let mut node = std::ptr::null_mut();
        // SAFETY: `node` writable.
        assert_eq!(unsafe { gikev2_gm_node_new(&mut node) }, GIKEV2_OK);
        let (name, conn, key, value) = (c("market"), c("gcks"), c("id"), c("market-data"));
        let (keys, values) = ([key.as_ptr()], [value.as_ptr()]);
        let def = gikev2_membership_def_t {
            name: name.as_ptr(),
            connection: conn.as_ptr(),
            keys: keys.as_ptr(),
            values: values.as_ptr(),
            count: 1,
        };
        let mut n = 0;
        // SAFETY: live handle, one definition valid for the call.
        let err =
            unsafe { gikev2_gm_node_reload(node, &def, 1, None, std::ptr::null_mut(), &mut n) };
        assert_eq!((err, n), (GIKEV2_OK, 1));
        let peer = gikev2_endpoint_t::from_socket(Some("10.1.0.1:500".parse().unwrap()));
        let me = gikev2_endpoint_t::from_socket(Some("10.1.0.7:500".parse().unwrap()));
        let mut registers = false;
        // SAFETY: live handle; valid strings and pointers.
        unsafe {
            assert_eq!(
                gikev2_gm_node_ike_sa_init(node, 1, conn.as_ptr(), &peer, &mut registers),
                GIKEV2_OK
            );
        }
        assert!(registers);
        let (mut buf, mut len, mut drop_ic) = (vec![0u8; 4096], 4096, false);
        // SAFETY: live handle; the buffer holds `len` octets.
        let err = unsafe {
            gikev2_gm_node_gsa_auth_request(
                node,
                1,
                conn.as_ptr(),
                buf.as_mut_ptr(),
                &mut len,
                &mut drop_ic,
            )
        };
        assert_eq!(err, GIKEV2_OK);
        let request = payloads_from_records(&buf[..len]).unwrap();
        let sk_d = Secret::from_slice(&SK_D);
        let ike = IkeKeys {
            sk_d: &sk_d,
            prf: crate::crypto::PrfAlg::HmacSha256,
            kwa: crate::crypto::KeyWrapAlg::Kw5649_256,
        };
        let answer = records_from_payloads(&gcks.handle_registration(
            0,
            &Registration {
                member: MemberId(1),
                identities: &["gm1@example.com"],
                peer: None,
                exchange: ExchangeType::GSA_AUTH,
                payloads: &request,
                ike,
            },
        ));
        // SAFETY: live handle; valid strings and buffers.
        unsafe {
            assert_eq!(
                gikev2_gm_node_gsa_auth_response(
                    node,
                    1,
                    conn.as_ptr(),
                    answer.as_ptr(),
                    answer.len()
                ),
                GIKEV2_OK
            );
            assert_eq!(
                gikev2_gm_node_ike_sa_up(
                    node,
                    0,
                    1,
                    conn.as_ptr(),
                    &me,
                    &peer,
                    SK_D.as_ptr(),
                    32,
                    5,
                    3
                ),
                GIKEV2_OK
            );
        }
        (gcks, Node(node))
    }

    /// GSA_REKEY datagrams of `n` rekeys, in the order the GCKS sent them.
    fn rekeys(gcks: &mut Gcks, n: u64) -> Vec<Vec<u8>> {
        let group = gcks.status(0)[0].id.clone();
        let mut out = Vec::new();
        // the join flush first, which moves the group to the Rekey SA the
        // member was given
        gcks.handle_timeout(60_000);
        for i in 1..=n {
            if i % 5 == 0 {
                gcks.rekey_kek(60_000 + i, &group).unwrap();
            } else {
                gcks.rekey(60_000 + i, &group).unwrap();
            }
            while let Some(a) = gcks.poll_action() {
                if let GcksAction::Multicast { datagram, .. } = a {
                    out.push(datagram);
                }
            }
        }
        out
    }

    #[test]
    fn drain_carries_out_actions_in_order_from_many_threads() {
        let (mut gcks, node) = registered();
        let datagrams = rekeys(&mut gcks, 200);
        // SAFETY: a live handle; nothing else uses it now.
        let kernel = Mutex::new(Kernel::default());
        let next = AtomicU64::new(0);
        let taken = AtomicU64::new(0);
        let feed = Mutex::new(());
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    let ctx = &kernel as *const Mutex<Kernel> as *mut c_void;
                    loop {
                        {
                            // datagrams reach the node in the order sent,
                            // as from one socket; drains race
                            let _f = feed.lock().unwrap();
                            let i = next.fetch_add(1, Ordering::SeqCst) as usize;
                            let Some(d) = datagrams.get(i) else {
                                break;
                            };
                            let mut o = gikev2_rekey_outcome_t::GIKEV2_REKEY_DROPPED;
                            let now = 1000 + 10 * i as u64;
                            // SAFETY: live handle; the datagram is readable.
                            let err = unsafe {
                                gikev2_gm_node_rekey_datagram(
                                    node.ptr(),
                                    now,
                                    1,
                                    d.as_ptr(),
                                    d.len(),
                                    &mut o,
                                )
                            };
                            assert_eq!(err, GIKEV2_OK);
                            // SAFETY: live handle. With no DTD the old
                            // SAs go now.
                            assert_eq!(
                                unsafe { gikev2_gm_node_handle_timeout(node.ptr(), now) },
                                GIKEV2_OK
                            );
                            if o == gikev2_rekey_outcome_t::GIKEV2_REKEY_TAKEN {
                                taken.fetch_add(1, Ordering::SeqCst);
                            }
                        }
                        // SAFETY: live handle; `record` takes this `ctx`.
                        assert_eq!(
                            unsafe { gikev2_gm_node_drain(node.ptr(), Some(record), ctx) },
                            GIKEV2_OK
                        );
                    }
                });
            }
        });
        let k = kernel.into_inner().unwrap();
        let taken = taken.load(Ordering::SeqCst);
        assert!(
            taken >= 200,
            "{taken} of {} datagrams taken",
            datagrams.len()
        );
        assert_eq!(k.faults, [] as [String; 0], "of {} actions", k.actions);
        assert!(k.actions > 400, "{} actions", k.actions);
        // what the callbacks built is what the node holds
        // SAFETY: a live handle; nothing else uses it now.
        let status = unsafe { lock(&(*node.0).state).unwrap().node.status(10_000) };
        let status = &status[0].engine;
        assert_eq!(k.sas.len(), status.teks.len());
        assert_eq!(k.sockets.len(), status.rekey_spis.len());
        // SAFETY: a handle from gikev2_gm_node_new(), used by no one else.
        unsafe { gikev2_gm_node_destroy(node.0) };
    }
}
