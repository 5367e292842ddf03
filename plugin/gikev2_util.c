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

#include "gikev2_util.h"
#include <sa/ikev2/keymat_v2.h>

#include <encoding/payloads/opaque_payload.h>
#include <encoding/payloads/notify_payload.h>
#include <collections/array.h>
#include <threading/mutex.h>
#include <threading/condvar.h>
#include <threading/thread.h>
#include <processing/jobs/callback_job.h>

/*
 * Described in header
 */
uint64_t gikev2_now_ms()
{
	timeval_t tv;

	time_monotonic(&tv);
	return (uint64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

/**
 * Append one record to a buffer
 */
static void append_record(chunk_t *records, uint8_t type, chunk_t body)
{
	uint8_t hdr[GIKEV2_RECORD_HEADER_LEN];

	if (body.len > 0xffff)
	{
		return;
	}
	hdr[0] = type;
	hdr[1] = 0;
	htoun16(&hdr[2], body.len);
	*records = chunk_cat("mcc", *records, chunk_from_thing(hdr), body);
}

/*
 * Described in header
 */
chunk_t gikev2_records_from_message(message_t *message, bool with_sa)
{
	enumerator_t *enumerator;
	payload_t *payload;
	notify_payload_t *notify;
	chunk_t records = chunk_empty, body, spi, data;
	uint8_t hdr[4];

	enumerator = message->create_payload_enumerator(message);
	while (enumerator->enumerate(enumerator, &payload))
	{
		switch (payload->get_type(payload))
		{
			case PLV2_SECURITY_ASSOCIATION:
				if (!with_sa)
				{
					continue;
				}
				/* fall-through, opaque in GSA_AUTH requests */
			case PLV2_IDG:
			case PLV2_GSA:
			case PLV2_KD:
				append_record(&records, payload->get_type(payload),
						((opaque_payload_t*)payload)->get_data(
												(opaque_payload_t*)payload));
				break;
			case PLV2_NOTIFY:
				notify = (notify_payload_t*)payload;
				spi = notify->get_spi_data(notify);
				data = notify->get_notification_data(notify);
				hdr[0] = notify->get_protocol_id(notify);
				hdr[1] = spi.len;
				htoun16(&hdr[2], notify->get_notify_type(notify));
				body = chunk_cat("ccc", chunk_from_thing(hdr), spi, data);
				append_record(&records, PLV2_NOTIFY, body);
				chunk_free(&body);
				break;
			default:
				break;
		}
	}
	enumerator->destroy(enumerator);
	return records;
}

/**
 * Iterate over records, returns FALSE at the end or on malformed input
 */
static bool next_record(chunk_t *records, uint8_t *type, chunk_t *body,
						bool *malformed)
{
	uint16_t len;

	*malformed = FALSE;
	if (!records->len)
	{
		return FALSE;
	}
	if (records->len < GIKEV2_RECORD_HEADER_LEN)
	{
		*malformed = TRUE;
		return FALSE;
	}
	*type = records->ptr[0];
	len = untoh16(&records->ptr[2]);
	if (records->len < GIKEV2_RECORD_HEADER_LEN + len)
	{
		*malformed = TRUE;
		return FALSE;
	}
	*body = chunk_create(records->ptr + GIKEV2_RECORD_HEADER_LEN, len);
	*records = chunk_skip(*records, GIKEV2_RECORD_HEADER_LEN + len);
	return TRUE;
}

/*
 * Described in header
 */
bool gikev2_records_to_message(message_t *message, chunk_t records)
{
	notify_payload_t *notify;
	chunk_t body;
	uint8_t type, spi_len;
	bool malformed;

	while (next_record(&records, &type, &body, &malformed))
	{
		switch (type)
		{
			case PLV2_IDG:
			case PLV2_GSA:
			case PLV2_KD:
			case PLV2_SECURITY_ASSOCIATION:
				message->add_payload(message, (payload_t*)
									 opaque_payload_create_data(type, body));
				break;
			case PLV2_NOTIFY:
				if (body.len < 4 || body.len < 4 + body.ptr[1])
				{
					return FALSE;
				}
				spi_len = body.ptr[1];
				notify = notify_payload_create_from_protocol_and_type(
								PLV2_NOTIFY, body.ptr[0], untoh16(&body.ptr[2]));
				if (spi_len)
				{
					notify->set_spi_data(notify,
										 chunk_create(body.ptr + 4, spi_len));
				}
				if (body.len > 4 + spi_len)
				{
					notify->set_notification_data(notify,
										chunk_skip(body, 4 + spi_len));
				}
				message->add_payload(message, (payload_t*)notify);
				break;
			default:
				DBG1(DBG_IKE, "gikev2: cannot send payload type %d from the "
					 "core, skipped", type);
				break;
		}
	}
	return !malformed;
}

/*
 * Described in header
 */
uint16_t gikev2_records_error(chunk_t records)
{
	chunk_t body;
	uint8_t type;
	uint16_t notify;
	bool malformed;

	while (next_record(&records, &type, &body, &malformed))
	{
		if (type == PLV2_NOTIFY && body.len >= 4)
		{
			notify = untoh16(&body.ptr[2]);
			if (notify < 16384)
			{
				return notify;
			}
		}
	}
	return 0;
}

/**
 * Turn a settings path into a format string: strongSwan's settings treat
 * dots in %s arguments as part of a name, so a path of several sections
 * must be the format itself (with '%' escaped)
 */
static void path_format(char *path, char *buf, size_t len)
{
	size_t i = 0;

	for (; *path && i + 2 < len; path++)
	{
		if (*path == '%')
		{
			buf[i++] = '%';
		}
		buf[i++] = *path;
	}
	buf[i] = '\0';
}

/**
 * Collect settings of a section recursively
 */
static void collect(char *section, char *prefix, char *skip, array_t *keys,
					array_t *values)
{
	enumerator_t *enumerator;
	char *key, *value, *name, sub[BUF_LEN], pre[BUF_LEN], full[BUF_LEN];
	char fmt[2 * BUF_LEN];

	path_format(section, fmt, sizeof(fmt));
	enumerator = lib->settings->create_key_value_enumerator(lib->settings,
															fmt);
	while (enumerator->enumerate(enumerator, &key, &value))
	{
		if (!prefix[0] && skip && streq(key, skip))
		{
			continue;
		}
		snprintf(full, sizeof(full), "%s%s", prefix, key);
		array_insert(keys, ARRAY_TAIL, strdup(full));
		array_insert(values, ARRAY_TAIL, strdup(value ?: ""));
	}
	enumerator->destroy(enumerator);

	enumerator = lib->settings->create_section_enumerator(lib->settings,
														  fmt);
	while (enumerator->enumerate(enumerator, &name))
	{
		snprintf(sub, sizeof(sub), "%s.%s", section, name);
		snprintf(pre, sizeof(pre), "%s%s.", prefix, name);
		collect(sub, pre, skip, keys, values);
	}
	enumerator->destroy(enumerator);
}

/*
 * Described in header
 */
int gikev2_settings_collect(char *section, char *skip, char ***keys,
							char ***values)
{
	array_t *k, *v;
	int count, i;

	k = array_create(0, 0);
	v = array_create(0, 0);
	collect(section, "", skip, k, v);
	count = array_count(k);
	*keys = calloc(count + 1, sizeof(char*));
	*values = calloc(count + 1, sizeof(char*));
	for (i = 0; i < count; i++)
	{
		array_get(k, i, &(*keys)[i]);
		array_get(v, i, &(*values)[i]);
	}
	array_destroy(k);
	array_destroy(v);
	return count;
}

/*
 * Described in header
 */
chunk_t gikev2_sk_d(ike_sa_t *ike_sa)
{
	keymat_v2_t *keymat;
	chunk_t skd = chunk_empty;

	if (ike_sa->get_version(ike_sa) != IKEV2)
	{
		return chunk_empty;
	}
	keymat = (keymat_v2_t*)ike_sa->get_keymat(ike_sa);
	if (!keymat)
	{
		return chunk_empty;
	}
	keymat->get_skd(keymat, &skd);
	return chunk_clone(skd);
}

/*
 * Described in header
 */
char **gikev2_authenticated_identities(ike_sa_t *ike_sa, int *count)
{
	enumerator_t *enumerator;
	auth_cfg_t *auth;
	identification_t *id;
	char **ids = NULL, buf[BUF_LEN];

	*count = 0;
	/* the remote auth_cfgs of completed rounds, added once verified */
	enumerator = ike_sa->create_auth_cfg_enumerator(ike_sa, FALSE);
	while (enumerator->enumerate(enumerator, &auth))
	{
		id = NULL;
		if ((uintptr_t)auth->get(auth, AUTH_RULE_AUTH_CLASS) == AUTH_CLASS_EAP)
		{	/* without an EAP-Identity exchange the method ran for IDi */
			id = auth->get(auth, AUTH_RULE_EAP_IDENTITY);
		}
		if (!id || id->get_type(id) == ID_ANY)
		{
			id = auth->get(auth, AUTH_RULE_IDENTITY);
		}
		if (!id || id->get_type(id) == ID_ANY)
		{
			continue;
		}
		snprintf(buf, sizeof(buf), "%Y", id);
		ids = realloc(ids, sizeof(char*) * (*count + 1));
		ids[(*count)++] = strdup(buf);
	}
	enumerator->destroy(enumerator);
	return ids;
}

/*
 * Described in header
 */
void gikev2_identities_free(char **ids, int count)
{
	int i;

	for (i = 0; i < count; i++)
	{
		free(ids[i]);
	}
	free(ids);
}

/*
 * Described in header
 */
void gikev2_ike_algorithms(ike_sa_t *ike_sa, uint16_t *prf, uint16_t *kwa)
{
	proposal_t *proposal = ike_sa->get_proposal(ike_sa);

	if (proposal)
	{
		proposal->get_algorithm(proposal, PSEUDO_RANDOM_FUNCTION, prf, NULL);
		proposal->get_algorithm(proposal, KEY_WRAP_ALGORITHM, kwa, NULL);
	}
}

/*
 * Described in header
 */
void *gikev2_list_take(linked_list_t *list, size_t name_offset, char *name)
{
	enumerator_t *enumerator;
	void *item, *found = NULL;

	enumerator = list->create_enumerator(list);
	while (enumerator->enumerate(enumerator, &item))
	{
		if (streq(*(char**)(item + name_offset), name))
		{
			list->remove_at(list, enumerator);
			found = item;
			break;
		}
	}
	enumerator->destroy(enumerator);
	return found;
}

/*
 * Described in header
 */
bool gikev2_settings_equal(char **keys_a, char **values_a, int count_a,
						   char **keys_b, char **values_b, int count_b)
{
	int i, j;

	if (count_a != count_b)
	{
		return FALSE;
	}
	for (i = 0; i < count_a; i++)
	{
		for (j = 0; j < count_b; j++)
		{
			if (streq(keys_a[i], keys_b[j]))
			{
				break;
			}
		}
		if (j == count_b || !streq(values_a[i], values_b[j]))
		{
			return FALSE;
		}
	}
	return TRUE;
}

/*
 * Described in header
 */
void gikev2_settings_resolve(char **keys, char **values, int count,
							 char *key, char *dir)
{
	char path[PATH_MAX];
	int i;

	for (i = 0; i < count; i++)
	{
		if (streq(keys[i], key) && values[i][0] && !path_absolute(values[i]) &&
			snprintf(path, sizeof(path), "%s/%s", dir,
					 values[i]) < (int)sizeof(path))
		{
			free(values[i]);
			values[i] = strdup(path);
		}
	}
}

/*
 * Described in header
 */
void gikev2_settings_free(char **keys, char **values, int count)
{
	int i;

	for (i = 0; i < count; i++)
	{
		free(keys[i]);
		free(values[i]);
	}
	free(keys);
	free(values);
}

/*
 * Described in header
 */
gikev2_endpoint_t gikev2_endpoint_from_host(host_t *host)
{
	gikev2_endpoint_t ep = { .family = GIKEV2_FAMILY_NONE };
	chunk_t addr;

	if (host && !host->is_anyaddr(host))
	{
		addr = host->get_address(host);
		if (addr.len == 4 || addr.len == 16)
		{
			ep.family = addr.len == 4 ? GIKEV2_FAMILY_IPV4 : GIKEV2_FAMILY_IPV6;
			memcpy(ep.addr, addr.ptr, addr.len);
			ep.port = host->get_port(host);
		}
	}
	return ep;
}

/*
 * Described in header
 */
host_t *gikev2_host_from_endpoint(const gikev2_endpoint_t *ep)
{
	switch (ep->family)
	{
		case GIKEV2_FAMILY_IPV4:
			return host_create_from_chunk(AF_INET,
									chunk_create((u_char*)ep->addr, 4), ep->port);
		case GIKEV2_FAMILY_IPV6:
			return host_create_from_chunk(AF_INET6,
									chunk_create((u_char*)ep->addr, 16), ep->port);
		default:
			return NULL;
	}
}

/*
 * Described in header
 */
traffic_selector_t *gikev2_ts_from_core(gikev2_ts_t *ts)
{
	size_t len;
	ts_type_t type;

	switch (ts->family)
	{
		case GIKEV2_FAMILY_IPV4:
			len = 4;
			type = TS_IPV4_ADDR_RANGE;
			break;
		case GIKEV2_FAMILY_IPV6:
			len = 16;
			type = TS_IPV6_ADDR_RANGE;
			break;
		default:
			return NULL;
	}
	return traffic_selector_create_from_bytes(ts->protocol, type,
							chunk_create(ts->start, len), ts->start_port,
							chunk_create(ts->end, len), ts->end_port);
}

/**
 * Delete a checked out IKE_SA (NULL: gone already) and check it in
 */
static void close_checked_out(ike_sa_t *ike_sa)
{
	if (!ike_sa)
	{
		return;
	}
	DBG1(DBG_IKE, "gikev2: closing IKE_SA %s[%u], G-IKEv2 no longer "
		 "needs it", ike_sa->get_name(ike_sa), ike_sa->get_unique_id(ike_sa));
	if (ike_sa->delete(ike_sa, FALSE) == DESTROY_ME)
	{
		charon->ike_sa_manager->checkin_and_destroy(charon->ike_sa_manager,
													ike_sa);
	}
	else
	{
		charon->ike_sa_manager->checkin(charon->ike_sa_manager, ike_sa);
	}
}

/**
 * Close an IKE_SA (job)
 */
static job_requeue_t close_ike_sa_job(void *data)
{
	close_checked_out(charon->ike_sa_manager->checkout_by_id(
							charon->ike_sa_manager, (uintptr_t)data));
	return JOB_REQUEUE_NONE;
}

/*
 * Described in header
 */
void gikev2_close_ike_sa(u_int id, uint32_t delay_ms)
{
	lib->scheduler->schedule_job_ms(lib->scheduler, (job_t*)
				callback_job_create(close_ike_sa_job, (void*)(uintptr_t)id,
									NULL, NULL), delay_ms);
}

/**
 * Close an IKE_SA by its IKE_SA ID (callback_job_cb_t)
 */
static job_requeue_t close_ike_sa_id_job(ike_sa_id_t *ike_sa_id)
{
	close_checked_out(charon->ike_sa_manager->checkout(charon->ike_sa_manager,
													   ike_sa_id));
	return JOB_REQUEUE_NONE;
}

/**
 * Destroy the IKE_SA ID of a close job (callback_job_cleanup_t)
 */
static void close_ike_sa_id_cleanup(ike_sa_id_t *ike_sa_id)
{
	ike_sa_id->destroy(ike_sa_id);
}

/*
 * Described in header
 */
void gikev2_close_ike_sa_id(ike_sa_id_t *ike_sa_id, uint32_t delay_ms)
{
	lib->scheduler->schedule_job_ms(lib->scheduler, (job_t*)
				callback_job_create(
						(callback_job_cb_t)close_ike_sa_id_job,
						ike_sa_id->clone(ike_sa_id),
						(callback_job_cleanup_t)close_ike_sa_id_cleanup,
						NULL), delay_ms);
}

/**
 * Timer implementation
 */
struct gikev2_timer_t {

	/**
	 * Callback
	 */
	gikev2_timer_cb_t cb;

	/**
	 * Callback data
	 */
	void *data;

	/**
	 * Earliest deadline a job is pending for, 0 if none
	 */
	uint64_t armed;

	/**
	 * TRUE once destroyed, pending jobs do nothing
	 */
	bool dead;

	/**
	 * Callbacks running now, and the thread that started the last one
	 */
	u_int running;
	u_int runner;

	/**
	 * Signaled when a callback returns
	 */
	condvar_t *done;

	/**
	 * References held by the owner and pending jobs
	 */
	refcount_t ref;

	/**
	 * Lock for the above
	 */
	mutex_t *mutex;
};

/**
 * A pending timer job
 */
typedef struct {

	/**
	 * Timer
	 */
	gikev2_timer_t *timer;

	/**
	 * Deadline of this job
	 */
	uint64_t deadline;

} timer_job_t;

/**
 * Drop a reference of a timer
 */
static void timer_put(gikev2_timer_t *timer)
{
	if (ref_put(&timer->ref))
	{
		timer->done->destroy(timer->done);
		timer->mutex->destroy(timer->mutex);
		free(timer);
	}
}

/**
 * Cleanup of a timer job
 */
static void timer_job_destroy(timer_job_t *job)
{
	timer_put(job->timer);
	free(job);
}

/**
 * Run a timer job
 */
static job_requeue_t timer_job_run(timer_job_t *job)
{
	gikev2_timer_t *timer = job->timer;
	bool dead;

	timer->mutex->lock(timer->mutex);
	dead = timer->dead;
	if (timer->armed == job->deadline)
	{
		timer->armed = 0;
	}
	if (!dead)
	{
		timer->running++;
		timer->runner = thread_current_id();
	}
	timer->mutex->unlock(timer->mutex);
	if (!dead)
	{
		timer->cb(timer->data);
		timer->mutex->lock(timer->mutex);
		timer->running--;
		timer->done->broadcast(timer->done);
		timer->mutex->unlock(timer->mutex);
	}
	return JOB_REQUEUE_NONE;
}

/*
 * Described in header
 */
gikev2_timer_t *gikev2_timer_create(gikev2_timer_cb_t cb, void *data)
{
	gikev2_timer_t *this;

	INIT(this,
		.cb = cb,
		.data = data,
		.ref = 1,
		.mutex = mutex_create(MUTEX_TYPE_DEFAULT),
		.done = condvar_create(CONDVAR_TYPE_DEFAULT),
	);
	return this;
}

/*
 * Described in header
 */
void gikev2_timer_arm(gikev2_timer_t *this, uint64_t deadline_ms)
{
	timer_job_t *job;
	uint64_t now = gikev2_now_ms();

	this->mutex->lock(this->mutex);
	if (this->dead || (this->armed && this->armed <= deadline_ms))
	{
		this->mutex->unlock(this->mutex);
		return;
	}
	this->armed = max(deadline_ms, 1);
	INIT(job,
		.timer = this,
		.deadline = this->armed,
	);
	ref_get(&this->ref);
	this->mutex->unlock(this->mutex);
	lib->scheduler->schedule_job_ms(lib->scheduler, (job_t*)
				callback_job_create((callback_job_cb_t)timer_job_run, job,
									(callback_job_cleanup_t)timer_job_destroy,
									NULL),
				deadline_ms > now ? deadline_ms - now : 0);
}

/*
 * Described in header
 */
void gikev2_timer_destroy(gikev2_timer_t *this)
{
	this->mutex->lock(this->mutex);
	this->dead = TRUE;
	/* the callback's data may go once we return; but never wait for a
	 * callback that destroys its own timer */
	while (this->running && this->runner != thread_current_id())
	{
		this->done->wait(this->done, this->mutex);
	}
	this->mutex->unlock(this->mutex);
	timer_put(this);
}
