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

#include "gikev2_gcks.h"
#include "gikev2_util.h"

#include <unistd.h>
#include <limits.h>
#include <errno.h>
#include <sys/socket.h>
#include <netinet/in.h>

#include <daemon.h>
#include <collections/hashtable.h>
#include <collections/linked_list.h>
#include <threading/mutex.h>
#include <encoding/payloads/eap_payload.h>
#include <encoding/payloads/notify_payload.h>
#include <processing/jobs/callback_job.h>
#include <processing/jobs/initiate_tasks_job.h>

/**
 * Delay before closing an IKE_SA the core no longer needs, so the response
 * leaves first (ms)
 */
#define CLOSE_DELAY_MS 500

typedef struct private_gikev2_gcks_listener_t private_gikev2_gcks_listener_t;

/**
 * Per IKE_SA state of a member
 */
typedef struct {

	/**
	 * Payload records of a received GSA_AUTH request
	 */
	chunk_t request;

	/**
	 * TRUE once closing the IKE_SA is scheduled
	 */
	bool closing;

	/**
	 * IKE_SA ID, to close it without a walk over all IKE_SAs
	 */
	ike_sa_id_t *ike_sa_id;

} member_sa_t;

/**
 * Private data of a gikev2_gcks_listener_t object.
 */
struct private_gikev2_gcks_listener_t {

	/**
	 * Public interface.
	 */
	gikev2_gcks_listener_t public;

	/**
	 * Core GCKS handle
	 */
	gikev2_gcks_t *gcks;

	/**
	 * Timer driving the core
	 */
	gikev2_timer_t *timer;

	/**
	 * Member state, IKE_SA unique ID => member_sa_t
	 */
	hashtable_t *sas;

	/**
	 * Lock for sas
	 */
	mutex_t *mutex;

	/**
	 * Socket for GSA_REKEY messages
	 */
	int fd;

	/**
	 * Lock for fd: the timer and operator commands both send
	 */
	mutex_t *send_lock;

	/**
	 * Configured groups, group_cfg_t
	 */
	linked_list_t *groups;

	/**
	 * Lock serializing (re)loads of the groups
	 */
	mutex_t *config;

	/**
	 * Directory of the groups' state files, NULL to keep no state
	 */
	char *state_dir;
};

/**
 * Settings of a group served, to see what a reload changes
 */
typedef struct {

	/**
	 * Name of the group's section
	 */
	char *name;

	/**
	 * Group ID, as the id setting writes it
	 */
	char *id;

	/**
	 * Keys of the settings, relative to the section
	 */
	char **keys;

	/**
	 * Values of the settings (rekey.key resolved)
	 */
	char **values;

	/**
	 * Number of settings
	 */
	int count;

} group_cfg_t;

/**
 * Destroy member state
 */
static void member_sa_destroy(member_sa_t *sa)
{
	chunk_free(&sa->request);
	DESTROY_IF(sa->ike_sa_id);
	free(sa);
}

/**
 * Get (and create) the state of an IKE_SA, lock must be held
 */
static member_sa_t *get_sa(private_gikev2_gcks_listener_t *this, u_int id,
						   bool create)
{
	member_sa_t *sa;

	sa = this->sas->get(this->sas, (void*)(uintptr_t)id);
	if (!sa && create)
	{
		INIT(sa);
		this->sas->put(this->sas, (void*)(uintptr_t)id, sa);
	}
	return sa;
}

/**
 * Send a GSA_REKEY datagram
 */
static void send_multicast(private_gikev2_gcks_listener_t *this,
						   const gikev2_gcks_action_t *action, chunk_t data)
{
	host_t *dst, *src;
	struct in_addr iface;
	u_char ttl = 8;

	dst = gikev2_host_from_endpoint(&action->dst);
	src = gikev2_host_from_endpoint(&action->src);
	if (!dst)
	{
		DESTROY_IF(src);
		return;
	}
	this->send_lock->lock(this->send_lock);
	if (this->fd < 0)
	{
		this->fd = socket(dst->get_family(dst), SOCK_DGRAM, 0);
		if (this->fd < 0)
		{
			DBG1(DBG_NET, "gikev2: opening GSA_REKEY socket failed: %s",
				 strerror(errno));
		}
		else
		{
			if (src)
			{
				int on = 1;

				setsockopt(this->fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
				if (bind(this->fd, src->get_sockaddr(src),
						 *src->get_sockaddr_len(src)) < 0)
				{
					DBG1(DBG_NET, "gikev2: binding GSA_REKEY socket to %#H "
						 "failed: %s", src, strerror(errno));
				}
				if (src->get_family(src) == AF_INET)
				{
					memcpy(&iface, src->get_address(src).ptr, 4);
					setsockopt(this->fd, IPPROTO_IP, IP_MULTICAST_IF, &iface,
							   sizeof(iface));
				}
			}
			if (dst->get_family(dst) == AF_INET)
			{
				setsockopt(this->fd, IPPROTO_IP, IP_MULTICAST_TTL, &ttl,
						   sizeof(ttl));
			}
		}
	}
	if (this->fd >= 0)
	{
		if (sendto(this->fd, data.ptr, data.len, 0, dst->get_sockaddr(dst),
				   *dst->get_sockaddr_len(dst)) < 0)
		{
			DBG1(DBG_NET, "gikev2: sending GSA_REKEY to %#H failed: %s", dst,
				 strerror(errno));
		}
		else
		{
			DBG1(DBG_IKE, "gikev2: sent GSA_REKEY (%zu bytes) to %#H",
				 data.len, dst);
		}
	}
	this->send_lock->unlock(this->send_lock);
	dst->destroy(dst);
	DESTROY_IF(src);
}

/**
 * GSA_INBAND_REKEY initiator task
 */
typedef struct {

	/**
	 * Implements task_t
	 */
	task_t task;

	/**
	 * IKE_SA the task runs on
	 */
	ike_sa_t *ike_sa;

	/**
	 * Payload records to send (GSA, KD)
	 */
	chunk_t records;

} inband_task_t;

METHOD(task_t, inband_build_i, status_t,
	inband_task_t *this, message_t *message)
{
	message->set_exchange_type(message, GSA_INBAND_REKEY);
	if (!gikev2_records_to_message(message, this->records))
	{
		DBG1(DBG_IKE, "gikev2: core returned malformed records");
		return FAILED;
	}
	DBG1(DBG_IKE, "gikev2: sending GSA_INBAND_REKEY on IKE_SA %s[%u]",
		 this->ike_sa->get_name(this->ike_sa),
		 this->ike_sa->get_unique_id(this->ike_sa));
	return NEED_MORE;
}

METHOD(task_t, inband_process_i, status_t,
	inband_task_t *this, message_t *message)
{
	DBG1(DBG_IKE, "gikev2: GSA_INBAND_REKEY acknowledged on IKE_SA %s[%u]",
		 this->ike_sa->get_name(this->ike_sa),
		 this->ike_sa->get_unique_id(this->ike_sa));
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
	chunk_clear(&this->records);
	free(this);
}

/**
 * Data of a job starting a GSA_INBAND_REKEY
 */
typedef struct {

	/**
	 * Unique ID of the member's IKE_SA
	 */
	u_int id;

	/**
	 * Payload records to send
	 */
	chunk_t records;

} inband_job_t;

/**
 * Destroy inband job data
 */
static void inband_job_destroy(inband_job_t *job)
{
	chunk_clear(&job->records);
	free(job);
}

/**
 * Queue a GSA_INBAND_REKEY task on a member's IKE_SA (job)
 */
static job_requeue_t inband_job(inband_job_t *job)
{
	inband_task_t *task;
	ike_sa_t *ike_sa;
	ike_sa_id_t *id;

	ike_sa = charon->ike_sa_manager->checkout_by_id(charon->ike_sa_manager,
													job->id);
	if (!ike_sa)
	{
		DBG1(DBG_IKE, "gikev2: IKE_SA of member %u for GSA_INBAND_REKEY not "
			 "found", job->id);
		return JOB_REQUEUE_NONE;
	}
	INIT(task,
		.task = {
			.build = _inband_build_i,
			.process = _inband_process_i,
			.get_type = _inband_get_type,
			.migrate = _inband_migrate,
			.destroy = _inband_destroy,
		},
		.ike_sa = ike_sa,
		.records = job->records,
	);
	job->records = chunk_empty;
	ike_sa->queue_task(ike_sa, &task->task);
	id = ike_sa->get_id(ike_sa);
	lib->processor->queue_job(lib->processor,
							  (job_t*)initiate_tasks_job_create(id));
	charon->ike_sa_manager->checkin(charon->ike_sa_manager, ike_sa);
	return JOB_REQUEUE_NONE;
}

/**
 * Run a GSA_INBAND_REKEY on a member's IKE_SA, from a job as the IKE_SA
 * may be checked out by this thread
 */
static void inband_rekey(u_int id, chunk_t records)
{
	inband_job_t *job;

	INIT(job,
		.id = id,
		.records = chunk_clone(records),
	);
	lib->processor->queue_job(lib->processor, (job_t*)
				callback_job_create((callback_job_cb_t)inband_job, job,
								(callback_job_cleanup_t)inband_job_destroy,
								NULL));
}

/**
 * Close a member's IKE_SA the core no longer needs, once: an answered
 * GSA_REGISTRATION asks again while the first close is pending
 */
static void close_member(private_gikev2_gcks_listener_t *this, u_int id)
{
	member_sa_t *sa;
	ike_sa_id_t *ike_sa_id = NULL;
	bool close = TRUE;

	this->mutex->lock(this->mutex);
	sa = get_sa(this, id, FALSE);
	if (sa)
	{
		close = !sa->closing;
		sa->closing = TRUE;
		if (sa->ike_sa_id)
		{
			ike_sa_id = sa->ike_sa_id->clone(sa->ike_sa_id);
		}
	}
	this->mutex->unlock(this->mutex);
	if (close && ike_sa_id)
	{
		gikev2_close_ike_sa_id(ike_sa_id, CLOSE_DELAY_MS);
	}
	else if (close)
	{
		gikev2_close_ike_sa(id, CLOSE_DELAY_MS);
	}
	DESTROY_IF(ike_sa_id);
}

/**
 * Perform one action of the core (gikev2_gcks_action_cb_t); the core calls
 * this for its actions in order, one thread at a time
 */
static void act(private_gikev2_gcks_listener_t *this,
				const gikev2_gcks_action_t *action, const uint8_t *data,
				size_t len)
{
	switch (action->kind)
	{
		case GIKEV2_GCKS_ACTION_MULTICAST:
			send_multicast(this, action, chunk_create((u_char*)data, len));
			break;
		case GIKEV2_GCKS_ACTION_CLOSE_IKE_SA:
			/* the unique ID was given as member ID */
			if (action->member_id <= UINT_MAX)
			{
				close_member(this, (u_int)action->member_id);
			}
			break;
		case GIKEV2_GCKS_ACTION_INBAND_REKEY:
			if (action->member_id <= UINT_MAX)
			{
				inband_rekey((u_int)action->member_id,
							 chunk_create((u_char*)data, len));
			}
			break;
		default:
			break;
	}
}

/**
 * Perform the queued actions of the core and re-arm the timer. Any thread
 * may call this: the core hands out the actions in the order it queued
 * them and waits for each to be performed, so GSA_REKEY messages of one
 * Rekey SA leave in Message ID order.
 */
static void drain(private_gikev2_gcks_listener_t *this)
{
	uint64_t deadline;
	bool has;

	if (gikev2_gcks_drain(this->gcks, (gikev2_gcks_action_cb_t)act,
						  this) != GIKEV2_OK)
	{
		DBG1(DBG_IKE, "gikev2: performing GCKS actions failed: %s",
			 gikev2_last_error());
	}
	if (gikev2_gcks_poll_timeout(this->gcks, &has, &deadline) == GIKEV2_OK &&
		has)
	{
		gikev2_timer_arm(this->timer, deadline);
	}
}

/**
 * Timer callback
 */
static void timeout(private_gikev2_gcks_listener_t *this)
{
	if (gikev2_gcks_handle_timeout(this->gcks, gikev2_now_ms()) != GIKEV2_OK)
	{
		DBG1(DBG_IKE, "gikev2: GCKS timeout failed: %s", gikev2_last_error());
	}
	drain(this);
}

/**
 * Check if charon completed the peer's authentication: every round, EAP
 * included, verified and authorized, the IKE_SA established. Only the
 * GSA_AUTH response that completes it may carry group keys.
 */
static bool authenticated(ike_sa_t *ike_sa)
{
	return ike_sa->has_condition(ike_sa, COND_AUTHENTICATED) &&
		   ike_sa->get_state(ike_sa) == IKE_ESTABLISHED;
}

/**
 * The identity of the first authentication round the peer completed, or
 * the one it claims if none
 */
static identification_t *first_identity(ike_sa_t *ike_sa)
{
	enumerator_t *enumerator;
	auth_cfg_t *auth;
	identification_t *id = NULL;

	enumerator = ike_sa->create_auth_cfg_enumerator(ike_sa, FALSE);
	if (enumerator->enumerate(enumerator, &auth))
	{
		id = auth->get(auth, AUTH_RULE_IDENTITY);
	}
	enumerator->destroy(enumerator);
	return id ?: ike_sa->get_other_id(ike_sa);
}

/**
 * Why a GSA_AUTH response ends the exchange without authentication, NULL
 * if it does not (it continues with another round or EAP message)
 */
static const char *auth_failure(message_t *message, char *buf, size_t len)
{
	enumerator_t *enumerator;
	payload_t *payload;
	notify_type_t type;
	const char *why = NULL;

	enumerator = message->create_payload_enumerator(message);
	while (!why && enumerator->enumerate(enumerator, &payload))
	{
		switch (payload->get_type(payload))
		{
			case PLV2_NOTIFY:
				type = ((notify_payload_t*)payload)->get_notify_type(
												(notify_payload_t*)payload);
				if (type < 16384)
				{
					snprintf(buf, len, "%N", notify_type_names, type);
					why = buf;
				}
				break;
			case PLV2_EAP:
				if (((eap_payload_t*)payload)->get_code(
										(eap_payload_t*)payload) == EAP_FAILURE)
				{
					why = "EAP failure";
				}
				break;
			default:
				break;
		}
	}
	enumerator->destroy(enumerator);
	return why;
}

/**
 * Let the core answer a registration request, adding its records to the
 * plain response
 */
static void respond(private_gikev2_gcks_listener_t *this, ike_sa_t *ike_sa,
					uint8_t exchange, char *name, chunk_t request,
					chunk_t sk_d, message_t *message)
{
	chunk_t response;
	uint16_t prf = 0, kwa = 0, refused;
	u_int id = ike_sa->get_unique_id(ike_sa);
	gikev2_error_t err;
	gikev2_endpoint_t peer;
	char identity[BUF_LEN] = "", why[BUF_LEN], **ids;
	size_t len, pos = 0;
	int count, i;

	gikev2_ike_algorithms(ike_sa, &prf, &kwa);
	if (!kwa)
	{	/* RFC 9838 4.5.4 names no notify for this: NO_PROPOSAL_CHOSEN tells
		 * the GM to offer a KWA in IKE_SA_INIT */
		DBG1(DBG_IKE, "gikev2: refusing %s of '%Y' on IKE_SA %s[%u] with %N: "
			 "IKE_SA_INIT negotiated no Key Wrap Algorithm", name,
			 ike_sa->get_other_eap_id(ike_sa), ike_sa->get_name(ike_sa), id,
			 notify_type_names, NO_PROPOSAL_CHOSEN);
		message->add_notify(message, FALSE, NO_PROPOSAL_CHOSEN, chunk_empty);
		return;
	}
	/* authorized by what charon authenticated, never by a claim */
	ids = gikev2_authenticated_identities(ike_sa, &count);
	for (i = 0; i < count && pos < sizeof(identity); i++)
	{
		pos += snprintf(identity + pos, sizeof(identity) - pos, "%s%s",
						i ? "', '" : "", ids[i]);
	}
	/* a sender's per-sender SAs name the address it registers from */
	peer = gikev2_endpoint_from_host(ike_sa->get_other_host(ike_sa));
	len = 4096;
	response = chunk_alloc(len);
	err = gikev2_gcks_registration(this->gcks, gikev2_now_ms(), id,
								   (const char**)ids, count, &peer, exchange,
								   request.ptr, request.len, sk_d.ptr,
								   sk_d.len, prf, kwa, response.ptr, &len);
	if (err == GIKEV2_ERR_BUFFER_TOO_SMALL)
	{
		chunk_clear(&response);
		response = chunk_alloc(len);
		err = gikev2_gcks_registration(this->gcks, gikev2_now_ms(), id,
								(const char**)ids, count, &peer, exchange,
								request.ptr, request.len, sk_d.ptr, sk_d.len,
								prf, kwa, response.ptr, &len);
	}
	snprintf(why, sizeof(why), "%s", gikev2_last_refusal());
	gikev2_identities_free(ids, count);
	if (err == GIKEV2_OK || (err == GIKEV2_ERR_DECODE && len))
	{
		response.len = len;
		refused = gikev2_records_error(response);
		if (err != GIKEV2_OK)
		{	/* one line per request: the refusal is the malformation's */
			DBG1(DBG_IKE, "gikev2: %s request of '%s' malformed, answering "
				 "with %N: %s", name, identity, notify_type_names, refused,
				 gikev2_last_error());
		}
		else if (!response.len)
		{	/* Figure 8: IDg and N(REGISTRATION_FAILED) */
			DBG1(DBG_IKE, "gikev2: member '%s' of IKE_SA %s[%u] left its "
				 "group with %s, removed from it", identity,
				 ike_sa->get_name(ike_sa), id, name);
		}
		else if (refused)
		{
			DBG1(DBG_IKE, "gikev2: refusing member '%s' of IKE_SA %s[%u] "
				 "with %N: %s", identity, ike_sa->get_name(ike_sa), id,
				 notify_type_names, refused, why);
		}
		else
		{
			DBG1(DBG_IKE, "gikev2: registered member '%s' of IKE_SA %s[%u] "
				 "in %s (PRF %N, KWA %N), sending GSA and KD", identity,
				 ike_sa->get_name(ike_sa), id, name,
				 transform_get_enum_names(PSEUDO_RANDOM_FUNCTION), prf,
				 transform_get_enum_names(KEY_WRAP_ALGORITHM), kwa);
		}
		if (!gikev2_records_to_message(message, response))
		{
			DBG1(DBG_IKE, "gikev2: core returned malformed records");
		}
	}
	else
	{
		DBG1(DBG_IKE, "gikev2: answering %s of '%s' failed: %s",
			 name, identity, gikev2_last_error());
	}
	chunk_clear(&response);
	drain(this);
}

/**
 * Answer a GSA_AUTH request in the plain response
 */
static void answer(private_gikev2_gcks_listener_t *this, ike_sa_t *ike_sa,
				   message_t *message)
{
	member_sa_t *sa;
	chunk_t request = chunk_empty, sk_d = chunk_empty;
	u_int id = ike_sa->get_unique_id(ike_sa);
	const char *failed = NULL;
	char buf[64];
	bool done, pending;

	done = authenticated(ike_sa);
	if (!done)
	{
		failed = auth_failure(message, buf, sizeof(buf));
	}
	this->mutex->lock(this->mutex);
	sa = get_sa(this, id, FALSE);
	pending = sa && sa->request.len;
	if (pending && (done || failed))
	{	/* kept across EAP messages and rounds until one of these */
		request = sa->request;
		sa->request = chunk_empty;
	}
	this->mutex->unlock(this->mutex);
	if (!request.len)
	{	/* no IDg (not a registration), or authentication continues */
		if (pending)
		{
			DBG2(DBG_IKE, "gikev2: GSA_AUTH of IKE_SA %s[%u] not authenticated "
				 "yet, group keys withheld", ike_sa->get_name(ike_sa), id);
		}
		chunk_clear(&sk_d);
		return;
	}
	if (failed)
	{	/* named by the first round it completed, else its claim */
		DBG1(DBG_IKE, "gikev2: GSA_AUTH of '%Y' (%H) on IKE_SA %s[%u] failed "
			 "authentication (%s), no group keys, not a member",
			 first_identity(ike_sa), ike_sa->get_other_host(ike_sa),
			 ike_sa->get_name(ike_sa), id, failed);
	}
	else
	{	/* the SK_d in force now: after a PPK replaced it (RFC 8784) */
		sk_d = gikev2_sk_d(ike_sa);
		respond(this, ike_sa, GSA_AUTH, "GSA_AUTH", request, sk_d, message);
	}
	chunk_free(&request);
	chunk_clear(&sk_d);
}

/**
 * GSA_REGISTRATION responder task: a member on an established IKE_SA
 * registers for another group
 */
typedef struct {

	/**
	 * Implements task_t
	 */
	task_t task;

	/**
	 * GCKS listener
	 */
	private_gikev2_gcks_listener_t *gcks;

	/**
	 * IKE_SA the task runs on
	 */
	ike_sa_t *ike_sa;

	/**
	 * Payload records of the request
	 */
	chunk_t request;

} registration_task_t;

METHOD(task_t, registration_process_r, status_t,
	registration_task_t *this, message_t *message)
{
	chunk_free(&this->request);
	if (message->get_payload(message, PLV2_IDG))
	{
		this->request = gikev2_records_from_message(message, TRUE);
	}
	return NEED_MORE;
}

METHOD(task_t, registration_build_r, status_t,
	registration_task_t *this, message_t *message)
{
	chunk_t sk_d;

	/* the SK_d in force now: after a PPK, after the IKE_SA was rekeyed */
	sk_d = gikev2_sk_d(this->ike_sa);
	if (!this->request.len || !sk_d.len)
	{
		DBG1(DBG_IKE, "gikev2: GSA_REGISTRATION on IKE_SA %s[%u] without "
			 "IDg or keys, answering with INVALID_SYNTAX",
			 this->ike_sa->get_name(this->ike_sa),
			 this->ike_sa->get_unique_id(this->ike_sa));
		message->add_notify(message, FALSE, INVALID_SYNTAX, chunk_empty);
	}
	else
	{
		respond(this->gcks, this->ike_sa, GSA_REGISTRATION,
				"GSA_REGISTRATION", this->request, sk_d, message);
	}
	chunk_clear(&sk_d);
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
	chunk_free(&this->request);
	free(this);
}

/**
 * Create a GSA_REGISTRATION responder task (exchange_constructor_t)
 */
static task_t *registration_responder(private_gikev2_gcks_listener_t *this,
									  ike_sa_t *ike_sa, message_t *request)
{
	registration_task_t *task;

	INIT(task,
		.task = {
			.build = _registration_build_r,
			.process = _registration_process_r,
			.get_type = _registration_get_type,
			.migrate = _registration_migrate,
			.destroy = _registration_destroy,
		},
		.gcks = this,
		.ike_sa = ike_sa,
	);
	return &task->task;
}

METHOD(listener_t, message_hook, bool,
	private_gikev2_gcks_listener_t *this, ike_sa_t *ike_sa,
	message_t *message, bool incoming, bool plain)
{
	member_sa_t *sa;
	chunk_t records;

	if (!plain || message->get_major_version(message) != IKEV2_MAJOR_VERSION ||
		message->get_wire_exchange_type(message) != GSA_AUTH)
	{
		return TRUE;
	}
	if (incoming && message->get_request(message))
	{
		if (!message->get_payload(message, PLV2_IDG))
		{
			return TRUE;
		}
		records = gikev2_records_from_message(message, TRUE);
		this->mutex->lock(this->mutex);
		sa = get_sa(this, ike_sa->get_unique_id(ike_sa), TRUE);
		chunk_free(&sa->request);
		sa->request = records;
		this->mutex->unlock(this->mutex);
	}
	else if (!incoming && !message->get_request(message))
	{
		answer(this, ike_sa, message);
	}
	return TRUE;
}

METHOD(listener_t, ike_derived_keys, bool,
	private_gikev2_gcks_listener_t *this, ike_sa_t *ike_sa, chunk_t sk_d,
	chunk_t sk_ai, chunk_t sk_ar, chunk_t sk_ei, chunk_t sk_er, chunk_t sk_pi,
	chunk_t sk_pr)
{
	member_sa_t *sa;

	if (ike_sa->has_condition(ike_sa, COND_ORIGINAL_INITIATOR))
	{	/* a GCKS is the responder of registrations */
		return TRUE;
	}
	/* SK_d itself is read when it is used (gikev2_sk_d()): a PPK replaces
	 * it later without this event */
	this->mutex->lock(this->mutex);
	sa = get_sa(this, ike_sa->get_unique_id(ike_sa), TRUE);
	DESTROY_IF(sa->ike_sa_id);
	sa->ike_sa_id = ike_sa->get_id(ike_sa)->clone(ike_sa->get_id(ike_sa));
	this->mutex->unlock(this->mutex);
	return TRUE;
}

METHOD(listener_t, ike_rekey, bool,
	private_gikev2_gcks_listener_t *this, ike_sa_t *old, ike_sa_t *new)
{
	member_sa_t *sa;
	chunk_t sk_d;
	uint16_t prf = 0, kwa = 0;
	u_int old_id = old->get_unique_id(old), new_id = new->get_unique_id(new);

	if (old->has_condition(old, COND_ORIGINAL_INITIATOR))
	{	/* a GCKS is the responder of registrations */
		return TRUE;
	}
	this->mutex->lock(this->mutex);
	sa = this->sas->remove(this->sas, (void*)(uintptr_t)old_id);
	if (sa && !this->sas->get(this->sas, (void*)(uintptr_t)new_id))
	{
		DESTROY_IF(sa->ike_sa_id);
		sa->ike_sa_id = new->get_id(new)->clone(new->get_id(new));
		this->sas->put(this->sas, (void*)(uintptr_t)new_id, sa);
		sa = NULL;
	}
	this->mutex->unlock(this->mutex);
	if (sa)
	{
		member_sa_destroy(sa);
	}
	/* inband rekeys go over the new IKE_SA, under its own GSK_w */
	sk_d = gikev2_sk_d(new);
	gikev2_ike_algorithms(new, &prf, &kwa);
	if (gikev2_gcks_ike_sa_rekeyed(this->gcks, gikev2_now_ms(), old_id, new_id,
								   sk_d.ptr, sk_d.len, prf, kwa) != GIKEV2_OK)
	{
		DBG1(DBG_IKE, "gikev2: IKE_SA %s[%u] rekeyed into [%u], its member "
			 "not moved: %s", old->get_name(old), old_id, new_id,
			 gikev2_last_error());
	}
	chunk_clear(&sk_d);
	drain(this);
	return TRUE;
}

METHOD(listener_t, ike_updown, bool,
	private_gikev2_gcks_listener_t *this, ike_sa_t *ike_sa, bool up)
{
	member_sa_t *sa;
	u_int id = ike_sa->get_unique_id(ike_sa);

	if (!up)
	{
		this->mutex->lock(this->mutex);
		sa = this->sas->remove(this->sas, (void*)(uintptr_t)id);
		this->mutex->unlock(this->mutex);
		if (sa)
		{
			member_sa_destroy(sa);
			gikev2_gcks_ike_sa_down(this->gcks, gikev2_now_ms(), id);
			drain(this);
		}
	}
	return TRUE;
}

METHOD(listener_t, ike_state_change, bool,
	private_gikev2_gcks_listener_t *this, ike_sa_t *ike_sa,
	ike_sa_state_t state)
{
	member_sa_t *sa;

	if (state == IKE_DESTROYING)
	{	/* also for IKE_SAs that never came up */
		this->mutex->lock(this->mutex);
		sa = this->sas->remove(this->sas,
							   (void*)(uintptr_t)ike_sa->get_unique_id(ike_sa));
		this->mutex->unlock(this->mutex);
		if (sa)
		{
			member_sa_destroy(sa);
		}
	}
	return TRUE;
}

METHOD(gikev2_gcks_listener_t, status, char*,
	private_gikev2_gcks_listener_t *this)
{
	gikev2_error_t err;
	char *text;
	size_t len = 4096;

	text = malloc(len);
	err = gikev2_gcks_status(this->gcks, gikev2_now_ms(), text, &len);
	if (err == GIKEV2_ERR_BUFFER_TOO_SMALL)
	{	/* members may join meanwhile, leave room */
		len += 4096;
		text = realloc(text, len);
		err = gikev2_gcks_status(this->gcks, gikev2_now_ms(), text, &len);
	}
	if (err != GIKEV2_OK)
	{
		DBG1(DBG_CFG, "gikev2: GCKS status failed: %s", gikev2_last_error());
		free(text);
		return NULL;
	}
	return text;
}

METHOD(gikev2_gcks_listener_t, rekey, gikev2_error_t,
	private_gikev2_gcks_listener_t *this, char *group, bool kek)
{
	gikev2_error_t err;

	if (kek)
	{
		err = gikev2_gcks_rekey_kek(this->gcks, gikev2_now_ms(), group);
	}
	else
	{
		err = gikev2_gcks_rekey(this->gcks, gikev2_now_ms(), group);
	}
	if (err == GIKEV2_OK)
	{	/* as after the timer: send what the rekey queued */
		drain(this);
	}
	return err;
}

METHOD(gikev2_gcks_listener_t, readmit, gikev2_error_t,
	private_gikev2_gcks_listener_t *this, char *group, char *member)
{
	return gikev2_gcks_readmit(this->gcks, group, member);
}

METHOD(gikev2_gcks_listener_t, exclude, gikev2_error_t,
	private_gikev2_gcks_listener_t *this, char *group, char *member,
	uint64_t *id)
{
	gikev2_error_t err;

	err = gikev2_gcks_find_member(this->gcks, group, member, id);
	if (err == GIKEV2_OK)
	{
		err = gikev2_gcks_exclude(this->gcks, gikev2_now_ms(), group, *id);
	}
	if (err == GIKEV2_OK)
	{
		drain(this);
	}
	return err;
}

static void group_cfg_destroy(group_cfg_t *cfg);

METHOD(gikev2_gcks_listener_t, destroy, void,
	private_gikev2_gcks_listener_t *this)
{
	charon->exchanges->remove_exchange(charon->exchanges,
						(exchange_constructor_t)registration_responder, this);
	gikev2_timer_destroy(this->timer);
	this->sas->destroy_function(this->sas, (void*)member_sa_destroy);
	this->groups->destroy_function(this->groups, (void*)group_cfg_destroy);
	this->mutex->destroy(this->mutex);
	this->send_lock->destroy(this->send_lock);
	this->config->destroy(this->config);
	gikev2_gcks_destroy(this->gcks);
	free(this->state_dir);
	if (this->fd >= 0)
	{
		close(this->fd);
	}
	free(this);
}

#ifndef SWANCTLDIR
#error SWANCTLDIR, the swanctl directory (e.g. /etc/swanctl), is not defined
#endif

/**
 * Collect the settings of a group section, NULL if it has none
 */
static group_cfg_t *group_cfg_create(char *name)
{
	group_cfg_t *cfg;
	char section[BUF_LEN];
	int i;

	INIT(cfg,
		.name = strdup(name),
	);
	snprintf(section, sizeof(section), "%s.plugins.gikev2.groups.%s",
			 lib->ns, name);
	cfg->count = gikev2_settings_collect(section, NULL, &cfg->keys,
										 &cfg->values);
	gikev2_settings_resolve(cfg->keys, cfg->values, cfg->count, "rekey.key",
							SWANCTLDIR "/private");
	for (i = 0; i < cfg->count; i++)
	{
		if (streq(cfg->keys[i], "id"))
		{
			cfg->id = strdup(cfg->values[i]);
		}
	}
	return cfg;
}

/**
 * Check if two groups have the same settings, in any order
 */
static bool group_cfg_equals(group_cfg_t *a, group_cfg_t *b)
{
	return gikev2_settings_equal(a->keys, a->values, a->count,
								 b->keys, b->values, b->count);
}

/**
 * Path of a group's state file in state_dir
 */
static void state_path(char *state_dir, group_cfg_t *cfg, char *buf,
					   size_t len)
{
	snprintf(buf, len, "%s/%s.state", state_dir, cfg->name);
}

/**
 * Start serving a group in a core GCKS, logging errors as
 * "section: key: reason". With a state_dir, the group continues from its
 * state file there, or starts afresh and creates it; a state file that is
 * corrupt, from another version or for another configuration of the group
 * is refused (and left untouched)
 */
static bool group_cfg_add(group_cfg_t *cfg, gikev2_gcks_t *gcks,
						  char *state_dir)
{
	gikev2_error_t err;
	char path[PATH_MAX] = "";
	bool restored = FALSE;

	if (!state_dir)
	{
		err = gikev2_gcks_add_group(gcks, gikev2_now_ms(),
									(const char *const *)cfg->keys,
									(const char *const *)cfg->values,
									cfg->count);
	}
	else
	{
		state_path(state_dir, cfg, path, sizeof(path));
		err = gikev2_gcks_add_group_state(gcks, gikev2_now_ms(),
									(const char *const *)cfg->keys,
									(const char *const *)cfg->values,
									cfg->count, path, &restored);
	}
	switch (err)
	{
		case GIKEV2_OK:
			if (restored)
			{
				DBG1(DBG_CFG, "gikev2: group '%s' restored from %s, its "
					 "members keep their keys", cfg->name, path);
			}
			return TRUE;
		case GIKEV2_ERR_STATE_FILE:
			DBG1(DBG_CFG, "gikev2: %s.plugins.gikev2.groups.%s: %s; move it "
				 "away to serve the group afresh (its members then register "
				 "again)", lib->ns, cfg->name, gikev2_last_error());
			return FALSE;
		default:
			DBG1(DBG_CFG, "gikev2: %s.plugins.gikev2.groups.%s: %s", lib->ns,
				 cfg->name, gikev2_last_error());
			return FALSE;
	}
}

/**
 * Remove the state file of a group no longer served as it was
 */
static void state_unlink(private_gikev2_gcks_listener_t *this,
						 group_cfg_t *cfg)
{
	char path[PATH_MAX];

	if (this->state_dir)
	{
		state_path(this->state_dir, cfg, path, sizeof(path));
		if (unlink(path) < 0 && errno != ENOENT)
		{
			DBG1(DBG_CFG, "gikev2: removing state file %s failed: %s", path,
				 strerror(errno));
		}
	}
}

/**
 * Check a group's settings without touching the groups served: in a GCKS
 * of its own, which reads the rekey.key file as serving it would
 */
static bool group_cfg_check(group_cfg_t *cfg)
{
	gikev2_gcks_t *scratch;
	bool ok;

	if (gikev2_gcks_new(&scratch) != GIKEV2_OK)
	{
		DBG1(DBG_CFG, "gikev2: creating GCKS failed: %s",
			 gikev2_last_error());
		return FALSE;
	}
	ok = group_cfg_add(cfg, scratch, NULL);
	gikev2_gcks_destroy(scratch);
	return ok;
}

/**
 * Stop serving a group
 */
static void group_cfg_remove(private_gikev2_gcks_listener_t *this,
							 group_cfg_t *cfg)
{
	if (cfg->id &&
		gikev2_gcks_remove_group(this->gcks, cfg->id) != GIKEV2_OK)
	{
		DBG1(DBG_CFG, "gikev2: removing group '%s' failed: %s", cfg->name,
			 gikev2_last_error());
	}
}

/**
 * Destroy the settings of a group
 */
static void group_cfg_destroy(group_cfg_t *cfg)
{
	gikev2_settings_free(cfg->keys, cfg->values, cfg->count);
	free(cfg->name);
	free(cfg->id);
	free(cfg);
}

/**
 * Add the configured groups to the core, FALSE on errors; a relative
 * rekey.key is in swanctl's private key directory
 */
static bool add_groups(private_gikev2_gcks_listener_t *this, int *count)
{
	enumerator_t *enumerator;
	group_cfg_t *cfg;
	char *name;
	bool ok = TRUE;

	*count = 0;
	enumerator = lib->settings->create_section_enumerator(lib->settings,
										"%s.plugins.gikev2.groups", lib->ns);
	while (enumerator->enumerate(enumerator, &name))
	{
		cfg = group_cfg_create(name);
		if (group_cfg_add(cfg, this->gcks, this->state_dir))
		{
			DBG1(DBG_CFG, "gikev2: serving group '%s' as GCKS", name);
			this->groups->insert_last(this->groups, cfg);
			(*count)++;
		}
		else
		{
			group_cfg_destroy(cfg);
			ok = FALSE;
		}
	}
	enumerator->destroy(enumerator);
	return ok;
}

METHOD(gikev2_gcks_listener_t, reload, int,
	private_gikev2_gcks_listener_t *this)
{
	enumerator_t *enumerator;
	linked_list_t *groups;
	group_cfg_t *cfg, *old;
	char *name;
	int count = 0;

	this->config->lock(this->config);
	groups = linked_list_create();
	enumerator = lib->settings->create_section_enumerator(lib->settings,
										"%s.plugins.gikev2.groups", lib->ns);
	while (enumerator->enumerate(enumerator, &name))
	{
		cfg = group_cfg_create(name);
		old = gikev2_list_take(this->groups, offsetof(group_cfg_t, name), name);
		if (old && group_cfg_equals(old, cfg))
		{	/* unchanged: same keys, SAs and members */
			group_cfg_destroy(cfg);
			groups->insert_last(groups, old);
			continue;
		}
		if (!group_cfg_check(cfg))
		{
			if (old)
			{
				DBG1(DBG_CFG, "gikev2: group '%s' keeps its previous "
					 "configuration", name);
				groups->insert_last(groups, old);
			}
			else
			{
				DBG1(DBG_CFG, "gikev2: group '%s' not served", name);
			}
			group_cfg_destroy(cfg);
			continue;
		}
		if (old)
		{	/* served with new keys: its state file is obsolete */
			group_cfg_remove(this, old);
			state_unlink(this, old);
		}
		if (group_cfg_add(cfg, this->gcks, this->state_dir))
		{
			if (old)
			{
				DBG1(DBG_CFG, "gikev2: group '%s' changed, serving it with "
					 "new keys as GCKS: its members must register again",
					 name);
				group_cfg_destroy(old);
			}
			else
			{
				DBG1(DBG_CFG, "gikev2: serving group '%s' as GCKS", name);
			}
			groups->insert_last(groups, cfg);
		}
		else
		{	/* e.g. an id served by another section */
			group_cfg_destroy(cfg);
			if (old && group_cfg_add(old, this->gcks, this->state_dir))
			{
				DBG1(DBG_CFG, "gikev2: group '%s' keeps its previous "
					 "configuration, with new keys: its members must "
					 "register again", name);
				groups->insert_last(groups, old);
			}
			else if (old)
			{
				group_cfg_destroy(old);
			}
		}
	}
	enumerator->destroy(enumerator);

	while (this->groups->remove_first(this->groups, (void**)&old) == SUCCESS)
	{
		group_cfg_remove(this, old);
		state_unlink(this, old);
		DBG1(DBG_CFG, "gikev2: group '%s' no longer configured, not served "
			 "anymore: its members and keys are dropped", old->name);
		group_cfg_destroy(old);
	}
	this->groups->destroy(this->groups);
	this->groups = groups;
	count = groups->get_count(groups);
	this->config->unlock(this->config);
	drain(this);
	return count;
}

/*
 * Described in header
 */
gikev2_gcks_listener_t *gikev2_gcks_listener_create(int *count)
{
	private_gikev2_gcks_listener_t *this;

	INIT(this,
		.public = {
			.listener = {
				.message = _message_hook,
				.ike_derived_keys = _ike_derived_keys,
				.ike_updown = _ike_updown,
				.ike_rekey = _ike_rekey,
				.ike_state_change = _ike_state_change,
			},
			.status = _status,
			.rekey = _rekey,
			.exclude = _exclude,
			.readmit = _readmit,
			.reload = _reload,
			.destroy = _destroy,
		},
		.sas = hashtable_create(hashtable_hash_ptr, hashtable_equals_ptr, 8),
		.mutex = mutex_create(MUTEX_TYPE_DEFAULT),
		.send_lock = mutex_create(MUTEX_TYPE_DEFAULT),
		.groups = linked_list_create(),
		.config = mutex_create(MUTEX_TYPE_DEFAULT),
		.fd = -1,
	);
	this->timer = gikev2_timer_create((gikev2_timer_cb_t)timeout, this);
	this->state_dir = lib->settings->get_str(lib->settings,
								"%s.plugins.gikev2.state_dir", NULL, lib->ns);
	if (this->state_dir && !*this->state_dir)
	{
		this->state_dir = NULL;
	}
	this->state_dir = strdupnull(this->state_dir);
	if (this->state_dir)
	{
		DBG1(DBG_CFG, "gikev2: GCKS keeps the groups' state in %s",
			 this->state_dir);
	}

	if (gikev2_gcks_new(&this->gcks) != GIKEV2_OK)
	{
		DBG1(DBG_CFG, "gikev2: creating GCKS failed: %s", gikev2_last_error());
		destroy(this);
		return NULL;
	}
	if (!add_groups(this, count))
	{
		destroy(this);
		return NULL;
	}
	charon->exchanges->add_exchange(charon->exchanges, GSA_REGISTRATION,
						(exchange_constructor_t)registration_responder, this);
	drain(this);
	return &this->public;
}
