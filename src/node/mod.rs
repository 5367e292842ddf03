//! Nodes: what one charon runs, over the engines of `gcks` and `gm`.
//!
//! As quinn-proto's `Endpoint` sits over its `Connection`s, a node owns
//! every engine of one role in one charon and everything between them
//! and charon: which IKE SA carries which membership, what a settings
//! reload changes, leaving a group, the kernel state a membership holds,
//! fail-closed drop policies, retries. The plugin turns charon's hooks
//! into the node's events and the node's actions into charon calls; it
//! decides nothing. Sans-I/O like the engines: no sockets, clocks or
//! threads inside, the time comes with each event.

pub mod gm;

/// An IKE SA, by charon's unique id (`ike_sa_t.get_unique_id`): stable
/// for the IKE SA's life, never reused while charon runs.
pub type IkeSaId = u32;
