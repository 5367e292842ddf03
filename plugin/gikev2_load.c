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

#include "gikev2_load.h"
#include "gikev2_util.h"

#include <errno.h>
#include <unistd.h>
#include <sys/socket.h>
#include <netinet/in.h>

#include <daemon.h>
#include <collections/array.h>
#include <threading/mutex.h>
#include <threading/rwlock.h>
#include <processing/jobs/callback_job.h>

/** TEK SPIs a member remembers (inbound, newest last) */
#define HELD_TEKS 4

/** Octets of the key digest a member's TEK is summarized by */
#define DIGEST_LEN 8

/** Summary and timer interval (ms) */
#define TICK_MS 1000

typedef struct private_gikev2_load_listener_t private_gikev2_load_listener_t;

/**
 * An inbound TEK a member holds
 */
typedef struct {

	/**
	 * SPI, host order
	 */
	uint32_t spi;

	/**
	 * Start of SHA-256 over its encryption and integrity keys
	 */
	uint8_t digest[DIGEST_LEN];

} held_tek_t;

/**
 * One IKE_SA's registration, taken by a GM core of its own
 */
typedef struct {

	/**
	 * Unique ID of the IKE_SA it registered on
	 */
	u_int ike_id;

	/**
	 * GM core of this member
	 */
	gikev2_gm_t *gm;

	/**
	 * Serializes the member (the core is thread-safe, the fields are not)
	 */
	mutex_t *mutex;

	/**
	 * SK_d of the IKE_SA, until the response is taken
	 */
	chunk_t sk_d;

	/**
	 * Local address of the IKE_SA (interface for multicast)
	 */
	host_t *local;

	/**
	 * The load-tester's peer config of the IKE_SA (its own identity), to
	 * register again with
	 */
	peer_cfg_t *peer_cfg;

	/**
	 * Whether a new IKE_SA registers this member again
	 */
	bool reregistering;

	/**
	 * Registrations again that succeeded
	 */
	u_int registered_again;

	/**
	 * Whether the GCKS's response was taken
	 */
	bool registered;

	/**
	 * Inbound TEKs held, newest last
	 */
	held_tek_t teks[HELD_TEKS];

	/**
	 * Entries in teks
	 */
	int count;

	/**
	 * Rekey SA listened on, if any
	 */
	uint8_t kek[GIKEV2_REKEY_SPI_LEN];

	/**
	 * Whether kek is set
	 */
	bool has_kek;

	/**
	 * TEKs installed from GSA_REKEY (not from the registration)
	 */
	u_int rekeyed;

} member_t;

/**
 * A socket receiving GSA_REKEY for all members
 */
typedef struct {

	/**
	 * Multicast address and port
	 */
	host_t *dst;

	/**
	 * Socket bound to it
	 */
	int fd;

} rekey_socket_t;

/**
 * Private data of the load driver.
 */
struct private_gikev2_load_listener_t {

	/**
	 * Public interface
	 */
	gikev2_load_listener_t public;

	/**
	 * Name of the peer config whose IKE_SAs register
	 */
	char *config;

	/**
	 * GM core building the registration payloads (thread-safe)
	 */
	gikev2_gm_t *gm;

	/**
	 * Membership settings, for a GM core per IKE_SA (NULL: count only)
	 */
	char **keys, **values;

	/**
	 * Number of settings
	 */
	int count;

	/**
	 * Members (member_t*), with keys = yes
	 */
	array_t *members;

	/**
	 * Rekey sockets (rekey_socket_t*)
	 */
	array_t *sockets;

	/**
	 * Lock for members; members are never removed before destroy
	 */
	rwlock_t *lock;

	/**
	 * Lock for sockets and changed (taken after a member's)
	 */
	mutex_t *mutex;

	/**
	 * Runs the members' timeouts and logs the summary
	 */
	gikev2_timer_t *timer;

	/**
	 * Whether something changed since the last summary
	 */
	bool changed;

	/**
	 * Set in destroy: no more sockets are opened
	 */
	bool dying;

	/**
	 * Registrations the GCKS answered with GSA and KD
	 */
	refcount_t registered;

	/**
	 * Registrations the GCKS refused or answered without records
	 */
	refcount_t refused;
};

/**
 * Add the registration payloads to a GSA_AUTH request
 */
static void add_registration(private_gikev2_load_listener_t *this,
							 message_t *message)
{
	uint8_t buf[4096];
	size_t len = sizeof(buf);

	if (gikev2_gm_registration_payloads(this->gm, buf, &len) != GIKEV2_OK)
	{
		DBG1(DBG_IKE, "gikev2: load test: building registration payloads "
			 "failed: %s", gikev2_last_error());
		return;
	}
	gikev2_records_to_message(message, chunk_create(buf, len));
}

/**
 * Drop the CHILD_SA the load-tester asked for: GSA_AUTH creates none, and
 * charon would create it with CREATE_CHILD_SA after it
 */
static void remove_child_create(ike_sa_t *ike_sa)
{
	enumerator_t *enumerator;
	task_t *task;

	enumerator = ike_sa->create_task_enumerator(ike_sa, TASK_QUEUE_ACTIVE);
	while (enumerator->enumerate(enumerator, &task))
	{
		if (task->get_type(task) == TASK_CHILD_CREATE)
		{
			ike_sa->remove_task(ike_sa, enumerator);
			task->destroy(task);
		}
	}
	enumerator->destroy(enumerator);
}

/**
 * Find the member of an IKE_SA, NULL if none (read lock held)
 */
static member_t *find_member(private_gikev2_load_listener_t *this, u_int id)
{
	member_t *m;
	int i;

	for (i = 0; i < array_count(this->members); i++)
	{
		array_get(this->members, i, &m);
		if (m->ike_id == id)
		{
			return m;
		}
	}
	return NULL;
}

/**
 * Digest of a TEK's keys, to compare the keys members hold
 */
static void key_digest(chunk_t encr, chunk_t integ, uint8_t *digest)
{
	hasher_t *hasher;
	uint8_t hash[HASH_SIZE_SHA256];

	memset(digest, 0, DIGEST_LEN);
	hasher = lib->crypto->create_hasher(lib->crypto, HASH_SHA256);
	if (hasher && hasher->get_hash(hasher, encr, NULL) &&
		hasher->get_hash(hasher, integ, hash))
	{
		memcpy(digest, hash, DIGEST_LEN);
	}
	DESTROY_IF(hasher);
}

/**
 * Forget an inbound TEK of a member
 */
static void forget_tek(member_t *m, uint32_t spi)
{
	int i;

	for (i = 0; i < m->count; i++)
	{
		if (m->teks[i].spi == spi)
		{
			memmove(&m->teks[i], &m->teks[i + 1],
					(m->count - i - 1) * sizeof(held_tek_t));
			m->count--;
			return;
		}
	}
}

/**
 * Remember an inbound TEK of a member as its newest
 */
static void hold_tek(member_t *m, uint32_t spi, chunk_t encr, chunk_t integ)
{
	forget_tek(m, spi);
	if (m->count == HELD_TEKS)
	{
		memmove(&m->teks[0], &m->teks[1],
				(HELD_TEKS - 1) * sizeof(held_tek_t));
		m->count--;
	}
	m->teks[m->count].spi = spi;
	key_digest(encr, integ, m->teks[m->count].digest);
	m->count++;
}

/**
 * Receive GSA_REKEY and hand it to every member (watcher callback)
 */
static bool receive_rekey(private_gikev2_load_listener_t *this, int fd,
						  watcher_event_t event);

/**
 * Open a socket for the GSA_REKEYs to an address unless one is open
 * (mutex held)
 */
static void listen_rekey(private_gikev2_load_listener_t *this,
						 gikev2_endpoint_t *ep, host_t *local)
{
	rekey_socket_t *s;
	host_t *dst;
	struct ip_mreq mreq = {};
	int i, fd, on = 1;

	dst = this->dying ? NULL : gikev2_host_from_endpoint(ep);
	if (!dst)
	{
		return;
	}
	for (i = 0; i < array_count(this->sockets); i++)
	{
		array_get(this->sockets, i, &s);
		if (dst->ip_equals(dst, s->dst) &&
			dst->get_port(dst) == s->dst->get_port(s->dst))
		{
			dst->destroy(dst);
			return;
		}
	}
	if (dst->get_family(dst) != AF_INET)
	{
		DBG1(DBG_NET, "gikev2: load test: IPv6 GSA_REKEY groups not "
			 "implemented yet");
		dst->destroy(dst);
		return;
	}
	fd = socket(AF_INET, SOCK_DGRAM, 0);
	if (fd < 0)
	{
		DBG1(DBG_NET, "gikev2: load test: opening GSA_REKEY socket failed: "
			 "%s", strerror(errno));
		dst->destroy(dst);
		return;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
	memcpy(&mreq.imr_multiaddr, dst->get_address(dst).ptr, 4);
	if (local && local->get_family(local) == AF_INET)
	{
		memcpy(&mreq.imr_interface, local->get_address(local).ptr, 4);
	}
	if (bind(fd, dst->get_sockaddr(dst), *dst->get_sockaddr_len(dst)) < 0 ||
		setsockopt(fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, &mreq,
				   sizeof(mreq)) < 0)
	{
		DBG1(DBG_NET, "gikev2: load test: listening on %#H failed: %s", dst,
			 strerror(errno));
		close(fd);
		dst->destroy(dst);
		return;
	}
	INIT(s,
		.dst = dst,
		.fd = fd,
	);
	array_insert(this->sockets, ARRAY_TAIL, s);
	lib->watcher->add(lib->watcher, fd, WATCHER_READ,
					  (watcher_cb_t)receive_rekey, this);
	DBG1(DBG_NET, "gikev2: load test: listening for GSA_REKEY on %#H", dst);
}

/**
 * Initiate a new IKE_SA with a member's identity (job)
 */
static job_requeue_t reregister_job(peer_cfg_t *peer_cfg)
{
	charon->controller->initiate(charon->controller,
								 peer_cfg->get_ref(peer_cfg), NULL, NULL, NULL,
								 0, 0, FALSE);
	return JOB_REQUEUE_NONE;
}

/**
 * Register a member again, as a GM would: a new IKE_SA with its identity,
 * whose GSA_AUTH response its GM core takes (member locked)
 */
static void register_again(member_t *m, gikev2_reregister_reason_t reason)
{
	if (m->reregistering || !m->peer_cfg)
	{
		return;
	}
	DBG1(DBG_IKE, "gikev2: load test: member of IKE_SA [%u] registers again "
		 "(reason %d)", m->ike_id, reason);
	m->reregistering = TRUE;
	lib->processor->queue_job(lib->processor, (job_t*)
				callback_job_create((callback_job_cb_t)reregister_job,
									m->peer_cfg->get_ref(m->peer_cfg),
									(callback_job_cleanup_t)m->peer_cfg->destroy,
									NULL));
}

/**
 * Take a member's actions: remember what a GM would install (member locked)
 */
static void drain(private_gikev2_load_listener_t *this, member_t *m,
				  bool from_rekey)
{
	gikev2_gm_action_t a;
	uint8_t encr[GIKEV2_MAX_KEY_LEN], integ[GIKEV2_MAX_KEY_LEN];
	size_t encr_len, integ_len;
	bool changed = FALSE;

	while (TRUE)
	{
		encr_len = sizeof(encr);
		integ_len = sizeof(integ);
		if (gikev2_gm_poll_action(m->gm, &a, encr, &encr_len, integ,
								  &integ_len) != GIKEV2_OK ||
			a.kind == GIKEV2_GM_ACTION_NONE)
		{
			break;
		}
		changed = TRUE;
		switch (a.kind)
		{
			case GIKEV2_GM_ACTION_INSTALL:
				if (a.direction == GIKEV2_DIR_IN)
				{
					hold_tek(m, a.spi, chunk_create(encr, encr_len),
							 chunk_create(integ, integ_len));
					m->rekeyed += from_rekey;
				}
				break;
			case GIKEV2_GM_ACTION_DELETE:
				if (a.direction == GIKEV2_DIR_IN)
				{
					forget_tek(m, a.spi);
				}
				break;
			case GIKEV2_GM_ACTION_LISTEN_REKEY:
				memcpy(m->kek, a.rekey_spi, sizeof(m->kek));
				m->has_kek = TRUE;
				this->mutex->lock(this->mutex);
				listen_rekey(this, &a.rekey_dst, m->local);
				this->mutex->unlock(this->mutex);
				break;
			case GIKEV2_GM_ACTION_STOP_REKEY:
				if (m->has_kek && memeq(m->kek, a.rekey_spi, sizeof(m->kek)))
				{
					m->has_kek = FALSE;
				}
				break;
			case GIKEV2_GM_ACTION_REREGISTER:
				register_again(m, a.reason);
				break;
			default:
				break;
		}
		memwipe(encr, sizeof(encr));
		memwipe(integ, sizeof(integ));
	}
	if (changed)
	{
		this->mutex->lock(this->mutex);
		this->changed = TRUE;
		this->mutex->unlock(this->mutex);
	}
}

static bool receive_rekey(private_gikev2_load_listener_t *this, int fd,
						  watcher_event_t event)
{
	uint8_t buf[65536];
	ssize_t len;
	member_t *m;
	u_int taken = 0, ignored = 0, dropped = 0;
	int i;

	len = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
	if (len <= 0)
	{
		return TRUE;
	}
	this->lock->read_lock(this->lock);
	for (i = 0; i < array_count(this->members); i++)
	{
		array_get(this->members, i, &m);
		m->mutex->lock(m->mutex);
		if (m->registered)
		{
			switch (gikev2_gm_rekey(m->gm, gikev2_now_ms(), buf, len))
			{
				case GIKEV2_OK:
					taken++;
					drain(this, m, TRUE);
					break;
				case GIKEV2_ERR_REPLAY:
				case GIKEV2_ERR_UNKNOWN_SA:
					ignored++;
					break;
				default:
					dropped++;
					/* e.g. excluded by this message: REREGISTER queued */
					drain(this, m, TRUE);
					break;
			}
		}
		m->mutex->unlock(m->mutex);
	}
	this->lock->unlock(this->lock);
	memwipe(buf, len);
	DBG1(DBG_IKE, "gikev2: load test: GSA_REKEY (%zd bytes) taken by %u "
		 "members, ignored by %u (a copy, or not their rekey SA), dropped by "
		 "%u", len, taken, ignored, dropped);
	return TRUE;
}

/**
 * Write octets as lowercase hex, as gikectl prints SPIs
 */
static char *hex(uint8_t *ptr, size_t len, char *buf)
{
	size_t i;

	for (i = 0; i < len; i++)
	{
		sprintf(buf + 2 * i, "%02x", ptr[i]);
	}
	buf[2 * len] = '\0';
	return buf;
}

/**
 * A distinct state members are in, for the summary
 */
typedef struct {
	uint32_t spi;
	uint8_t digest[DIGEST_LEN];
	uint8_t kek[GIKEV2_REKEY_SPI_LEN];
	bool has_kek;
	u_int members;
} state_t;

/**
 * Log what the members hold: the newest TEK, its keys' digest and the
 * rekey SA, with how many members are in each state (read lock held)
 */
static void summary(private_gikev2_load_listener_t *this)
{
	state_t states[8];
	member_t *m;
	held_tek_t *tek;
	u_int nstates = 0, none = 0, other = 0, rekeyed = 0, again = 0,
		  waiting = 0, registered = 0, i, j;
	char kek[2 * GIKEV2_REKEY_SPI_LEN + 8], spi_i[GIKEV2_REKEY_SPI_LEN + 1],
		 spi_r[GIKEV2_REKEY_SPI_LEN + 1], digest[2 * DIGEST_LEN + 1];

	for (i = 0; i < array_count(this->members); i++)
	{
		array_get(this->members, i, &m);
		m->mutex->lock(m->mutex);
		if (m->registered)
		{
			registered++;
			rekeyed += m->rekeyed > 0;
			again += m->registered_again > 0;
			waiting += m->reregistering;
			if (!m->count)
			{
				none++;
			}
			else
			{
				tek = &m->teks[m->count - 1];
				for (j = 0; j < nstates; j++)
				{
					if (states[j].spi == tek->spi &&
						memeq(states[j].digest, tek->digest, DIGEST_LEN) &&
						states[j].has_kek == m->has_kek &&
						(!m->has_kek ||
						 memeq(states[j].kek, m->kek, sizeof(m->kek))))
					{
						break;
					}
				}
				if (j == nstates && nstates < countof(states))
				{
					states[j] = (state_t){
						.spi = tek->spi,
						.has_kek = m->has_kek,
					};
					memcpy(states[j].digest, tek->digest, DIGEST_LEN);
					memcpy(states[j].kek, m->kek, sizeof(m->kek));
					nstates++;
				}
				if (j < nstates)
				{
					states[j].members++;
				}
				else
				{
					other++;
				}
			}
		}
		m->mutex->unlock(m->mutex);
	}
	DBG1(DBG_IKE, "gikev2: load test: summary: %u members hold keys, %u "
		 "hold no TEK, %u took a TEK from GSA_REKEY, %u registered again, %u "
		 "registering again", registered - none, none, rekeyed, again,
		 waiting);
	for (j = 0; j < nstates; j++)
	{
		if (states[j].has_kek)
		{
			snprintf(kek, sizeof(kek), "%s_i %s_r",
					 hex(states[j].kek, GIKEV2_REKEY_SPI_LEN / 2, spi_i),
					 hex(states[j].kek + GIKEV2_REKEY_SPI_LEN / 2,
						 GIKEV2_REKEY_SPI_LEN / 2, spi_r));
		}
		DBG1(DBG_IKE, "gikev2: load test: %u members' newest TEK is SPI "
			 "0x%08x, keys %s, rekey SA %s", states[j].members, states[j].spi,
			 hex(states[j].digest, DIGEST_LEN, digest),
			 states[j].has_kek ? kek : "none");
	}
	if (other)
	{
		DBG1(DBG_IKE, "gikev2: load test: %u members in further states",
			 other);
	}
}

/**
 * Run the members' timeouts (SAs deleted after DTD or at expiry) and log
 * the summary if anything changed (timer callback)
 */
static void tick(private_gikev2_load_listener_t *this)
{
	uint64_t now = gikev2_now_ms(), deadline;
	member_t *m;
	bool has, changed;
	int i;

	this->lock->read_lock(this->lock);
	for (i = 0; i < array_count(this->members); i++)
	{
		array_get(this->members, i, &m);
		m->mutex->lock(m->mutex);
		if (m->registered &&
			gikev2_gm_poll_timeout(m->gm, &has, &deadline) == GIKEV2_OK &&
			has && deadline <= now &&
			gikev2_gm_handle_timeout(m->gm, now) == GIKEV2_OK)
		{
			drain(this, m, FALSE);
		}
		m->mutex->unlock(m->mutex);
	}
	this->mutex->lock(this->mutex);
	changed = this->changed;
	this->changed = FALSE;
	this->mutex->unlock(this->mutex);
	if (changed)
	{
		summary(this);
	}
	this->lock->unlock(this->lock);
	gikev2_timer_arm(this->timer, now + TICK_MS);
}

/**
 * Destroy a member
 */
static void member_destroy(member_t *m)
{
	gikev2_gm_destroy(m->gm);
	chunk_clear(&m->sk_d);
	DESTROY_IF(m->local);
	DESTROY_IF(m->peer_cfg);
	m->mutex->destroy(m->mutex);
	free(m);
}

/**
 * Whether an IKE_SA is one of the load-tester's that register
 */
static bool is_load_sa(private_gikev2_load_listener_t *this, ike_sa_t *ike_sa)
{
	peer_cfg_t *peer_cfg;

	if (!ike_sa->has_condition(ike_sa, COND_ORIGINAL_INITIATOR))
	{
		return FALSE;
	}
	peer_cfg = ike_sa->get_peer_cfg(ike_sa);
	return peer_cfg && streq(peer_cfg->get_name(peer_cfg), this->config);
}

/**
 * The member registering again with an IKE_SA's peer config, if any (read
 * lock held)
 */
static member_t *find_reregistering(private_gikev2_load_listener_t *this,
									peer_cfg_t *peer_cfg)
{
	member_t *m;
	int i;

	for (i = 0; i < array_count(this->members); i++)
	{
		array_get(this->members, i, &m);
		if (m->peer_cfg == peer_cfg && m->reregistering)
		{
			return m;
		}
	}
	return NULL;
}

METHOD(listener_t, ike_derived_keys, bool,
	private_gikev2_load_listener_t *this, ike_sa_t *ike_sa, chunk_t sk_d,
	chunk_t sk_ai, chunk_t sk_ar, chunk_t sk_ei, chunk_t sk_er, chunk_t sk_pi,
	chunk_t sk_pr)
{
	member_t *m;
	gikev2_gm_t *gm;
	peer_cfg_t *peer_cfg;
	host_t *me;

	if (!this->keys || !is_load_sa(this, ike_sa))
	{
		return TRUE;
	}
	peer_cfg = ike_sa->get_peer_cfg(ike_sa);
	me = ike_sa->get_my_host(ike_sa);
	this->lock->read_lock(this->lock);
	m = find_reregistering(this, peer_cfg);
	if (m)
	{	/* a member registering again: its GM core takes the response */
		m->mutex->lock(m->mutex);
		m->ike_id = ike_sa->get_unique_id(ike_sa);
		chunk_clear(&m->sk_d);
		m->sk_d = chunk_clone(sk_d);
		m->mutex->unlock(m->mutex);
		this->lock->unlock(this->lock);
		return TRUE;
	}
	this->lock->unlock(this->lock);
	if (gikev2_gm_new((const char *const *)this->keys,
					  (const char *const *)this->values, this->count,
					  &gm) != GIKEV2_OK)
	{
		DBG1(DBG_IKE, "gikev2: load test: creating a GM failed: %s",
			 gikev2_last_error());
		return TRUE;
	}
	INIT(m,
		.ike_id = ike_sa->get_unique_id(ike_sa),
		.gm = gm,
		.mutex = mutex_create(MUTEX_TYPE_DEFAULT),
		.sk_d = chunk_clone(sk_d),
		.local = me->clone(me),
		.peer_cfg = peer_cfg->get_ref(peer_cfg),
	);
	this->lock->write_lock(this->lock);
	array_insert(this->members, ARRAY_TAIL, m);
	this->lock->unlock(this->lock);
	return TRUE;
}

/**
 * Hand the GCKS's answer to the IKE_SA's own GM core, as a GM would
 */
static bool take_response(private_gikev2_load_listener_t *this,
						  ike_sa_t *ike_sa, chunk_t records, bool *again)
{
	member_t *m;
	uint16_t prf = 0, kwa = 0, refused = 0;
	gikev2_error_t err;
	bool ok = FALSE;

	gikev2_ike_algorithms(ike_sa, &prf, &kwa);
	this->lock->read_lock(this->lock);
	m = find_member(this, ike_sa->get_unique_id(ike_sa));
	if (!m)
	{
		this->lock->unlock(this->lock);
		DBG1(DBG_IKE, "gikev2: load test: no GM for IKE_SA %s[%u]",
			 ike_sa->get_name(ike_sa), ike_sa->get_unique_id(ike_sa));
		return FALSE;
	}
	m->mutex->lock(m->mutex);
	err = gikev2_gm_registration_response(m->gm, gikev2_now_ms(), GSA_AUTH,
										  records.ptr, records.len,
										  m->sk_d.ptr, m->sk_d.len, prf, kwa,
										  &refused);
	chunk_clear(&m->sk_d);
	*again = m->registered;
	if (err == GIKEV2_OK)
	{
		m->registered = TRUE;
		if (m->reregistering)
		{
			m->reregistering = FALSE;
			m->registered_again++;
		}
		drain(this, m, FALSE);
		ok = m->count > 0;
		if (!ok)
		{
			DBG1(DBG_IKE, "gikev2: load test: IKE_SA %s[%u] registered but "
				 "got no TEK", ike_sa->get_name(ike_sa), m->ike_id);
		}
	}
	else if (err == GIKEV2_ERR_REFUSED)
	{
		m->reregistering = FALSE;
		DBG1(DBG_IKE, "gikev2: load test: GCKS refused IKE_SA %s[%u] with %N",
			 ike_sa->get_name(ike_sa), m->ike_id, notify_type_names, refused);
	}
	else
	{
		m->reregistering = FALSE;
		DBG1(DBG_IKE, "gikev2: load test: response on IKE_SA %s[%u] "
			 "unusable: %s", ike_sa->get_name(ike_sa), m->ike_id,
			 gikev2_last_error());
	}
	m->mutex->unlock(m->mutex);
	this->lock->unlock(this->lock);
	if (ok)
	{
		gikev2_timer_arm(this->timer, gikev2_now_ms() + TICK_MS);
	}
	return ok;
}

/**
 * Count the GCKS's answer to a GSA_AUTH request
 */
static void count_response(private_gikev2_load_listener_t *this,
						   ike_sa_t *ike_sa, message_t *message)
{
	chunk_t records;
	u_int registered, refused;
	bool ok, again = FALSE;

	records = gikev2_records_from_message(message, FALSE);
	ok = records.len && !gikev2_records_error(records);
	if (ok && this->keys)
	{
		ok = take_response(this, ike_sa, records, &again);
	}
	chunk_clear(&records);
	if (again)
	{	/* counted once, when it first registered */
		DBG1(DBG_IKE, "gikev2: load test: IKE_SA %s[%u] %s a member again",
			 ike_sa->get_name(ike_sa), ike_sa->get_unique_id(ike_sa),
			 ok ? "registered" : "failed to register");
		return;
	}
	if (ok)
	{
		registered = ref_get(&this->registered);
		refused = this->refused;
	}
	else
	{
		refused = ref_get(&this->refused);
		registered = this->registered;
	}
	DBG1(DBG_IKE, "gikev2: load test: IKE_SA %s[%u] %s (%u registered, "
		 "%u refused)", ike_sa->get_name(ike_sa),
		 ike_sa->get_unique_id(ike_sa), ok ? "registered" : "refused",
		 registered, refused);
}

METHOD(listener_t, message_hook, bool,
	private_gikev2_load_listener_t *this, ike_sa_t *ike_sa,
	message_t *message, bool incoming, bool plain)
{
	if (!plain || message->get_major_version(message) != IKEV2_MAJOR_VERSION ||
		!is_load_sa(this, ike_sa))
	{
		return TRUE;
	}
	if (!incoming && message->get_request(message) &&
		message->get_exchange_type(message) == IKE_SA_INIT)
	{
		ike_sa->enable_extension(ike_sa, EXT_GIKEV2);
	}
	else if (!incoming && message->get_request(message) &&
			 message->get_wire_exchange_type(message) == GSA_AUTH &&
			 message->get_payload(message, PLV2_ID_INITIATOR))
	{
		add_registration(this, message);
		remove_child_create(ike_sa);
	}
	else if (incoming && !message->get_request(message) &&
			 message->get_wire_exchange_type(message) == GSA_AUTH)
	{
		count_response(this, ike_sa, message);
	}
	return TRUE;
}

/**
 * Close a rekey socket
 */
static void socket_destroy(rekey_socket_t *s)
{
	lib->watcher->remove(lib->watcher, s->fd);
	close(s->fd);
	s->dst->destroy(s->dst);
	free(s);
}

METHOD(gikev2_load_listener_t, destroy, void,
	private_gikev2_load_listener_t *this)
{
	gikev2_timer_destroy(this->timer);
	/* a GSA_REKEY being taken may still ask for a socket */
	this->mutex->lock(this->mutex);
	this->dying = TRUE;
	this->mutex->unlock(this->mutex);
	array_destroy_function(this->sockets, (void*)socket_destroy, NULL);
	this->lock->read_lock(this->lock);
	if (array_count(this->members))
	{
		summary(this);
	}
	this->lock->unlock(this->lock);
	DBG1(DBG_IKE, "gikev2: load test: %u registered, %u refused",
		 this->registered, this->refused);
	array_destroy_function(this->members, (void*)member_destroy, NULL);
	gikev2_settings_free(this->keys, this->values, this->count);
	gikev2_gm_destroy(this->gm);
	this->lock->destroy(this->lock);
	this->mutex->destroy(this->mutex);
	free(this->config);
	free(this);
}

/**
 * Take the driver's own keys out of the membership settings: the value of
 * "keys" (yes unless set), the rest stays
 */
static bool take_keys_setting(char **keys, char **values, int *count,
							  char *section, bool *error)
{
	bool on = TRUE;
	int i;

	for (i = 0; i < *count; i++)
	{
		if (streq(keys[i], "keys"))
		{
			if (strcaseeq(values[i], "yes") || strcaseeq(values[i], "true"))
			{
				on = TRUE;
			}
			else if (strcaseeq(values[i], "no") ||
					 strcaseeq(values[i], "false"))
			{
				on = FALSE;
			}
			else
			{
				DBG1(DBG_CFG, "gikev2: %s.keys: '%s' is not yes or no",
					 section, values[i]);
				*error = TRUE;
			}
			free(keys[i]);
			free(values[i]);
			memmove(&keys[i], &keys[i + 1], (*count - i - 1) * sizeof(char*));
			memmove(&values[i], &values[i + 1],
					(*count - i - 1) * sizeof(char*));
			(*count)--;
			i--;
		}
	}
	return on;
}

/*
 * Described in header
 */
gikev2_load_listener_t *gikev2_load_listener_create(bool *error)
{
	private_gikev2_load_listener_t *this;
	char section[BUF_LEN], **keys, **values, *config;
	int count;
	bool follow;

	snprintf(section, sizeof(section), "%s.plugins.gikev2.load_test", lib->ns);
	count = gikev2_settings_collect(section, "connection", &keys, &values);
	if (!count)
	{
		gikev2_settings_free(keys, values, count);
		return NULL;
	}
	follow = take_keys_setting(keys, values, &count, section, error);
	if (*error)
	{
		gikev2_settings_free(keys, values, count);
		return NULL;
	}
	config = lib->settings->get_str(lib->settings,
							"%s.plugins.gikev2.load_test.connection",
							"load-test", lib->ns);
	INIT(this,
		.public = {
			.listener = {
				.message = _message_hook,
				.ike_derived_keys = _ike_derived_keys,
			},
			.destroy = _destroy,
		},
		.config = strdup(config),
		.members = array_create(0, 0),
		.sockets = array_create(0, 0),
		.lock = rwlock_create(RWLOCK_TYPE_DEFAULT),
		.mutex = mutex_create(MUTEX_TYPE_DEFAULT),
	);
	this->timer = gikev2_timer_create((gikev2_timer_cb_t)tick, this);
	if (gikev2_gm_new((const char *const *)keys, (const char *const *)values,
					  count, &this->gm) != GIKEV2_OK)
	{
		DBG1(DBG_CFG, "gikev2: %s: %s", section, gikev2_last_error());
		gikev2_settings_free(keys, values, count);
		*error = TRUE;
		destroy(this);
		return NULL;
	}
	if (follow)
	{
		this->keys = keys;
		this->values = values;
		this->count = count;
	}
	else
	{
		gikev2_settings_free(keys, values, count);
	}
	DBG1(DBG_CFG, "gikev2: load test: IKE_SAs of '%s' register with "
		 "GSA_AUTH, %s", this->config, follow ?
		 "each with a GM of its own that unwraps the keys and follows "
		 "GSA_REKEY; nothing is installed" : "answers are only counted");
	return &this->public;
}
