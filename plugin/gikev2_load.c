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

#include <daemon.h>

typedef struct private_gikev2_load_listener_t private_gikev2_load_listener_t;

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
	 * GM core handle all registrations share (thread-safe)
	 */
	gikev2_gm_t *gm;

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
 * Count the GCKS's answer to a GSA_AUTH request
 */
static void count_response(private_gikev2_load_listener_t *this,
						   ike_sa_t *ike_sa, message_t *message)
{
	chunk_t records;
	u_int registered, refused;
	bool ok;

	records = gikev2_records_from_message(message, FALSE);
	ok = records.len && !gikev2_records_error(records);
	chunk_free(&records);
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
	peer_cfg_t *peer_cfg;

	if (!plain || message->get_major_version(message) != IKEV2_MAJOR_VERSION ||
		!ike_sa->has_condition(ike_sa, COND_ORIGINAL_INITIATOR))
	{
		return TRUE;
	}
	peer_cfg = ike_sa->get_peer_cfg(ike_sa);
	if (!peer_cfg || !streq(peer_cfg->get_name(peer_cfg), this->config))
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

METHOD(gikev2_load_listener_t, destroy, void,
	private_gikev2_load_listener_t *this)
{
	DBG1(DBG_IKE, "gikev2: load test: %u registered, %u refused",
		 this->registered, this->refused);
	gikev2_gm_destroy(this->gm);
	free(this->config);
	free(this);
}

/*
 * Described in header
 */
gikev2_load_listener_t *gikev2_load_listener_create(bool *error)
{
	private_gikev2_load_listener_t *this;
	char section[BUF_LEN], **keys, **values, *config;
	int count;

	snprintf(section, sizeof(section), "%s.plugins.gikev2.load_test", lib->ns);
	count = gikev2_settings_collect(section, "connection", &keys, &values);
	if (!count)
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
			},
			.destroy = _destroy,
		},
		.config = strdup(config),
	);
	if (gikev2_gm_new((const char *const *)keys, (const char *const *)values,
					  count, &this->gm) != GIKEV2_OK)
	{
		DBG1(DBG_CFG, "gikev2: %s: %s", section, gikev2_last_error());
		gikev2_settings_free(keys, values, count);
		free(this->config);
		free(this);
		*error = TRUE;
		return NULL;
	}
	gikev2_settings_free(keys, values, count);
	DBG1(DBG_CFG, "gikev2: load test: IKE_SAs of '%s' register with "
		 "GSA_AUTH, nothing is installed", this->config);
	return &this->public;
}
