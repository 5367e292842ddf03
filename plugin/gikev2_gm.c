/*
 * Copyright (C) 2026 The G-IKEv2 for strongSwan project
 *
 * This program is free software; you can redistribute it and/or modify it
 * under the terms of the GNU General Public License as published by the
 * Free Software Foundation; either version 2 of the License, or (at your
 * option) any later version.  See <http://www.fsf.org/copyleft/gpl.txt>.
 *
 * This program is distributed in the hope that it will be useful, but
 * WITHOUT ANY WARRANTY; without even the implied warranty of MERCHANTABILITY
 * or FITNESS FOR A PARTICULAR PURPOSE.  See the GNU General Public License
 * for more details.
 */

#include "gikev2_gm.h"
#include "gikev2_util.h"

#include <unistd.h>
#include <errno.h>
#include <sys/socket.h>
#include <netinet/in.h>

#include <daemon.h>
#include <collections/linked_list.h>
#include <threading/mutex.h>
#include <threading/rwlock.h>
#include <processing/jobs/callback_job.h>
#include <processing/jobs/initiate_tasks_job.h>
#include <sa/exchange_manager.h>

typedef struct private_gikev2_gm_listener_t private_gikev2_gm_listener_t;

/**
 * A Data-Security SA installed in the kernel
 */
typedef struct {

	/**
	 * Protocol (IANA)
	 */
	uint8_t protocol;

	/**
	 * SPI, host order
	 */
	uint32_t spi;

	/**
	 * Direction
	 */
	gikev2_direction_t direction;

	/**
	 * Source of the SA (%any inbound)
	 */
	host_t *src;

	/**
	 * Destination of the SA (the group address)
	 */
	host_t *dst;

	/**
	 * Source traffic selector of the policy
	 */
	traffic_selector_t *src_ts;

	/**
	 * Destination traffic selector of the policy
	 */
	traffic_selector_t *dst_ts;

	/**
	 * IPsec mode
	 */
	ipsec_mode_t mode;

	/**
	 * reqid binding SA and policy
	 */
	uint32_t reqid;

} installed_sa_t;

/**
 * A fallback policy dropping a group's traffic once its SAs are gone
 * (fail_mode = closed)
 */
typedef struct {

	/**
	 * Direction
	 */
	policy_dir_t dir;

	/**
	 * Source traffic selector
	 */
	traffic_selector_t *src_ts;

	/**
	 * Destination traffic selector
	 */
	traffic_selector_t *dst_ts;

} drop_policy_t;

/**
 * A socket receiving GSA_REKEY messages of a Rekey SA
 */
typedef struct {

	/**
	 * Rekey SA SPI
	 */
	uint8_t spi[GIKEV2_REKEY_SPI_LEN];

	/**
	 * Socket
	 */
	int fd;

} rekey_socket_t;

/**
 * A configured membership
 */
typedef struct {

	/**
	 * Name of the membership section
	 */
	char *name;

	/**
	 * Name of the connection registering it
	 */
	char *conn;

	/**
	 * Core GM handle
	 */
	gikev2_gm_t *gm;

	/**
	 * Timer driving the core
	 */
	gikev2_timer_t *timer;

	/**
	 * Our address on the last registering IKE_SA
	 */
	host_t *local;

	/**
	 * Unique ID of the registering IKE_SA
	 */
	u_int ike_id;

	/**
	 * SK_d of the registering IKE_SA
	 */
	chunk_t sk_d;

	/**
	 * Records of the GSA_AUTH response, handled once the IKE_SA is up
	 */
	chunk_t response;

	/**
	 * Error notify the GCKS refused the registration with, 0 if none
	 */
	uint16_t refused;

	/**
	 * Installed SAs, installed_sa_t
	 */
	linked_list_t *sas;

	/**
	 * Rekey sockets, rekey_socket_t
	 */
	linked_list_t *sockets;

	/**
	 * Last GSA_REKEY datagram taken: copies of it are the GCKS's
	 * retransmissions, other replays are logged as dropped
	 */
	chunk_t last_rekey;

	/**
	 * Fallback drop policies, drop_policy_t (fail_mode = closed)
	 */
	linked_list_t *drops;

	/**
	 * TRUE to keep traffic dropped when the SAs are gone (fail_mode)
	 */
	bool fail_closed;

	/**
	 * Lock for the above
	 */
	mutex_t *mutex;

	/**
	 * Group ID (id setting), NULL if none
	 */
	char *group;

	/**
	 * Keys of the settings, to see what a reload changes
	 */
	char **keys;

	/**
	 * Values of the settings
	 */
	char **values;

	/**
	 * Number of settings
	 */
	int count;

	/**
	 * TRUE once removed: its SAs are gone and actions are dropped
	 */
	bool dead;

	/**
	 * TRUE once a removed membership's leave is queued on an IKE_SA
	 */
	bool leave_queued;

	/**
	 * TRUE once the GCKS acknowledged the leave (or none is possible)
	 */
	bool left;

	/**
	 * References: the listener's lists, jobs, tasks, watched sockets
	 */
	refcount_t ref;

} membership_t;

/**
 * A socket to close from a job, with a reference to its membership, whose
 * watcher callback it may still call
 */
typedef struct {

	/**
	 * Membership
	 */
	membership_t *m;

	/**
	 * Socket
	 */
	void *s;

} socket_job_t;

/**
 * Private data of a gikev2_gm_listener_t object.
 */
struct private_gikev2_gm_listener_t {

	/**
	 * Public interface.
	 */
	gikev2_gm_listener_t public;

	/**
	 * Memberships, membership_t (a reference each)
	 */
	linked_list_t *memberships;

	/**
	 * Removed memberships still to leave their groups, membership_t (a
	 * reference each)
	 */
	linked_list_t *leaving;

	/**
	 * Lock for the lists
	 */
	rwlock_t *lock;

	/**
	 * Lock serializing reloads
	 */
	mutex_t *config;

	/**
	 * Connection returned by the last register_membership()
	 */
	char *registered;

	/**
	 * Registering IKE_SAs not yet destroyed, gikev2_ike_sa_t
	 */
	linked_list_t *ike_sas;

	/**
	 * Lock for ike_sas
	 */
	mutex_t *ike_sas_lock;
};

/**
 * An IKE_SA this GM initiated to register, and its GCKS
 */
typedef struct {

	/**
	 * Unique ID of the IKE_SA
	 */
	u_int id;

	/**
	 * Address of the GCKS
	 */
	host_t *gcks;

	/**
	 * TRUE once the IKE_SA came up
	 */
	bool up;

} gikev2_ike_sa_t;

static void membership_free(membership_t *m);

/**
 * Get a reference to a membership
 */
static membership_t *membership_get(membership_t *m)
{
	ref_get(&m->ref);
	return m;
}

/**
 * Drop a reference to a membership, freeing it with the last
 */
static void membership_put(membership_t *m)
{
	if (ref_put(&m->ref))
	{
		membership_free(m);
	}
}

/**
 * Find the membership of a connection in a list, lock must be held
 */
static membership_t *find_in(linked_list_t *list, char *conn, bool leaving)
{
	enumerator_t *enumerator;
	membership_t *m, *found = NULL;

	enumerator = list->create_enumerator(list);
	while (enumerator->enumerate(enumerator, &m))
	{
		if (streq(m->conn, conn))
		{
			if (leaving)
			{	/* a live membership's lock may be held for a while (kernel
				 * installs in drain()), which IKE messages must not wait for */
				m->mutex->lock(m->mutex);
				if (!m->leave_queued && !m->left)
				{
					found = m;
				}
				m->mutex->unlock(m->mutex);
			}
			else
			{
				found = m;
			}
			if (found)
			{
				break;
			}
		}
	}
	enumerator->destroy(enumerator);
	return found;
}

/**
 * Find the membership of an IKE_SA's connection, or a removed one still
 * to leave its group: a reference the caller must put
 */
static membership_t *find(private_gikev2_gm_listener_t *this, ike_sa_t *ike_sa)
{
	membership_t *found;
	peer_cfg_t *peer_cfg;

	peer_cfg = ike_sa->get_peer_cfg(ike_sa);
	if (!peer_cfg)
	{
		return NULL;
	}
	this->lock->read_lock(this->lock);
	found = find_in(this->memberships, peer_cfg->get_name(peer_cfg), FALSE);
	if (!found)
	{
		found = find_in(this->leaving, peer_cfg->get_name(peer_cfg), TRUE);
	}
	if (found)
	{
		membership_get(found);
	}
	this->lock->unlock(this->lock);
	return found;
}

/**
 * Add or remove a fallback drop policy in the kernel
 */
static void manage_drop(drop_policy_t *drop, bool add)
{
	ipsec_sa_cfg_t cfg = {
		.mode = MODE_TRANSPORT,
	};
	kernel_ipsec_policy_id_t pid = {
		.dir = drop->dir,
		.src_ts = drop->src_ts,
		.dst_ts = drop->dst_ts,
	};
	kernel_ipsec_manage_policy_t mp = {
		.type = POLICY_DROP,
		.prio = POLICY_PRIORITY_FALLBACK,
		.sa = &cfg,
	};
	host_t *any;

	any = host_create_any(drop->dst_ts->get_type(drop->dst_ts) ==
						  TS_IPV4_ADDR_RANGE ? AF_INET : AF_INET6);
	mp.src = mp.dst = any;
	if (add)
	{
		if (charon->kernel->add_policy(charon->kernel, &pid, &mp) != SUCCESS)
		{
			DBG1(DBG_KNL, "gikev2: installing fallback drop policy %R === %R "
				 "%N failed", drop->src_ts, drop->dst_ts, policy_dir_names,
				 drop->dir);
		}
	}
	else
	{
		charon->kernel->del_policy(charon->kernel, &pid, &mp);
	}
	any->destroy(any);
}

/**
 * Remove a fallback drop policy from the kernel and free it
 */
static void drop_destroy(drop_policy_t *drop)
{
	manage_drop(drop, FALSE);
	drop->src_ts->destroy(drop->src_ts);
	drop->dst_ts->destroy(drop->dst_ts);
	free(drop);
}

/**
 * Check if an installed SA's policy has the selectors of a drop policy
 */
static bool drop_matches(drop_policy_t *drop, installed_sa_t *sa)
{
	return drop->dir == (sa->direction == GIKEV2_DIR_IN ? POLICY_IN
														: POLICY_OUT) &&
		   drop->src_ts->equals(drop->src_ts, sa->src_ts) &&
		   drop->dst_ts->equals(drop->dst_ts, sa->dst_ts);
}

/**
 * With fail_mode = closed, have a fallback drop policy under the policy of
 * an installed SA: the kernel uses it once the SAs with these selectors
 * are gone, so the group's traffic never passes in the clear
 */
static void add_drop(membership_t *m, installed_sa_t *sa)
{
	enumerator_t *enumerator;
	drop_policy_t *drop;
	bool found = FALSE;

	if (!m->fail_closed)
	{
		return;
	}
	enumerator = m->drops->create_enumerator(m->drops);
	while (!found && enumerator->enumerate(enumerator, &drop))
	{
		found = drop_matches(drop, sa);
	}
	enumerator->destroy(enumerator);
	if (found)
	{
		return;
	}
	INIT(drop,
		.dir = sa->direction == GIKEV2_DIR_IN ? POLICY_IN : POLICY_OUT,
		.src_ts = sa->src_ts->clone(sa->src_ts),
		.dst_ts = sa->dst_ts->clone(sa->dst_ts),
	);
	manage_drop(drop, TRUE);
	DBG2(DBG_KNL, "gikev2: fallback drop policy %R === %R %N (fail_mode "
		 "closed)", drop->src_ts, drop->dst_ts, policy_dir_names, drop->dir);
	m->drops->insert_last(m->drops, drop);
}

/**
 * Remove the drop policies no installed SA has the selectors of: the
 * group's policy changed
 */
static void prune_drops(membership_t *m)
{
	enumerator_t *enumerator, *sas;
	drop_policy_t *drop;
	installed_sa_t *sa;
	bool used;

	enumerator = m->drops->create_enumerator(m->drops);
	while (enumerator->enumerate(enumerator, &drop))
	{
		used = FALSE;
		sas = m->sas->create_enumerator(m->sas);
		while (!used && sas->enumerate(sas, &sa))
		{
			used = drop_matches(drop, sa);
		}
		sas->destroy(sas);
		if (!used)
		{
			m->drops->remove_at(m->drops, enumerator);
			drop_destroy(drop);
		}
	}
	enumerator->destroy(enumerator);
}

/**
 * Remove an installed SA and its policy from the kernel and free it
 */
static void uninstall(installed_sa_t *sa)
{
	kernel_ipsec_sa_id_t id = {
		.src = sa->src,
		.dst = sa->dst,
		.spi = htonl(sa->spi),
		.proto = sa->protocol == GIKEV2_PROTO_AH ? IPPROTO_AH : IPPROTO_ESP,
	};
	kernel_ipsec_del_sa_t del = {};
	ipsec_sa_cfg_t cfg = {
		.mode = sa->mode,
		.reqid = sa->reqid,
	};
	kernel_ipsec_policy_id_t pid = {
		.dir = sa->direction == GIKEV2_DIR_IN ? POLICY_IN : POLICY_OUT,
		.src_ts = sa->src_ts,
		.dst_ts = sa->dst_ts,
	};
	kernel_ipsec_manage_policy_t mp = {
		.type = POLICY_IPSEC,
		.prio = POLICY_PRIORITY_DEFAULT,
		.src = sa->src,
		.dst = sa->dst,
		.sa = &cfg,
	};

	if (sa->protocol == GIKEV2_PROTO_AH)
	{
		cfg.ah.use = TRUE;
		cfg.ah.spi = htonl(sa->spi);
	}
	else
	{
		cfg.esp.use = TRUE;
		cfg.esp.spi = htonl(sa->spi);
	}
	charon->kernel->del_policy(charon->kernel, &pid, &mp);
	charon->kernel->del_sa(charon->kernel, &id, &del);
	charon->kernel->release_reqid(charon->kernel, sa->reqid);
	DBG1(DBG_KNL, "gikev2: deleted %s SA %.8x for %H",
		 sa->direction == GIKEV2_DIR_IN ? "inbound" : "outbound", sa->spi,
		 sa->dst);
	sa->src->destroy(sa->src);
	sa->dst->destroy(sa->dst);
	sa->src_ts->destroy(sa->src_ts);
	sa->dst_ts->destroy(sa->dst_ts);
	free(sa);
}

/**
 * Install a Data-Security SA and its policy
 */
static void install(membership_t *m, gikev2_gm_action_t *a, chunk_t encr,
					chunk_t integ)
{
	installed_sa_t *sa;
	linked_list_t *src_list, *dst_list;
	lifetime_cfg_t lifetime = {};
	kernel_ipsec_sa_id_t id;
	kernel_ipsec_add_sa_t add;
	ipsec_sa_cfg_t cfg;
	kernel_ipsec_policy_id_t pid;
	kernel_ipsec_manage_policy_t mp;
	bool inbound = a->direction == GIKEV2_DIR_IN;

	if (a->lifetime_secs != UINT32_MAX)
	{	/* UINT32_MAX: the GCKS sent no lifetime, the core deletes the SA */
		lifetime.time.life = a->lifetime_secs;
		lifetime.time.rekey = a->lifetime_secs - a->lifetime_secs / 10;
	}
	INIT(sa,
		.protocol = a->protocol,
		.spi = a->spi,
		.direction = a->direction,
		.src_ts = gikev2_ts_from_core(&a->src),
		.dst_ts = gikev2_ts_from_core(&a->dst),
		.mode = a->mode == GIKEV2_MODE_TRANSPORT ? MODE_TRANSPORT : MODE_TUNNEL,
	);
	if (!sa->src_ts || !sa->dst_ts)
	{
		DBG1(DBG_KNL, "gikev2: invalid traffic selectors for SA %.8x",
			 a->spi);
		DESTROY_IF(sa->src_ts);
		DESTROY_IF(sa->dst_ts);
		free(sa);
		return;
	}
	sa->dst = host_create_from_chunk(sa->dst_ts->get_type(sa->dst_ts) ==
							TS_IPV4_ADDR_RANGE ? AF_INET : AF_INET6,
							sa->dst_ts->get_from_address(sa->dst_ts), 0);
	if (!inbound && m->local)
	{
		sa->src = m->local->clone(m->local);
		sa->src->set_port(sa->src, 0);
	}
	else
	{
		sa->src = host_create_any(sa->dst->get_family(sa->dst));
	}
	src_list = linked_list_create_with_items(sa->src_ts, NULL);
	dst_list = linked_list_create_with_items(sa->dst_ts, NULL);
	if (charon->kernel->alloc_reqid(charon->kernel, inbound ? dst_list : src_list,
									inbound ? src_list : dst_list, (mark_t){},
									(mark_t){}, 0, 0, NULL,
									&sa->reqid) != SUCCESS)
	{
		DBG1(DBG_KNL, "gikev2: allocating reqid for SA %.8x failed", a->spi);
		src_list->destroy(src_list);
		dst_list->destroy(dst_list);
		sa->src->destroy(sa->src);
		sa->dst->destroy(sa->dst);
		sa->src_ts->destroy(sa->src_ts);
		sa->dst_ts->destroy(sa->dst_ts);
		free(sa);
		return;
	}
	id = (kernel_ipsec_sa_id_t){
		.src = sa->src,
		.dst = sa->dst,
		.spi = htonl(a->spi),
		.proto = a->protocol == GIKEV2_PROTO_AH ? IPPROTO_AH : IPPROTO_ESP,
	};
	add = (kernel_ipsec_add_sa_t){
		.reqid = sa->reqid,
		.mode = sa->mode,
		.src_ts = src_list,
		.dst_ts = dst_list,
		.lifetime = &lifetime,
		.enc_alg = a->protocol == GIKEV2_PROTO_AH ? ENCR_UNDEFINED : a->encr_id,
		.enc_key = encr,
		.int_alg = a->integ_id ?: AUTH_UNDEFINED,
		.int_key = integ,
		.replay_window = a->replay_window,
		.copy_df = TRUE,
		.copy_ecn = TRUE,
		.copy_dscp = DSCP_COPY_OUT_ONLY,
		.inbound = inbound,
	};
	if (charon->kernel->add_sa(charon->kernel, &id, &add) != SUCCESS)
	{
		DBG1(DBG_KNL, "gikev2: installing %s SA %.8x for %H failed",
			 inbound ? "inbound" : "outbound", a->spi, sa->dst);
		charon->kernel->release_reqid(charon->kernel, sa->reqid);
		src_list->destroy(src_list);
		dst_list->destroy(dst_list);
		sa->src->destroy(sa->src);
		sa->dst->destroy(sa->dst);
		sa->src_ts->destroy(sa->src_ts);
		sa->dst_ts->destroy(sa->dst_ts);
		free(sa);
		return;
	}
	src_list->destroy(src_list);
	dst_list->destroy(dst_list);

	cfg = (ipsec_sa_cfg_t){
		.mode = sa->mode,
		.reqid = sa->reqid,
	};
	if (a->protocol == GIKEV2_PROTO_AH)
	{
		cfg.ah.use = TRUE;
		cfg.ah.spi = htonl(a->spi);
	}
	else
	{
		cfg.esp.use = TRUE;
		cfg.esp.spi = htonl(a->spi);
	}
	pid = (kernel_ipsec_policy_id_t){
		.dir = inbound ? POLICY_IN : POLICY_OUT,
		.src_ts = sa->src_ts,
		.dst_ts = sa->dst_ts,
	};
	mp = (kernel_ipsec_manage_policy_t){
		.type = POLICY_IPSEC,
		.prio = POLICY_PRIORITY_DEFAULT,
		.src = sa->src,
		.dst = sa->dst,
		.sa = &cfg,
	};
	if (charon->kernel->add_policy(charon->kernel, &pid, &mp) != SUCCESS)
	{
		DBG1(DBG_KNL, "gikev2: installing %s policy %R === %R failed",
			 inbound ? "inbound" : "outbound", sa->src_ts, sa->dst_ts);
	}
	DBG1(DBG_KNL, "gikev2: installed %s %N %s SA %.8x (reqid %u) %H === %H, "
		 "policy %R === %R, lifetime %us", inbound ? "inbound" : "outbound",
		 protocol_id_names, a->protocol,
		 sa->mode == MODE_TRANSPORT ? "transport" : "tunnel", a->spi,
		 sa->reqid,
		 sa->src, sa->dst, sa->src_ts, sa->dst_ts, a->lifetime_secs);
	m->sas->insert_last(m->sas, sa);
	add_drop(m, sa);
}

/**
 * Check if another installed SA has the policy selectors of one going away
 */
static bool has_successor(membership_t *m, installed_sa_t *gone)
{
	enumerator_t *enumerator;
	installed_sa_t *sa;
	bool found = FALSE;

	enumerator = m->sas->create_enumerator(m->sas);
	while (!found && enumerator->enumerate(enumerator, &sa))
	{
		found = sa != gone && sa->direction == gone->direction &&
				sa->src_ts->equals(sa->src_ts, gone->src_ts) &&
				sa->dst_ts->equals(sa->dst_ts, gone->dst_ts);
	}
	enumerator->destroy(enumerator);
	return found;
}

/**
 * Delete an installed SA
 */
static void delete_sa(membership_t *m, gikev2_gm_action_t *a,
					  linked_list_t *orphans)
{
	enumerator_t *enumerator;
	installed_sa_t *sa;
	drop_policy_t *orphan;

	enumerator = m->sas->create_enumerator(m->sas);
	while (enumerator->enumerate(enumerator, &sa))
	{
		if (sa->spi == a->spi && sa->protocol == a->protocol &&
			sa->direction == a->direction)
		{
			m->sas->remove_at(m->sas, enumerator);
			if (!has_successor(m, sa))
			{
				INIT(orphan,
					.dir = sa->direction == GIKEV2_DIR_IN ? POLICY_IN
														  : POLICY_OUT,
					.src_ts = sa->src_ts->clone(sa->src_ts),
					.dst_ts = sa->dst_ts->clone(sa->dst_ts),
				);
				orphans->insert_last(orphans, orphan);
			}
			uninstall(sa);
		}
	}
	enumerator->destroy(enumerator);
}

static void drain(membership_t *m);

/**
 * Receive a GSA_REKEY datagram (watcher callback)
 */
static bool receive_rekey(membership_t *m, int fd, watcher_event_t event)
{
	uint8_t buf[65536];
	ssize_t len;
	gikev2_error_t err;
	bool copy;

	len = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
	if (len <= 0)
	{
		return TRUE;
	}
	err = gikev2_gm_rekey(m->gm, gikev2_now_ms(), buf, len);
	switch (err)
	{
		case GIKEV2_OK:
			DBG1(DBG_IKE, "gikev2: membership '%s' processed GSA_REKEY "
				 "(%zd bytes)", m->name, len);
			m->mutex->lock(m->mutex);
			chunk_free(&m->last_rekey);
			m->last_rekey = chunk_clone(chunk_create(buf, len));
			m->mutex->unlock(m->mutex);
			break;
		case GIKEV2_ERR_REPLAY:
			m->mutex->lock(m->mutex);
			copy = chunk_equals(m->last_rekey, chunk_create(buf, len));
			m->mutex->unlock(m->mutex);
			if (copy)
			{
				DBG2(DBG_IKE, "gikev2: membership '%s' ignored retransmitted "
					 "GSA_REKEY", m->name);
			}
			else
			{	/* an older message replayed, or an altered copy */
				DBG1(DBG_IKE, "gikev2: membership '%s' dropped GSA_REKEY: %s",
					 m->name, gikev2_last_error());
			}
			break;
		case GIKEV2_ERR_UNKNOWN_SA:
			/* e.g. the join flush under the Rekey SA before ours */
			DBG2(DBG_IKE, "gikev2: membership '%s' ignored GSA_REKEY: %s",
				 m->name, gikev2_last_error());
			break;
		default:
			DBG1(DBG_IKE, "gikev2: membership '%s' dropped GSA_REKEY: %s",
				 m->name, gikev2_last_error());
			break;
	}
	memwipe(buf, len);
	drain(m);
	return TRUE;
}

/**
 * An algorithm's name in Wireshark's IKEv2 decryption table
 */
typedef struct {

	/**
	 * IANA transform ID
	 */
	uint16_t id;

	/**
	 * Key length in bits, -1 for any
	 */
	int key_bits;

	/**
	 * Name Wireshark expects
	 */
	const char *name;

} wireshark_alg_t;

/**
 * Wireshark's IKEv2 encryption algorithms (as the save-keys plugin's)
 */
static wireshark_alg_t wireshark_encr[] = {
	{ ENCR_3DES,           -1, "3DES [RFC2451]"                          },
	{ ENCR_AES_CBC,       128, "AES-CBC-128 [RFC3602]"                   },
	{ ENCR_AES_CBC,       192, "AES-CBC-192 [RFC3602]"                   },
	{ ENCR_AES_CBC,       256, "AES-CBC-256 [RFC3602]"                   },
	{ ENCR_AES_CTR,       128, "AES-CTR-128 [RFC5930]"                   },
	{ ENCR_AES_CTR,       192, "AES-CTR-192 [RFC5930]"                   },
	{ ENCR_AES_CTR,       256, "AES-CTR-256 [RFC5930]"                   },
	{ ENCR_AES_GCM_ICV8,  128, "AES-GCM-128 with 8 octet ICV [RFC5282]"  },
	{ ENCR_AES_GCM_ICV8,  192, "AES-GCM-192 with 8 octet ICV [RFC5282]"  },
	{ ENCR_AES_GCM_ICV8,  256, "AES-GCM-256 with 8 octet ICV [RFC5282]"  },
	{ ENCR_AES_GCM_ICV12, 128, "AES-GCM-128 with 12 octet ICV [RFC5282]" },
	{ ENCR_AES_GCM_ICV12, 192, "AES-GCM-192 with 12 octet ICV [RFC5282]" },
	{ ENCR_AES_GCM_ICV12, 256, "AES-GCM-256 with 12 octet ICV [RFC5282]" },
	{ ENCR_AES_GCM_ICV16, 128, "AES-GCM-128 with 16 octet ICV [RFC5282]" },
	{ ENCR_AES_GCM_ICV16, 192, "AES-GCM-192 with 16 octet ICV [RFC5282]" },
	{ ENCR_AES_GCM_ICV16, 256, "AES-GCM-256 with 16 octet ICV [RFC5282]" },
	{ ENCR_AES_CCM_ICV8,  128, "AES-CCM-128 with 8 octet ICV [RFC5282]"  },
	{ ENCR_AES_CCM_ICV8,  192, "AES-CCM-192 with 8 octet ICV [RFC5282]"  },
	{ ENCR_AES_CCM_ICV8,  256, "AES-CCM-256 with 8 octet ICV [RFC5282]"  },
	{ ENCR_AES_CCM_ICV12, 128, "AES-CCM-128 with 12 octet ICV [RFC5282]" },
	{ ENCR_AES_CCM_ICV12, 192, "AES-CCM-192 with 12 octet ICV [RFC5282]" },
	{ ENCR_AES_CCM_ICV12, 256, "AES-CCM-256 with 12 octet ICV [RFC5282]" },
	{ ENCR_AES_CCM_ICV16, 128, "AES-CCM-128 with 16 octet ICV [RFC5282]" },
	{ ENCR_AES_CCM_ICV16, 192, "AES-CCM-192 with 16 octet ICV [RFC5282]" },
	{ ENCR_AES_CCM_ICV16, 256, "AES-CCM-256 with 16 octet ICV [RFC5282]" },
};

/**
 * Wireshark's IKEv2 integrity algorithms (as the save-keys plugin's)
 */
static wireshark_alg_t wireshark_integ[] = {
	{ AUTH_HMAC_MD5_96,       -1, "HMAC_MD5_96 [RFC2403]"       },
	{ AUTH_HMAC_SHA1_96,      -1, "HMAC_SHA1_96 [RFC2404]"      },
	{ AUTH_HMAC_MD5_128,      -1, "HMAC_MD5_128 [RFC4595]"      },
	{ AUTH_HMAC_SHA1_160,     -1, "HMAC_SHA1_160 [RFC4595]"     },
	{ AUTH_HMAC_SHA2_256_128, -1, "HMAC_SHA2_256_128 [RFC4868]" },
	{ AUTH_HMAC_SHA2_384_192, -1, "HMAC_SHA2_384_192 [RFC4868]" },
	{ AUTH_HMAC_SHA2_512_256, -1, "HMAC_SHA2_512_256 [RFC4868]" },
};

/**
 * Look up an algorithm's Wireshark name, NULL if Wireshark has none
 */
static const char *wireshark_name(wireshark_alg_t *map, int count,
								  uint16_t id, int key_bits)
{
	int i;

	for (i = 0; i < count; i++)
	{
		if (map[i].id == id &&
			(map[i].key_bits == -1 || map[i].key_bits == key_bits))
		{
			return map[i].name;
		}
	}
	return NULL;
}

/**
 * Append the keys of a Rekey SA to the ikev2_decryption_table in the
 * directory charon.plugins.gikev2.wireshark_keys, if set, in the format of
 * the save-keys plugin: the 16-octet Rekey SA SPI as SPIi and SPIr, GSK_e
 * as SK_ei and SK_er, GSK_a as SK_ai and SK_ar
 */
static void save_rekey_keys(membership_t *m, uint8_t *spi)
{
	gikev2_rekey_sa_algs_t algs = {};
	uint8_t encr[GIKEV2_MAX_KEY_LEN], integ[GIKEV2_MAX_KEY_LEN];
	size_t encr_len = sizeof(encr), integ_len = sizeof(integ);
	chunk_t spi_i, spi_r, sk_e, sk_a;
	const char *enc_name, *integ_name = "NONE [RFC4306]";
	char *dir, path[PATH_MAX];
	FILE *file;

	dir = lib->settings->get_str(lib->settings,
								 "%s.plugins.gikev2.wireshark_keys", NULL, lib->ns);
	if (!dir)
	{
		return;
	}
	if (gikev2_gm_rekey_sa_keys(m->gm, spi, &algs, encr, &encr_len, integ,
								&integ_len) != GIKEV2_OK)
	{
		DBG1(DBG_IKE, "gikev2: getting Rekey SA keys for Wireshark failed: "
			 "%s", gikev2_last_error());
		return;
	}
	enc_name = wireshark_name(wireshark_encr, countof(wireshark_encr),
							  algs.encr_id, algs.encr_key_bits);
	if (!encryption_algorithm_is_aead(algs.encr_id))
	{
		integ_name = wireshark_name(wireshark_integ, countof(wireshark_integ),
									algs.integ_id, -1);
	}
	if (!enc_name || !integ_name)
	{
		DBG1(DBG_IKE, "gikev2: Wireshark cannot decrypt Rekey SA with "
			 "%N/%d and %N, keys not saved", encryption_algorithm_names,
			 algs.encr_id, algs.encr_key_bits, integrity_algorithm_names,
			 algs.integ_id);
		memwipe(encr, sizeof(encr));
		memwipe(integ, sizeof(integ));
		return;
	}
	snprintf(path, sizeof(path), "%s/ikev2_decryption_table", dir);
	DBG1(DBG_IKE, "gikev2: !! WARNING: membership '%s' saves the keys of its "
		 "Rekey SA to '%s'", m->name, path);
	file = fopen(path, "a");
	if (file)
	{
		spi_i = chunk_create(spi, GIKEV2_REKEY_SPI_LEN / 2);
		spi_r = chunk_create(spi + GIKEV2_REKEY_SPI_LEN / 2,
							 GIKEV2_REKEY_SPI_LEN / 2);
		sk_e = chunk_create(encr, encr_len);
		sk_a = chunk_create(integ, integ_len);
		fprintf(file, "%+B,%+B,%+B,%+B,\"%s\",%+B,%+B,\"%s\"\n", &spi_i,
				&spi_r, &sk_e, &sk_e, enc_name, &sk_a, &sk_a, integ_name);
		fclose(file);
	}
	else
	{
		DBG1(DBG_IKE, "gikev2: opening Rekey SA key table '%s' failed: %s",
			 path, strerror(errno));
	}
	memwipe(encr, sizeof(encr));
	memwipe(integ, sizeof(integ));
}

/**
 * Open a socket receiving GSA_REKEY on a multicast address
 */
static void listen_rekey(membership_t *m, gikev2_gm_action_t *a)
{
	rekey_socket_t *s;
	host_t *dst;
	struct ip_mreq mreq = {};
	int fd, on = 1;

	dst = gikev2_host_from_endpoint(&a->rekey_dst);
	if (!dst)
	{
		return;
	}
	fd = socket(dst->get_family(dst), SOCK_DGRAM, 0);
	if (fd < 0)
	{
		DBG1(DBG_NET, "gikev2: opening GSA_REKEY socket failed: %s",
			 strerror(errno));
		dst->destroy(dst);
		return;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
	if (bind(fd, dst->get_sockaddr(dst), *dst->get_sockaddr_len(dst)) < 0)
	{
		DBG1(DBG_NET, "gikev2: binding GSA_REKEY socket to %#H failed: %s",
			 dst, strerror(errno));
		close(fd);
		dst->destroy(dst);
		return;
	}
	if (dst->get_family(dst) == AF_INET)
	{
		memcpy(&mreq.imr_multiaddr, dst->get_address(dst).ptr, 4);
		if (m->local && m->local->get_family(m->local) == AF_INET)
		{
			memcpy(&mreq.imr_interface, m->local->get_address(m->local).ptr, 4);
		}
		if (setsockopt(fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, &mreq,
					   sizeof(mreq)) < 0)
		{
			DBG1(DBG_NET, "gikev2: joining %H failed: %s", dst,
				 strerror(errno));
		}
	}
	else
	{
		DBG1(DBG_NET, "gikev2: IPv6 GSA_REKEY groups not implemented yet");
	}
	INIT(s,
		.fd = fd,
	);
	memcpy(s->spi, a->rekey_spi, sizeof(s->spi));
	m->sockets->insert_last(m->sockets, s);
	lib->watcher->add(lib->watcher, fd, WATCHER_READ,
					  (watcher_cb_t)receive_rekey, m);
	DBG1(DBG_NET, "gikev2: membership '%s' listening for GSA_REKEY on %#H",
		 m->name, dst);
	dst->destroy(dst);
	save_rekey_keys(m, s->spi);
}

/**
 * Close a rekey socket
 */
static void socket_destroy(rekey_socket_t *s)
{
	lib->watcher->remove(lib->watcher, s->fd);
	close(s->fd);
	free(s);
}

/**
 * Destroy a socket (job), never from its own watcher callback or with the
 * membership locked: watcher_t.remove() waits for a running callback, and
 * that callback may be the caller or wait for the membership's lock
 */
static job_requeue_t socket_destroy_job(socket_job_t *job)
{
	socket_destroy(job->s);
	job->s = NULL;
	return JOB_REQUEUE_NONE;
}

/**
 * Cleanup of a socket job
 */
static void socket_job_destroy(socket_job_t *job)
{
	if (job->s)
	{	/* job not run, e.g. on shutdown */
		socket_destroy(job->s);
	}
	membership_put(job->m);
	free(job);
}

/**
 * Stop receiving GSA_REKEY of a Rekey SA
 */
static void stop_rekey(membership_t *m, gikev2_gm_action_t *a)
{
	enumerator_t *enumerator;
	rekey_socket_t *s;
	socket_job_t *job;

	enumerator = m->sockets->create_enumerator(m->sockets);
	while (enumerator->enumerate(enumerator, &s))
	{
		if (memeq(s->spi, a->rekey_spi, sizeof(s->spi)))
		{
			m->sockets->remove_at(m->sockets, enumerator);
			INIT(job,
				.m = membership_get(m),
				.s = s,
			);
			lib->processor->queue_job(lib->processor, (job_t*)
					callback_job_create((callback_job_cb_t)socket_destroy_job,
								job, (callback_job_cleanup_t)socket_job_destroy,
								NULL));
		}
	}
	enumerator->destroy(enumerator);
}

/**
 * Initiate the connection of a membership again (job)
 */
static job_requeue_t reregister_job(char *conn)
{
	peer_cfg_t *peer_cfg;

	peer_cfg = charon->backends->get_peer_cfg_by_name(charon->backends, conn);
	if (peer_cfg)
	{
		charon->controller->initiate(charon->controller, peer_cfg, NULL,
									 NULL, NULL, 0, 0, FALSE);
	}
	else
	{
		DBG1(DBG_CFG, "gikev2: connection '%s' to register again not found",
			 conn);
	}
	return JOB_REQUEUE_NONE;
}

/**
 * Free selectors collected by delete_sa(), without kernel changes
 */
static void orphan_destroy(drop_policy_t *orphan)
{
	orphan->src_ts->destroy(orphan->src_ts);
	orphan->dst_ts->destroy(orphan->dst_ts);
	free(orphan);
}

/**
 * Log the policies whose last SA a drain deleted without installing a
 * successor: what their traffic does now depends on fail_mode
 */
static void report_orphans(membership_t *m, linked_list_t *orphans)
{
	enumerator_t *enumerator;
	drop_policy_t *orphan;
	installed_sa_t *sa;
	bool used;

	while (orphans->remove_first(orphans, (void**)&orphan) == SUCCESS)
	{
		used = FALSE;
		enumerator = m->sas->create_enumerator(m->sas);
		while (!used && enumerator->enumerate(enumerator, &sa))
		{
			used = drop_matches(orphan, sa);
		}
		enumerator->destroy(enumerator);
		if (!used)
		{
			DBG1(DBG_KNL, "gikev2: no SA left for %R === %R of membership "
				 "'%s', its traffic is %s (fail_mode %s)", orphan->src_ts,
				 orphan->dst_ts, m->name, m->fail_closed ? "dropped"
				 : "passed in the clear", m->fail_closed ? "closed" : "open");
		}
		orphan_destroy(orphan);
	}
}

/**
 * Why a membership registers again, for the log
 */
static const char *reregister_reason(gikev2_reregister_reason_t reason)
{
	switch (reason)
	{
		case GIKEV2_REREGISTER_LOST_REKEY:
			return "a GSA_REKEY was lost";
		case GIKEV2_REREGISTER_EXPIRING:
			return "its SAs expire with no replacement";
		case GIKEV2_REREGISTER_NO_SENDER_ID:
			return "a sender without Sender-ID";
		case GIKEV2_REREGISTER_SENDER_ID_TOO_WIDE:
			return "a Sender-ID too wide";
		case GIKEV2_REREGISTER_EXCLUDED:
			return "excluded or the group SA deleted";
		case GIKEV2_REREGISTER_RETRY:
			return "retrying a failed registration";
		case GIKEV2_REREGISTER_IKE_SA_LOST:
			return "its IKE_SA for inband rekeys went down";
		default:
			return "unknown reason";
	}
}

/**
 * Perform the queued actions of a membership's core and re-arm its timer
 */
static void drain(membership_t *m)
{
	gikev2_gm_action_t action;
	uint8_t encr[GIKEV2_MAX_KEY_LEN], integ[GIKEV2_MAX_KEY_LEN];
	size_t encr_len, integ_len;
	uint64_t deadline;
	bool has, installed = FALSE;
	linked_list_t *orphans = linked_list_create();

	m->mutex->lock(m->mutex);
	while (TRUE)
	{
		encr_len = sizeof(encr);
		integ_len = sizeof(integ);
		if (gikev2_gm_poll_action(m->gm, &action, encr, &encr_len, integ,
								  &integ_len) != GIKEV2_OK)
		{
			DBG1(DBG_IKE, "gikev2: polling GM actions failed: %s",
				 gikev2_last_error());
			break;
		}
		if (action.kind == GIKEV2_GM_ACTION_NONE)
		{
			break;
		}
		if (m->dead)
		{	/* removed: its SAs and sockets are gone, install nothing */
			action.kind = GIKEV2_GM_ACTION_NONE;
		}
		switch (action.kind)
		{
			case GIKEV2_GM_ACTION_INSTALL:
				install(m, &action, chunk_create(encr, encr_len),
						chunk_create(integ, integ_len));
				installed = TRUE;
				break;
			case GIKEV2_GM_ACTION_DELETE:
				delete_sa(m, &action, orphans);
				break;
			case GIKEV2_GM_ACTION_LISTEN_REKEY:
				listen_rekey(m, &action);
				break;
			case GIKEV2_GM_ACTION_STOP_REKEY:
				stop_rekey(m, &action);
				break;
			case GIKEV2_GM_ACTION_REREGISTER:
				DBG1(DBG_IKE, "gikev2: membership '%s' registers again "
					 "(%s)", m->name, reregister_reason(action.reason));
				lib->processor->queue_job(lib->processor, (job_t*)
						callback_job_create((callback_job_cb_t)reregister_job,
											strdup(m->conn), free, NULL));
				break;
			default:
				break;
		}
		memwipe(encr, sizeof(encr));
		memwipe(integ, sizeof(integ));
	}
	if (installed)
	{
		prune_drops(m);
	}
	report_orphans(m, orphans);
	orphans->destroy(orphans);
	if (!m->dead && m->timer &&
		gikev2_gm_poll_timeout(m->gm, &has, &deadline) == GIKEV2_OK && has)
	{
		gikev2_timer_arm(m->timer, deadline);
	}
	m->mutex->unlock(m->mutex);
}

/**
 * Perform the queued actions of a membership (job)
 */
static job_requeue_t drain_job(membership_t *m)
{
	drain(m);
	return JOB_REQUEUE_NONE;
}

/**
 * Timer callback of a membership
 */
static void timeout(membership_t *m)
{
	m->mutex->lock(m->mutex);
	if (!m->dead)
	{
		if (gikev2_gm_handle_timeout(m->gm, gikev2_now_ms()) != GIKEV2_OK)
		{
			DBG1(DBG_IKE, "gikev2: GM timeout failed: %s",
				 gikev2_last_error());
		}
		drain(m);
	}
	m->mutex->unlock(m->mutex);
}

/**
 * Queue a job performing the actions of a membership
 */
static void queue_drain(membership_t *m)
{
	lib->processor->queue_job(lib->processor, (job_t*)
				callback_job_create((callback_job_cb_t)drain_job,
									membership_get(m),
									(callback_job_cleanup_t)membership_put,
									NULL));
}

/**
 * Add the registration payloads to a GSA_AUTH request
 */
static void add_registration(membership_t *m, message_t *message)
{
	uint8_t buf[4096];
	size_t len = sizeof(buf);

	if (gikev2_gm_registration_payloads(m->gm, buf, &len) != GIKEV2_OK)
	{
		DBG1(DBG_IKE, "gikev2: building registration payloads failed: %s",
			 gikev2_last_error());
		return;
	}
	gikev2_records_to_message(message, chunk_create(buf, len));
	DBG1(DBG_IKE, "gikev2: membership '%s' registers in GSA_AUTH", m->name);
}

/**
 * GSA_INBAND_REKEY responder task
 */
typedef struct {

	/**
	 * Implements task_t
	 */
	task_t task;

	/**
	 * Membership
	 */
	membership_t *m;

	/**
	 * IKE_SA the task runs on
	 */
	ike_sa_t *ike_sa;

} inband_task_t;

METHOD(task_t, inband_process_r, status_t,
	inband_task_t *this, message_t *message)
{
	membership_t *m = this->m;
	chunk_t records, sk_d = chunk_empty;
	uint16_t prf = 0, kwa = 0;
	gikev2_error_t err;

	gikev2_ike_algorithms(this->ike_sa, &prf, &kwa);
	m->mutex->lock(m->mutex);
	if (m->ike_id == this->ike_sa->get_unique_id(this->ike_sa))
	{	/* the SK_d in force: after a PPK, after the IKE_SA was rekeyed */
		sk_d = gikev2_sk_d(this->ike_sa);
	}
	m->mutex->unlock(m->mutex);
	if (!sk_d.len)
	{
		DBG1(DBG_IKE, "gikev2: GSA_INBAND_REKEY on IKE_SA %s[%u], which did "
			 "not register membership '%s', ignored",
			 this->ike_sa->get_name(this->ike_sa),
			 this->ike_sa->get_unique_id(this->ike_sa), m->name);
		return NEED_MORE;
	}
	records = gikev2_records_from_message(message, FALSE);
	err = gikev2_gm_inband_rekey(m->gm, gikev2_now_ms(), records.ptr,
								 records.len, sk_d.ptr, sk_d.len, prf, kwa);
	if (err == GIKEV2_OK)
	{
		DBG1(DBG_IKE, "gikev2: membership '%s' processed GSA_INBAND_REKEY",
			 m->name);
	}
	else
	{
		DBG1(DBG_IKE, "gikev2: membership '%s' dropped GSA_INBAND_REKEY: %s",
			 m->name, gikev2_last_error());
	}
	chunk_free(&records);
	chunk_clear(&sk_d);
	drain(m);
	return NEED_MORE;
}

METHOD(task_t, inband_build_r, status_t,
	inband_task_t *this, message_t *message)
{
	return SUCCESS;
}

METHOD(task_t, inband_get_type, task_type_t,
	inband_task_t *this)
{
	return TASK_PLUGIN_EXCHANGE;
}

METHOD(task_t, inband_migrate, void,
	inband_task_t *this, ike_sa_t *ike_sa)
{
	this->ike_sa = ike_sa;
}

METHOD(task_t, inband_destroy, void,
	inband_task_t *this)
{
	membership_put(this->m);
	free(this);
}

/**
 * Create a GSA_INBAND_REKEY responder task (exchange_constructor_t)
 */
static task_t *inband_responder(private_gikev2_gm_listener_t *this,
								ike_sa_t *ike_sa, message_t *request)
{
	inband_task_t *task;
	membership_t *m;

	m = find(this, ike_sa);
	if (!m)
	{
		return NULL;
	}
	INIT(task,
		.task = {
			.build = _inband_build_r,
			.process = _inband_process_r,
			.get_type = _inband_get_type,
			.migrate = _inband_migrate,
			.destroy = _inband_destroy,
		},
		.m = m,
		.ike_sa = ike_sa,
	);
	/* the reference from find() */
	return &task->task;
}

/**
 * GSA_REGISTRATION initiator task: a further membership of a connection
 * registers on the IKE_SA that registered the first with GSA_AUTH
 */
typedef struct {

	/**
	 * Implements task_t
	 */
	task_t task;

	/**
	 * Membership
	 */
	membership_t *m;

	/**
	 * IKE_SA the task runs on
	 */
	ike_sa_t *ike_sa;

} registration_task_t;

static void queue_leave(membership_t *m, ike_sa_t *ike_sa,
						notify_type_t why);

METHOD(task_t, registration_build_i, status_t,
	registration_task_t *this, message_t *message)
{
	uint8_t buf[4096];
	size_t len = sizeof(buf);

	message->set_exchange_type(message, GSA_REGISTRATION);
	if (gikev2_gm_registration_payloads(this->m->gm, buf, &len) != GIKEV2_OK)
	{
		DBG1(DBG_IKE, "gikev2: building registration payloads failed: %s",
			 gikev2_last_error());
		return FAILED;
	}
	gikev2_records_to_message(message, chunk_create(buf, len));
	DBG1(DBG_IKE, "gikev2: membership '%s' registers in GSA_REGISTRATION on "
		 "IKE_SA %s[%u]", this->m->name, this->ike_sa->get_name(this->ike_sa),
		 this->ike_sa->get_unique_id(this->ike_sa));
	return NEED_MORE;
}

/**
 * Hand a GSA_AUTH or GSA_REGISTRATION response to the core and log the
 * outcome; a policy the membership cannot accept is reported back to the
 * GCKS (RFC 9838, Figure 8). TRUE if the membership is registered.
 */
static bool process_response(membership_t *m, ike_sa_t *ike_sa,
							 exchange_type_t exchange, chunk_t response,
							 chunk_t sk_d)
{
	uint16_t prf = 0, kwa = 0, refused = 0;
	gikev2_endpoint_t local;

	gikev2_ike_algorithms(ike_sa, &prf, &kwa);
	/* which per-sender SA is ours to send on: the one naming our address */
	local = gikev2_endpoint_from_host(ike_sa->get_my_host(ike_sa));
	gikev2_gm_set_local_address(m->gm, &local);
	switch (gikev2_gm_registration_response(m->gm, gikev2_now_ms(), exchange,
											response.ptr, response.len,
											sk_d.ptr, sk_d.len, prf, kwa,
											&refused))
	{
		case GIKEV2_OK:
			DBG1(DBG_IKE, "gikev2: membership '%s' registered on IKE_SA "
				 "%s[%u] with %N", m->name, ike_sa->get_name(ike_sa),
				 ike_sa->get_unique_id(ike_sa), exchange_type_names, exchange);
			return TRUE;
		case GIKEV2_ERR_REFUSED:
			DBG1(DBG_IKE, "gikev2: GCKS refused membership '%s' with %N",
				 m->name, notify_type_names, refused);
			return FALSE;
		case GIKEV2_ERR_UNACCEPTABLE:
			DBG1(DBG_IKE, "gikev2: membership '%s' cannot accept the group's "
				 "policy: %s", m->name, gikev2_last_error());
			queue_leave(m, ike_sa, NO_PROPOSAL_CHOSEN);
			return FALSE;
		default:
			DBG1(DBG_IKE, "gikev2: %N response for membership '%s' "
				 "unusable: %s", exchange_type_names, exchange, m->name,
				 gikev2_last_error());
			return FALSE;
	}
}

METHOD(task_t, registration_process_i, status_t,
	registration_task_t *this, message_t *message)
{
	membership_t *m = this->m;
	chunk_t records, sk_d = chunk_empty;

	m->mutex->lock(m->mutex);
	if (m->ike_id == this->ike_sa->get_unique_id(this->ike_sa))
	{
		sk_d = gikev2_sk_d(this->ike_sa);
	}
	m->mutex->unlock(m->mutex);
	records = gikev2_records_from_message(message, FALSE);
	process_response(m, this->ike_sa, GSA_REGISTRATION, records, sk_d);
	chunk_free(&records);
	chunk_clear(&sk_d);
	/* install outside of the task, which holds the IKE_SA */
	queue_drain(m);
	return SUCCESS;
}

METHOD(task_t, registration_get_type, task_type_t,
	registration_task_t *this)
{
	return TASK_PLUGIN_EXCHANGE;
}

METHOD(task_t, registration_migrate, void,
	registration_task_t *this, ike_sa_t *ike_sa)
{
	this->ike_sa = ike_sa;
}

METHOD(task_t, registration_destroy, void,
	registration_task_t *this)
{
	membership_put(this->m);
	free(this);
}

/**
 * Queue a GSA_REGISTRATION of a membership on an IKE_SA and initiate it
 */
static void queue_registration(membership_t *m, ike_sa_t *ike_sa)
{
	registration_task_t *task;

	INIT(task,
		.task = {
			.build = _registration_build_i,
			.process = _registration_process_i,
			.get_type = _registration_get_type,
			.migrate = _registration_migrate,
			.destroy = _registration_destroy,
		},
		.m = membership_get(m),
		.ike_sa = ike_sa,
	);
	ike_sa->queue_task(ike_sa, &task->task);
	lib->processor->queue_job(lib->processor, (job_t*)
					initiate_tasks_job_create(ike_sa->get_id(ike_sa)));
}

/**
 * Queue GSA_REGISTRATION for the further memberships of an IKE_SA's
 * connection (the first registered with GSA_AUTH)
 */
static void register_others(private_gikev2_gm_listener_t *this,
							ike_sa_t *ike_sa, membership_t *first)
{
	enumerator_t *enumerator;
	membership_t *m;
	u_int id = ike_sa->get_unique_id(ike_sa);
	host_t *me = ike_sa->get_my_host(ike_sa);

	this->lock->read_lock(this->lock);
	enumerator = this->memberships->create_enumerator(this->memberships);
	while (enumerator->enumerate(enumerator, &m))
	{
		if (m == first || !streq(m->conn, first->conn))
		{
			continue;
		}
		m->mutex->lock(m->mutex);
		m->ike_id = id;
		DESTROY_IF(m->local);
		m->local = me->clone(me);
		m->mutex->unlock(m->mutex);
		queue_registration(m, ike_sa);
	}
	enumerator->destroy(enumerator);
	this->lock->unlock(this->lock);
}

/**
 * GSA_REGISTRATION initiator task of a membership leaving its group (RFC
 * 9838, Figure 8: IDg and N(REGISTRATION_FAILED) for a removed membership,
 * N(NO_PROPOSAL_CHOSEN) for a policy it cannot accept)
 */
typedef struct {

	/**
	 * Implements task_t
	 */
	task_t task;

	/**
	 * Membership
	 */
	membership_t *m;

	/**
	 * IKE_SA the task runs on
	 */
	ike_sa_t *ike_sa;

	/**
	 * Why it leaves: REGISTRATION_FAILED or NO_PROPOSAL_CHOSEN
	 */
	notify_type_t why;

} leave_task_t;

METHOD(task_t, leave_build_i, status_t,
	leave_task_t *this, message_t *message)
{
	uint8_t buf[1024];
	size_t len = sizeof(buf);

	message->set_exchange_type(message, GSA_REGISTRATION);
	if (gikev2_gm_leave_payloads(this->m->gm, this->why, buf,
								 &len) != GIKEV2_OK)
	{
		DBG1(DBG_IKE, "gikev2: building leave payloads failed: %s",
			 gikev2_last_error());
		return FAILED;
	}
	gikev2_records_to_message(message, chunk_create(buf, len));
	DBG1(DBG_IKE, "gikev2: %smembership '%s' leaves group '%s' with %N in "
		 "GSA_REGISTRATION on IKE_SA %s[%u]",
		 this->why == REGISTRATION_FAILED ? "removed " : "",
		 this->m->name, this->m->group ?: "", notify_type_names, this->why,
		 this->ike_sa->get_name(this->ike_sa),
		 this->ike_sa->get_unique_id(this->ike_sa));
	return NEED_MORE;
}

METHOD(task_t, leave_process_i, status_t,
	leave_task_t *this, message_t *message)
{
	chunk_t records;
	uint16_t error;

	records = gikev2_records_from_message(message, FALSE);
	error = gikev2_records_error(records);
	chunk_free(&records);
	if (error)
	{
		DBG1(DBG_IKE, "gikev2: GCKS answered the leave of membership '%s' "
			 "with %N", this->m->name, notify_type_names, error);
	}
	else
	{
		DBG1(DBG_IKE, "gikev2: membership '%s' left group '%s'",
			 this->m->name, this->m->group ?: "");
	}
	if (this->why == REGISTRATION_FAILED)
	{	/* a removed membership is done; one that refused a policy may
		 * register again */
		this->m->mutex->lock(this->m->mutex);
		this->m->left = TRUE;
		this->m->mutex->unlock(this->m->mutex);
	}
	return SUCCESS;
}

METHOD(task_t, leave_get_type, task_type_t,
	leave_task_t *this)
{
	return TASK_PLUGIN_EXCHANGE;
}

METHOD(task_t, leave_migrate, void,
	leave_task_t *this, ike_sa_t *ike_sa)
{
	this->ike_sa = ike_sa;
}

METHOD(task_t, leave_destroy, void,
	leave_task_t *this)
{
	membership_put(this->m);
	free(this);
}

/**
 * Queue the leave of a membership on an IKE_SA and initiate it
 */
static void queue_leave(membership_t *m, ike_sa_t *ike_sa,
						notify_type_t why)
{
	leave_task_t *task;

	INIT(task,
		.task = {
			.build = _leave_build_i,
			.process = _leave_process_i,
			.get_type = _leave_get_type,
			.migrate = _leave_migrate,
			.destroy = _leave_destroy,
		},
		.m = membership_get(m),
		.ike_sa = ike_sa,
		.why = why,
	);
	ike_sa->queue_task(ike_sa, &task->task);
	lib->processor->queue_job(lib->processor, (job_t*)
					initiate_tasks_job_create(ike_sa->get_id(ike_sa)));
}

/**
 * Queue the leaves of the removed memberships of an IKE_SA's connection
 */
static void queue_leaves(private_gikev2_gm_listener_t *this,
						 ike_sa_t *ike_sa)
{
	enumerator_t *enumerator;
	membership_t *m;
	peer_cfg_t *peer_cfg;
	bool queue;

	peer_cfg = ike_sa->get_peer_cfg(ike_sa);
	if (!peer_cfg)
	{
		return;
	}
	this->lock->read_lock(this->lock);
	enumerator = this->leaving->create_enumerator(this->leaving);
	while (enumerator->enumerate(enumerator, &m))
	{
		if (!streq(m->conn, peer_cfg->get_name(peer_cfg)))
		{
			continue;
		}
		m->mutex->lock(m->mutex);
		queue = !m->leave_queued && !m->left;
		m->leave_queued = TRUE;
		m->mutex->unlock(m->mutex);
		if (queue)
		{
			queue_leave(m, ike_sa, REGISTRATION_FAILED);
		}
	}
	enumerator->destroy(enumerator);
	this->lock->unlock(this->lock);
}

/**
 * Remember an IKE_SA initiated to register, until it is destroyed
 */
static void track_ike_sa(private_gikev2_gm_listener_t *this, ike_sa_t *ike_sa)
{
	gikev2_ike_sa_t *entry;
	host_t *gcks = ike_sa->get_other_host(ike_sa);

	INIT(entry,
		.id = ike_sa->get_unique_id(ike_sa),
		.gcks = gcks->clone(gcks),
	);
	this->ike_sas_lock->lock(this->ike_sas_lock);
	this->ike_sas->insert_last(this->ike_sas, entry);
	this->ike_sas_lock->unlock(this->ike_sas_lock);
}

/**
 * Free a tracked IKE_SA
 */
static void ike_sa_entry_destroy(gikev2_ike_sa_t *entry)
{
	entry->gcks->destroy(entry->gcks);
	free(entry);
}

/**
 * Forget a destroyed IKE_SA, TRUE if it was ours and never came up
 */
static bool untrack_ike_sa(private_gikev2_gm_listener_t *this, u_int id)
{
	enumerator_t *enumerator;
	gikev2_ike_sa_t *entry;
	bool failed = FALSE;

	this->ike_sas_lock->lock(this->ike_sas_lock);
	enumerator = this->ike_sas->create_enumerator(this->ike_sas);
	while (enumerator->enumerate(enumerator, &entry))
	{
		if (entry->id == id)
		{
			failed = !entry->up;
			this->ike_sas->remove_at(this->ike_sas, enumerator);
			ike_sa_entry_destroy(entry);
		}
	}
	enumerator->destroy(enumerator);
	this->ike_sas_lock->unlock(this->ike_sas_lock);
	return failed;
}

/**
 * Note that a tracked IKE_SA came up
 */
static void ike_sa_up(private_gikev2_gm_listener_t *this, u_int id)
{
	enumerator_t *enumerator;
	gikev2_ike_sa_t *entry;

	this->ike_sas_lock->lock(this->ike_sas_lock);
	enumerator = this->ike_sas->create_enumerator(this->ike_sas);
	while (enumerator->enumerate(enumerator, &entry))
	{
		if (entry->id == id)
		{
			entry->up = TRUE;
		}
	}
	enumerator->destroy(enumerator);
	this->ike_sas_lock->unlock(this->ike_sas_lock);
}

/**
 * A registration failed: the core retries after a backoff
 */
static void registration_failed(membership_t *m)
{
	uint64_t wait = 0;
	uint32_t failures = 0;
	bool ok;

	m->mutex->lock(m->mutex);
	ok = !m->dead && gikev2_gm_registration_failed(m->gm, gikev2_now_ms(),
											&wait, &failures) == GIKEV2_OK;
	m->mutex->unlock(m->mutex);
	if (ok)
	{
		DBG1(DBG_IKE, "gikev2: membership '%s' could not register (%u "
			 "failed attempt%s in a row), trying again in %llus", m->name,
			 failures, failures == 1 ? "" : "s",
			 (unsigned long long)(wait + 500) / 1000);
		queue_drain(m);
	}
}

/**
 * Drop INITIAL_CONTACT from a GSA_AUTH request while another of our
 * registering IKE_SAs to the same GCKS exists. charon adds it when no
 * IKE_SA with the GCKS is established yet, so memberships registering in
 * parallel on separate connections would each send it, and the GCKS would
 * destroy the IKE_SA that came up first, with its inband membership.
 */
static void strip_initial_contact(private_gikev2_gm_listener_t *this,
								  ike_sa_t *ike_sa, message_t *message)
{
	enumerator_t *enumerator;
	gikev2_ike_sa_t *entry;
	payload_t *payload;
	notify_payload_t *notify;
	host_t *gcks = ike_sa->get_other_host(ike_sa);
	u_int other = 0;

	this->ike_sas_lock->lock(this->ike_sas_lock);
	enumerator = this->ike_sas->create_enumerator(this->ike_sas);
	while (enumerator->enumerate(enumerator, &entry))
	{
		if (entry->id != ike_sa->get_unique_id(ike_sa) &&
			entry->gcks->ip_equals(entry->gcks, gcks))
		{
			other = entry->id;
			break;
		}
	}
	enumerator->destroy(enumerator);
	this->ike_sas_lock->unlock(this->ike_sas_lock);
	if (!other)
	{
		return;
	}
	enumerator = message->create_payload_enumerator(message);
	while (enumerator->enumerate(enumerator, &payload))
	{
		if (payload->get_type(payload) != PLV2_NOTIFY)
		{
			continue;
		}
		notify = (notify_payload_t*)payload;
		if (notify->get_notify_type(notify) == INITIAL_CONTACT)
		{
			message->remove_payload_at(message, enumerator);
			payload->destroy(payload);
			DBG2(DBG_IKE, "gikev2: no INITIAL_CONTACT in GSA_AUTH, IKE_SA "
				 "[%u] with %H registers too", other, gcks);
		}
	}
	enumerator->destroy(enumerator);
}

METHOD(listener_t, message_hook, bool,
	private_gikev2_gm_listener_t *this, ike_sa_t *ike_sa,
	message_t *message, bool incoming, bool plain)
{
	membership_t *m;
	chunk_t records;
	uint16_t error;

	if (!plain || message->get_major_version(message) != IKEV2_MAJOR_VERSION ||
		!ike_sa->has_condition(ike_sa, COND_ORIGINAL_INITIATOR))
	{
		return TRUE;
	}
	m = find(this, ike_sa);
	if (!m)
	{
		return TRUE;
	}
	if (!incoming && message->get_request(message) &&
		message->get_exchange_type(message) == IKE_SA_INIT)
	{
		ike_sa->enable_extension(ike_sa, EXT_GIKEV2);
		/* IKE_SA_INIT again after a cookie or INVALID_KE_PAYLOAD */
		untrack_ike_sa(this, ike_sa->get_unique_id(ike_sa));
		track_ike_sa(this, ike_sa);
		DBG1(DBG_IKE, "gikev2: IKE_SA %s[%u] registers membership '%s', "
			 "IKE_AUTH will be GSA_AUTH", ike_sa->get_name(ike_sa),
			 ike_sa->get_unique_id(ike_sa), m->name);
	}
	else if (!incoming && message->get_request(message) &&
			 message->get_wire_exchange_type(message) == GSA_AUTH &&
			 message->get_payload(message, PLV2_ID_INITIATOR))
	{
		strip_initial_contact(this, ike_sa, message);
		add_registration(m, message);
	}
	else if (incoming && !message->get_request(message) &&
			 message->get_wire_exchange_type(message) == GSA_AUTH)
	{
		records = gikev2_records_from_message(message, FALSE);
		error = gikev2_records_error(records);
		if (error)
		{
			DBG1(DBG_IKE, "gikev2: GCKS refused membership '%s' with %N, "
				 "nothing installed", m->name, notify_type_names, error);
			chunk_free(&records);
		}
		m->mutex->lock(m->mutex);
		chunk_free(&m->response);
		m->response = records;
		m->refused = error;
		m->ike_id = ike_sa->get_unique_id(ike_sa);
		m->mutex->unlock(m->mutex);
	}
	membership_put(m);
	return TRUE;
}

METHOD(listener_t, ike_derived_keys, bool,
	private_gikev2_gm_listener_t *this, ike_sa_t *ike_sa, chunk_t sk_d,
	chunk_t sk_ai, chunk_t sk_ar, chunk_t sk_ei, chunk_t sk_er, chunk_t sk_pi,
	chunk_t sk_pr)
{
	enumerator_t *enumerator;
	membership_t *m;
	peer_cfg_t *peer_cfg;

	if (!ike_sa->has_condition(ike_sa, COND_ORIGINAL_INITIATOR))
	{
		return TRUE;
	}
	peer_cfg = ike_sa->get_peer_cfg(ike_sa);
	if (!peer_cfg)
	{
		return TRUE;
	}
	this->lock->read_lock(this->lock);
	enumerator = this->memberships->create_enumerator(this->memberships);
	while (enumerator->enumerate(enumerator, &m))
	{	/* every membership of the connection may register on it */
		if (streq(m->conn, peer_cfg->get_name(peer_cfg)))
		{
			m->mutex->lock(m->mutex);
			chunk_clear(&m->sk_d);
			m->sk_d = chunk_clone(sk_d);
			m->mutex->unlock(m->mutex);
		}
	}
	enumerator->destroy(enumerator);
	this->lock->unlock(this->lock);
	return TRUE;
}

METHOD(listener_t, ike_rekey, bool,
	private_gikev2_gm_listener_t *this, ike_sa_t *old, ike_sa_t *new)
{
	enumerator_t *enumerator;
	membership_t *m;
	u_int old_id = old->get_unique_id(old), new_id = new->get_unique_id(new);
	chunk_t sk_d;

	if (!old->has_condition(old, COND_ORIGINAL_INITIATOR))
	{
		return TRUE;
	}
	/* memberships registered on it go on with the new IKE_SA: inband
	 * rekeys come over it, under its own GSK_w (RFC 9838 3.1.1) */
	sk_d = gikev2_sk_d(new);
	this->lock->read_lock(this->lock);
	enumerator = this->memberships->create_enumerator(this->memberships);
	while (enumerator->enumerate(enumerator, &m))
	{
		m->mutex->lock(m->mutex);
		if (m->ike_id == old_id)
		{
			m->ike_id = new_id;
			chunk_clear(&m->sk_d);
			m->sk_d = chunk_clone(sk_d);
			DBG1(DBG_IKE, "gikev2: membership '%s' moves to IKE_SA %s[%u], "
				 "which replaces [%u]", m->name, new->get_name(new), new_id,
				 old_id);
		}
		m->mutex->unlock(m->mutex);
	}
	enumerator->destroy(enumerator);
	this->lock->unlock(this->lock);
	chunk_clear(&sk_d);
	return TRUE;
}

METHOD(listener_t, ike_updown, bool,
	private_gikev2_gm_listener_t *this, ike_sa_t *ike_sa, bool up)
{
	enumerator_t *enumerator;
	membership_t *m;
	chunk_t response, sk_d;
	bool again;

	if (!ike_sa->has_condition(ike_sa, COND_ORIGINAL_INITIATOR))
	{
		return TRUE;
	}
	m = find(this, ike_sa);
	if (!m)
	{
		return TRUE;
	}
	if (up)
	{
		ike_sa_up(this, ike_sa->get_unique_id(ike_sa));
	}
	else
	{	/* multicast members keep their SAs, but SK_d is gone */
		membership_put(m);
		this->lock->read_lock(this->lock);
		enumerator = this->memberships->create_enumerator(this->memberships);
		while (enumerator->enumerate(enumerator, &m))
		{
			again = FALSE;
			m->mutex->lock(m->mutex);
			if (m->ike_id == ike_sa->get_unique_id(ike_sa))
			{
				chunk_clear(&m->sk_d);
				m->ike_id = 0;
				if (!m->dead)
				{
					gikev2_gm_ike_sa_down(m->gm, gikev2_now_ms(), &again);
				}
			}
			m->mutex->unlock(m->mutex);
			if (again)
			{
				DBG1(DBG_IKE, "gikev2: membership '%s' lost IKE_SA %s[%u], "
					 "which its inband rekeys come over, registering again",
					 m->name, ike_sa->get_name(ike_sa),
					 ike_sa->get_unique_id(ike_sa));
				queue_drain(m);
			}
		}
		enumerator->destroy(enumerator);
		this->lock->unlock(this->lock);
		return TRUE;
	}
	m->mutex->lock(m->mutex);
	if (m->dead)
	{	/* registered only to leave: nothing to install */
		chunk_free(&m->response);
		m->refused = 0;
		m->mutex->unlock(m->mutex);
		queue_leaves(this, ike_sa);
		membership_put(m);
		return TRUE;
	}
	if (m->ike_id == ike_sa->get_unique_id(ike_sa) && m->refused)
	{
		m->refused = 0;
		m->mutex->unlock(m->mutex);
		DBG1(DBG_IKE, "gikev2: closing IKE_SA %s[%u] of refused membership "
			 "'%s'", ike_sa->get_name(ike_sa), ike_sa->get_unique_id(ike_sa),
			 m->name);
		gikev2_close_ike_sa(ike_sa->get_unique_id(ike_sa), 0);
		registration_failed(m);
		membership_put(m);
		return TRUE;
	}
	if (m->ike_id != ike_sa->get_unique_id(ike_sa) || !m->response.len)
	{
		m->mutex->unlock(m->mutex);
		DBG1(DBG_IKE, "gikev2: IKE_SA %s[%u] up without GSA_AUTH response "
			 "for membership '%s'", ike_sa->get_name(ike_sa),
			 ike_sa->get_unique_id(ike_sa), m->name);
		queue_leaves(this, ike_sa);
		membership_put(m);
		return TRUE;
	}
	response = m->response;
	m->response = chunk_empty;
	/* the SK_d in force: a PPK replaced it during GSA_AUTH (RFC 8784) */
	sk_d = gikev2_sk_d(ike_sa);
	DESTROY_IF(m->local);
	m->local = ike_sa->get_my_host(ike_sa)->clone(ike_sa->get_my_host(ike_sa));
	m->mutex->unlock(m->mutex);

	if (process_response(m, ike_sa, GSA_AUTH, response, sk_d))
	{
		register_others(this, ike_sa, m);
	}
	chunk_free(&response);
	chunk_clear(&sk_d);
	/* install outside of the listener, which holds the IKE_SA: further
	 * memberships' GSA_REGISTRATION must reach the GCKS before it closes
	 * the IKE_SA */
	queue_drain(m);
	queue_leaves(this, ike_sa);
	membership_put(m);
	return TRUE;
}

METHOD(listener_t, ike_state_change, bool,
	private_gikev2_gm_listener_t *this, ike_sa_t *ike_sa,
	ike_sa_state_t state)
{
	membership_t *m;

	if (state == IKE_DESTROYING &&
		untrack_ike_sa(this, ike_sa->get_unique_id(ike_sa)))
	{	/* initiated to register, never came up */
		m = find(this, ike_sa);
		if (m)
		{
			registration_failed(m);
			membership_put(m);
		}
	}
	return TRUE;
}

/**
 * Stop a membership: remove its SAs and policies from the kernel, close
 * its sockets and stop its timer; jobs and tasks still referencing it do
 * nothing more. Never with the membership locked or from its callbacks.
 */
static void membership_shutdown(membership_t *m)
{
	linked_list_t *sockets, *sas, *drops;
	gikev2_timer_t *timer;

	m->mutex->lock(m->mutex);
	m->dead = TRUE;
	timer = m->timer;
	m->timer = NULL;
	sockets = m->sockets;
	m->sockets = linked_list_create();
	sas = m->sas;
	m->sas = linked_list_create();
	drops = m->drops;
	m->drops = linked_list_create();
	m->mutex->unlock(m->mutex);

	if (timer)
	{
		gikev2_timer_destroy(timer);
	}
	/* waits for a running watcher callback of each */
	sockets->destroy_function(sockets, (void*)socket_destroy);
	sas->destroy_function(sas, (void*)uninstall);
	drops->destroy_function(drops, (void*)drop_destroy);
}

/**
 * Free a membership once the last reference is gone
 */
static void membership_free(membership_t *m)
{
	membership_shutdown(m);
	m->sockets->destroy(m->sockets);
	m->sas->destroy(m->sas);
	m->drops->destroy(m->drops);
	gikev2_gm_destroy(m->gm);
	DESTROY_IF(m->local);
	chunk_clear(&m->sk_d);
	chunk_free(&m->response);
	chunk_free(&m->last_rekey);
	m->mutex->destroy(m->mutex);
	gikev2_settings_free(m->keys, m->values, m->count);
	free(m->group);
	free(m->name);
	free(m->conn);
	free(m);
}



/**
 * Data of the status enumerator
 */
typedef struct {

	/**
	 * Status text of the current membership
	 */
	char *text;

} status_data_t;

/**
 * Destroy status enumerator data
 */
static void status_data_destroy(status_data_t *data)
{
	free(data->text);
	free(data);
}

/**
 * Get the core's status text of a membership, NULL on failure
 */
static char *membership_status(membership_t *m)
{
	gikev2_error_t err;
	char *text;
	size_t len = 2048;

	text = malloc(len);
	err = gikev2_gm_status(m->gm, gikev2_now_ms(), text, &len);
	if (err == GIKEV2_ERR_BUFFER_TOO_SMALL)
	{
		len += 1024;
		text = realloc(text, len);
		err = gikev2_gm_status(m->gm, gikev2_now_ms(), text, &len);
	}
	if (err != GIKEV2_OK)
	{
		DBG1(DBG_CFG, "gikev2: status of membership '%s' failed: %s",
			 m->name, gikev2_last_error());
		free(text);
		return NULL;
	}
	return text;
}

CALLBACK(status_filter, bool,
	status_data_t *data, enumerator_t *orig, va_list args)
{
	membership_t *m;
	char **name, **conn, **text;

	VA_ARGS_VGET(args, name, conn, text);
	while (orig->enumerate(orig, &m))
	{
		free(data->text);
		data->text = membership_status(m);
		if (data->text)
		{
			*name = m->name;
			*conn = m->conn;
			*text = data->text;
			return TRUE;
		}
	}
	return FALSE;
}

METHOD(gikev2_gm_listener_t, create_status_enumerator, enumerator_t*,
	private_gikev2_gm_listener_t *this)
{
	status_data_t *data;

	INIT(data);
	this->lock->read_lock(this->lock);
	return enumerator_create_cleaner(enumerator_create_filter(
						this->memberships->create_enumerator(this->memberships),
						status_filter, data, (void*)status_data_destroy),
						(void*)this->lock->unlock, this->lock);
}

METHOD(gikev2_gm_listener_t, register_membership, char*,
	private_gikev2_gm_listener_t *this, char *name)
{
	enumerator_t *enumerator;
	membership_t *m, *found = NULL;
	char *id;

	this->lock->read_lock(this->lock);
	enumerator = this->memberships->create_enumerator(this->memberships);
	while (enumerator->enumerate(enumerator, &m))
	{
		id = m->group;
		if (streq(m->name, name) || (!found && id && streq(id, name)))
		{
			found = m;
			if (streq(m->name, name))
			{
				break;
			}
		}
	}
	enumerator->destroy(enumerator);
	if (!found)
	{
		this->lock->unlock(this->lock);
		return NULL;
	}
	lib->processor->queue_job(lib->processor, (job_t*)
						callback_job_create((callback_job_cb_t)reregister_job,
											strdup(found->conn), free, NULL));
	/* kept until the listener goes: a reload may remove the membership */
	free(this->registered);
	this->registered = strdup(found->conn);
	this->lock->unlock(this->lock);
	return this->registered;
}

METHOD(gikev2_gm_listener_t, destroy, void,
	private_gikev2_gm_listener_t *this)
{
	charon->exchanges->remove_exchange(charon->exchanges,
							(exchange_constructor_t)inband_responder, this);
	this->memberships->destroy_function(this->memberships,
										(void*)membership_put);
	this->leaving->destroy_function(this->leaving, (void*)membership_put);
	this->lock->destroy(this->lock);
	this->config->destroy(this->config);
	this->ike_sas->destroy_function(this->ike_sas,
									(void*)ike_sa_entry_destroy);
	this->ike_sas_lock->destroy(this->ike_sas_lock);
	free(this->registered);
	free(this);
}

/**
 * Create a membership from its section, NULL on errors (logged as
 * "section: key: reason")
 */
static membership_t *membership_create(char *name)
{
	membership_t *m;
	char *conn, section[BUF_LEN];
	int i;

	snprintf(section, sizeof(section), "%s.plugins.gikev2.memberships.%s",
			 lib->ns, name);
	conn = lib->settings->get_str(lib->settings,
							"%s.plugins.gikev2.memberships.%s.connection", NULL,
							lib->ns, name);
	if (!conn)
	{
		DBG1(DBG_CFG, "gikev2: %s: connection: missing", section);
		return NULL;
	}
	INIT(m,
		.name = strdup(name),
		.conn = strdup(conn),
		.sas = linked_list_create(),
		.sockets = linked_list_create(),
		.drops = linked_list_create(),
		.mutex = mutex_create(MUTEX_TYPE_RECURSIVE),
		.ref = 1,
	);
	m->count = gikev2_settings_collect(section, "connection", &m->keys,
									   &m->values);
	for (i = 0; i < m->count; i++)
	{
		if (streq(m->keys[i], "id"))
		{
			m->group = strdup(m->values[i]);
		}
	}
	if (gikev2_gm_new((const char *const *)m->keys,
					  (const char *const *)m->values, m->count,
					  &m->gm) != GIKEV2_OK)
	{
		DBG1(DBG_CFG, "gikev2: %s: %s", section, gikev2_last_error());
		membership_put(m);
		return NULL;
	}
	gikev2_gm_fail_closed(m->gm, &m->fail_closed);
	m->timer = gikev2_timer_create((gikev2_timer_cb_t)timeout, m);
	return m;
}

/**
 * Check if two memberships have the same settings, in any order
 */
static bool membership_equals(membership_t *a, membership_t *b)
{
	return streq(a->conn, b->conn) &&
		   gikev2_settings_equal(a->keys, a->values, a->count,
								 b->keys, b->values, b->count);
}

/**
 * Create the configured memberships, FALSE on errors
 */
static bool add_memberships(private_gikev2_gm_listener_t *this, int *count)
{
	enumerator_t *enumerator;
	membership_t *m;
	char *name;
	bool ok = TRUE;

	*count = 0;
	enumerator = lib->settings->create_section_enumerator(lib->settings,
									"%s.plugins.gikev2.memberships", lib->ns);
	while (enumerator->enumerate(enumerator, &name))
	{
		m = membership_create(name);
		if (!m)
		{
			ok = FALSE;
			continue;
		}
		this->memberships->insert_last(this->memberships, m);
		DBG1(DBG_CFG, "gikev2: membership '%s' registers with connection "
			 "'%s'", name, m->conn);
		(*count)++;
	}
	enumerator->destroy(enumerator);
	return ok;
}

/**
 * Find a membership of a group in a list, lock must be held
 */
static bool has_group(linked_list_t *list, char *group)
{
	enumerator_t *enumerator;
	membership_t *m;
	bool found = FALSE;

	enumerator = list->create_enumerator(list);
	while (enumerator->enumerate(enumerator, &m))
	{
		if (m->group && group && streq(m->group, group))
		{
			found = TRUE;
			break;
		}
	}
	enumerator->destroy(enumerator);
	return found;
}

/**
 * Unique ID of an established IKE_SA this charon initiated for a
 * connection, 0 if none
 */
static u_int established(char *conn)
{
	enumerator_t *enumerator;
	ike_sa_t *ike_sa;
	u_int id = 0;

	enumerator = charon->ike_sa_manager->create_enumerator(
												charon->ike_sa_manager, TRUE);
	while (enumerator->enumerate(enumerator, &ike_sa))
	{
		if (ike_sa->get_state(ike_sa) == IKE_ESTABLISHED &&
			ike_sa->has_condition(ike_sa, COND_ORIGINAL_INITIATOR) &&
			streq(ike_sa->get_name(ike_sa), conn))
		{
			id = ike_sa->get_unique_id(ike_sa);
			break;
		}
	}
	enumerator->destroy(enumerator);
	return id;
}

/**
 * Let a removed membership leave its group on an established IKE_SA of
 * its connection, or on one initiated for it (then queue_leaves())
 */
static void leave(membership_t *m)
{
	ike_sa_t *ike_sa = NULL;
	peer_cfg_t *peer_cfg;
	u_int id;

	id = established(m->conn);
	if (id)
	{
		ike_sa = charon->ike_sa_manager->checkout_by_id(
												charon->ike_sa_manager, id);
	}
	if (ike_sa)
	{
		m->mutex->lock(m->mutex);
		m->leave_queued = TRUE;
		m->mutex->unlock(m->mutex);
		queue_leave(m, ike_sa, REGISTRATION_FAILED);
		charon->ike_sa_manager->checkin(charon->ike_sa_manager, ike_sa);
		return;
	}
	peer_cfg = charon->backends->get_peer_cfg_by_name(charon->backends,
													  m->conn);
	if (!peer_cfg)
	{
		DBG1(DBG_CFG, "gikev2: no IKE_SA for removed membership '%s' to leave "
			 "group '%s' (connection '%s' not found), its SAs are removed",
			 m->name, m->group ?: "", m->conn);
		m->mutex->lock(m->mutex);
		m->left = TRUE;
		m->mutex->unlock(m->mutex);
		return;
	}
	DBG1(DBG_CFG, "gikev2: initiating connection '%s' for removed "
		 "membership '%s' to leave group '%s'", m->conn, m->name,
		 m->group ?: "");
	peer_cfg->destroy(peer_cfg);
	lib->processor->queue_job(lib->processor, (job_t*)
						callback_job_create((callback_job_cb_t)reregister_job,
											strdup(m->conn), free, NULL));
}

/**
 * Register a new or changed membership on an established IKE_SA of its
 * connection with GSA_REGISTRATION, if one has SK_d for it; otherwise a
 * changed one initiates its connection
 */
static void register_now(private_gikev2_gm_listener_t *this, membership_t *m,
						 bool changed)
{
	enumerator_t *enumerator;
	membership_t *other;
	ike_sa_t *ike_sa = NULL;
	chunk_t sk_d = chunk_empty;
	u_int id;

	id = established(m->conn);
	if (id)
	{
		this->lock->read_lock(this->lock);
		enumerator = this->memberships->create_enumerator(this->memberships);
		while (enumerator->enumerate(enumerator, &other))
		{
			other->mutex->lock(other->mutex);
			if (other != m && other->ike_id == id && other->sk_d.len &&
				!sk_d.len)
			{
				sk_d = chunk_clone(other->sk_d);
			}
			other->mutex->unlock(other->mutex);
		}
		enumerator->destroy(enumerator);
		this->lock->unlock(this->lock);
	}
	if (sk_d.len)
	{
		ike_sa = charon->ike_sa_manager->checkout_by_id(
												charon->ike_sa_manager, id);
	}
	if (ike_sa)
	{
		m->mutex->lock(m->mutex);
		m->ike_id = id;
		chunk_clear(&m->sk_d);
		m->sk_d = sk_d;
		DESTROY_IF(m->local);
		m->local = ike_sa->get_my_host(ike_sa)->clone(
											ike_sa->get_my_host(ike_sa));
		m->mutex->unlock(m->mutex);
		queue_registration(m, ike_sa);
		charon->ike_sa_manager->checkin(charon->ike_sa_manager, ike_sa);
		return;
	}
	chunk_clear(&sk_d);
	if (changed)
	{
		DBG1(DBG_CFG, "gikev2: membership '%s' changed, registers again with "
			 "connection '%s'", m->name, m->conn);
		lib->processor->queue_job(lib->processor, (job_t*)
						callback_job_create((callback_job_cb_t)reregister_job,
											strdup(m->conn), free, NULL));
	}
}

METHOD(gikev2_gm_listener_t, reload, int,
	private_gikev2_gm_listener_t *this)
{
	enumerator_t *enumerator;
	linked_list_t *memberships, *removed, *added, *changed;
	membership_t *m, *old;
	char *name;
	bool done;
	int count;

	this->config->lock(this->config);
	memberships = linked_list_create();
	removed = linked_list_create();
	added = linked_list_create();
	changed = linked_list_create();

	this->lock->write_lock(this->lock);
	enumerator = lib->settings->create_section_enumerator(lib->settings,
									"%s.plugins.gikev2.memberships", lib->ns);
	while (enumerator->enumerate(enumerator, &name))
	{
		old = gikev2_list_take(this->memberships,
							   offsetof(membership_t, name), name);
		m = membership_create(name);
		if (!m)
		{
			if (old)
			{
				DBG1(DBG_CFG, "gikev2: membership '%s' keeps its previous "
					 "configuration", name);
				memberships->insert_last(memberships, old);
			}
			continue;
		}
		if (old && membership_equals(old, m))
		{	/* unchanged: keeps its SAs */
			membership_put(m);
			memberships->insert_last(memberships, old);
			continue;
		}
		memberships->insert_last(memberships, m);
		if (old)
		{
			DBG1(DBG_CFG, "gikev2: membership '%s' changed, replaced: it "
				 "registers with connection '%s' again", name, m->conn);
			removed->insert_last(removed, old);
			changed->insert_last(changed, m);
		}
		else
		{
			DBG1(DBG_CFG, "gikev2: membership '%s' registers with connection "
				 "'%s'", name, m->conn);
			added->insert_last(added, m);
		}
	}
	enumerator->destroy(enumerator);
	while (this->memberships->remove_first(this->memberships,
										   (void**)&old) == SUCCESS)
	{
		DBG1(DBG_CFG, "gikev2: membership '%s' no longer configured, leaving "
			 "group '%s'", old->name, old->group ?: "");
		removed->insert_last(removed, old);
	}
	this->memberships->destroy(this->memberships);
	this->memberships = memberships;
	count = memberships->get_count(memberships);

	/* forget leaves done, and those of groups joined again */
	enumerator = this->leaving->create_enumerator(this->leaving);
	while (enumerator->enumerate(enumerator, &old))
	{
		old->mutex->lock(old->mutex);
		done = old->left || has_group(memberships, old->group);
		old->left |= done;
		old->mutex->unlock(old->mutex);
		if (done)
		{	/* shut down when it was removed: nothing runs for it */
			this->leaving->remove_at(this->leaving, enumerator);
			membership_put(old);
		}
	}
	enumerator->destroy(enumerator);
	/* removed memberships leave unless their group is still joined (a
	 * changed one registers again instead, replacing its old record) */
	enumerator = removed->create_enumerator(removed);
	while (enumerator->enumerate(enumerator, &old))
	{
		if (!has_group(memberships, old->group) &&
			!has_group(this->leaving, old->group))
		{
			this->leaving->insert_last(this->leaving, membership_get(old));
		}
		else
		{
			old->left = TRUE;
		}
	}
	enumerator->destroy(enumerator);
	this->lock->unlock(this->lock);

	/* outside the lock: waits for their callbacks */
	while (removed->remove_first(removed, (void**)&old) == SUCCESS)
	{
		membership_shutdown(old);
		if (!old->left)
		{
			leave(old);
		}
		membership_put(old);
	}
	while (changed->remove_first(changed, (void**)&m) == SUCCESS)
	{
		register_now(this, m, TRUE);
	}
	while (added->remove_first(added, (void**)&m) == SUCCESS)
	{
		register_now(this, m, FALSE);
	}
	removed->destroy(removed);
	changed->destroy(changed);
	added->destroy(added);
	this->config->unlock(this->config);
	return count;
}

/*
 * Described in header
 */
gikev2_gm_listener_t *gikev2_gm_listener_create(int *count)
{
	private_gikev2_gm_listener_t *this;

	INIT(this,
		.public = {
			.listener = {
				.message = _message_hook,
				.ike_derived_keys = _ike_derived_keys,
				.ike_updown = _ike_updown,
				.ike_rekey = _ike_rekey,
				.ike_state_change = _ike_state_change,
			},
			.create_status_enumerator = _create_status_enumerator,
			.register_membership = _register_membership,
			.reload = _reload,
			.destroy = _destroy,
		},
		.memberships = linked_list_create(),
		.leaving = linked_list_create(),
		.lock = rwlock_create(RWLOCK_TYPE_DEFAULT),
		.config = mutex_create(MUTEX_TYPE_DEFAULT),
		.ike_sas = linked_list_create(),
		.ike_sas_lock = mutex_create(MUTEX_TYPE_DEFAULT),
	);

	if (!add_memberships(this, count))
	{
		destroy(this);
		return NULL;
	}
	charon->exchanges->add_exchange(charon->exchanges, GSA_INBAND_REKEY,
							(exchange_constructor_t)inband_responder, this);
	return &this->public;
}
