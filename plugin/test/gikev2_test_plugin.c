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

/*
 * gikev2-test: a listener-only test plugin that proves the doors the
 * project's strongSwan patch series (plugin/patches/) opens, see
 * plugin/test/run-patch-proof.  It is not the G-IKEv2 plugin: payload
 * bodies are fixed strings, not RFC 9838 encodings.
 *
 * Settings (charon.plugins.gikev2-test.*):
 *   role            gm or gcks
 *   group           group ID sent in IDg (ID_KEY_ID)
 *   conns           GM: connections initiated as G-IKEv2 (GSA_AUTH)
 *   sag_conns       GM: connections whose GSA_AUTH request carries an SAg
 *   register_conns  GM: connections that run GSA_REGISTRATION once up
 *   inband_rekey    GCKS: answer a GSA_REGISTRATION with a GSA_INBAND_REKEY
 *
 * Build out of tree against a configured strongSwan tree, e.g.
 *   gcc -shared -fPIC $SWAN_PLUGIN_CFLAGS \
 *       -o libstrongswan-gikev2-test.so gikev2_test_plugin.c
 */

#include <dlfcn.h>
#include <inttypes.h>

#include <daemon.h>
#include <plugins/plugin.h>
#include <collections/hashtable.h>
#include <threading/mutex.h>
#include <crypto/hashers/hasher.h>
#include <encoding/payloads/opaque_payload.h>
#include <processing/jobs/initiate_tasks_job.h>

/**
 * ID_KEY_ID, as in the IDg payload
 */
#define IDG_KEY_ID 11

/**
 * An SAg body as RFC 9838, 4.3 describes it (SPI size 0 in every proposal):
 * an ESP proposal (AES-GCM-16 256) and a GIKE_UPDATE proposal (AES-CBC 256,
 * HMAC-SHA2-256-128, KWA KW_5649_256), both with proposal number 1.  A
 * stock strongSwan SA payload fails to verify ESP proposals without SPI.
 */
static uint8_t sag_body[] = {
	/* proposal 1, more follow, ESP, SPI size 0, 1 transform */
	0x02, 0x00, 0x00, 0x14, 0x01, 0x03, 0x00, 0x01,
		/* ENCR AES_GCM_16, key length 256 */
		0x00, 0x00, 0x00, 0x0c, 0x01, 0x00, 0x00, 0x14, 0x80, 0x0e, 0x01, 0x00,
	/* proposal 1, last, GIKE_UPDATE (6), SPI size 0, 3 transforms */
	0x00, 0x00, 0x00, 0x24, 0x01, 0x06, 0x00, 0x03,
		/* ENCR AES_CBC, key length 256 */
		0x03, 0x00, 0x00, 0x0c, 0x01, 0x00, 0x00, 0x0c, 0x80, 0x0e, 0x01, 0x00,
		/* INTEG HMAC_SHA2_256_128 */
		0x03, 0x00, 0x00, 0x08, 0x03, 0x00, 0x00, 0x0c,
		/* KWA (13) KW_5649_256 */
		0x00, 0x00, 0x00, 0x08, 0x0d, 0x00, 0x00, 0x03,
};

typedef struct private_gikev2_test_plugin_t private_gikev2_test_plugin_t;

/**
 * Listener of the plugin
 */
typedef struct {

	/**
	 * Implements listener_t
	 */
	listener_t public;

	/**
	 * Plugin the listener belongs to
	 */
	private_gikev2_test_plugin_t *plugin;

} test_listener_t;

/**
 * Private data of the test plugin.
 */
struct private_gikev2_test_plugin_t {

	/**
	 * Implements plugin interface
	 */
	plugin_t public;

	/**
	 * Listener on charon's bus
	 */
	test_listener_t listener;

	/**
	 * TRUE if acting as GCKS, FALSE as GM
	 */
	bool gcks;

	/**
	 * Group ID
	 */
	char *group;

	/**
	 * Connections using G-IKEv2 (GM)
	 */
	char *conns;

	/**
	 * Connections sending SAg (GM)
	 */
	char *sag_conns;

	/**
	 * Connections running GSA_REGISTRATION (GM)
	 */
	char *register_conns;

	/**
	 * Answer GSA_REGISTRATION with GSA_INBAND_REKEY (GCKS)
	 */
	bool inband_rekey;

	/**
	 * IDg bodies received in GSA_AUTH requests, unique ID => chunk_t* (GCKS)
	 */
	hashtable_t *groups;

	/**
	 * Lock for groups
	 */
	mutex_t *mutex;
};

/**
 * Check if the IKE_SA's connection is in the given comma separated list
 */
static bool conn_in(ike_sa_t *ike_sa, char *list)
{
	enumerator_t *enumerator;
	peer_cfg_t *peer_cfg;
	char *name;
	bool found = FALSE;

	peer_cfg = ike_sa->get_peer_cfg(ike_sa);
	if (!peer_cfg || !list)
	{
		return FALSE;
	}
	enumerator = enumerator_create_token(list, ",", " ");
	while (enumerator->enumerate(enumerator, &name))
	{
		if (streq(name, peer_cfg->get_name(peer_cfg)))
		{
			found = TRUE;
			break;
		}
	}
	enumerator->destroy(enumerator);
	return found;
}

/**
 * Add an opaque payload with a text body
 */
static void add_text(message_t *message, payload_type_t type, char *fmt,
					 char *arg)
{
	char buf[128];

	snprintf(buf, sizeof(buf), fmt, arg);
	message->add_payload(message, (payload_t*)opaque_payload_create_data(type,
										chunk_from_str(buf)));
}

/**
 * Add an IDg payload for our group
 */
static void add_idg(private_gikev2_test_plugin_t *this, message_t *message)
{
	char buf[128];

	snprintf(buf, sizeof(buf), "%c%c%c%c%s", IDG_KEY_ID, 0, 0, 0,
			 this->group);
	message->add_payload(message, (payload_t*)opaque_payload_create_data(
				PLV2_IDG, chunk_create((u_char*)buf, 4 + strlen(this->group))));
}

/**
 * Get the body of an opaque payload of the given type, chunk_empty if none
 */
static chunk_t get_body(message_t *message, payload_type_t type, bool *found)
{
	opaque_payload_t *opaque;

	opaque = (opaque_payload_t*)message->get_payload(message, type);
	if (found)
	{
		*found = opaque != NULL;
	}
	return opaque ? opaque->get_data(opaque) : chunk_empty;
}

/**
 * Log the GSA and KD payloads of a message
 */
static bool log_gsa_kd(char *who, message_t *message)
{
	chunk_t gsa, kd;
	bool has_gsa, has_kd;

	gsa = get_body(message, PLV2_GSA, &has_gsa);
	kd = get_body(message, PLV2_KD, &has_kd);
	DBG1(DBG_CFG, "gikev2-test: %s: %N %s carries GSA %s '%.*s' and KD %s "
		 "'%.*s'", who, exchange_type_names,
		 message->get_wire_exchange_type(message),
		 message->get_request(message) ? "request" : "response",
		 has_gsa ? "yes" : "no", (int)gsa.len, gsa.ptr,
		 has_kd ? "yes" : "no", (int)kd.len, kd.ptr);
	return has_gsa && has_kd;
}

/**
 * Log the IDg payload of a message, returns its body
 */
static chunk_t log_idg(char *who, message_t *message)
{
	chunk_t idg;
	bool found;

	idg = get_body(message, PLV2_IDG, &found);
	if (found && idg.len >= 4)
	{
		DBG1(DBG_CFG, "gikev2-test: %s: %N request carries IDg type %u "
			 "'%.*s'", who, exchange_type_names,
			 message->get_wire_exchange_type(message), idg.ptr[0],
			 (int)idg.len - 4, idg.ptr + 4);
		return idg;
	}
	DBG1(DBG_CFG, "gikev2-test: %s: %N request without IDg", who,
		 exchange_type_names, message->get_wire_exchange_type(message));
	return chunk_empty;
}

/**
 * Test task for the G-IKEv2 exchanges on an established IKE_SA
 */
typedef struct {

	/**
	 * Implements task_t
	 */
	task_t task;

	/**
	 * Plugin
	 */
	private_gikev2_test_plugin_t *plugin;

	/**
	 * IKE_SA the task runs on
	 */
	ike_sa_t *ike_sa;

} test_task_t;

METHOD(task_t, task_get_type, task_type_t,
	test_task_t *this)
{
	return TASK_PLUGIN_EXCHANGE;
}

METHOD(task_t, task_migrate, void,
	test_task_t *this, ike_sa_t *ike_sa)
{
	this->ike_sa = ike_sa;
}

METHOD(task_t, task_destroy, void,
	test_task_t *this)
{
	free(this);
}

/**
 * Create a test task with the given build/process methods
 */
static task_t *test_task_create(private_gikev2_test_plugin_t *plugin,
								ike_sa_t *ike_sa, void *build, void *process)
{
	test_task_t *this;

	INIT(this,
		.task = {
			.build = build,
			.process = process,
			.get_type = _task_get_type,
			.migrate = _task_migrate,
			.destroy = _task_destroy,
		},
		.plugin = plugin,
		.ike_sa = ike_sa,
	);
	return &this->task;
}

/**
 * Queue a task and trigger its initiation
 */
static void queue_and_initiate(ike_sa_t *ike_sa, task_t *task)
{
	ike_sa->queue_task(ike_sa, task);
	lib->processor->queue_job(lib->processor, (job_t*)
					initiate_tasks_job_create(ike_sa->get_id(ike_sa)));
}

/* GM: GSA_REGISTRATION initiator */

METHOD(task_t, registration_build_i, status_t,
	test_task_t *this, message_t *message)
{
	message->set_exchange_type(message, GSA_REGISTRATION);
	add_idg(this->plugin, message);
	DBG1(DBG_CFG, "gikev2-test: GM: initiating GSA_REGISTRATION for group "
		 "'%s'", this->plugin->group);
	return NEED_MORE;
}

METHOD(task_t, registration_process_i, status_t,
	test_task_t *this, message_t *message)
{
	if (log_gsa_kd("GM", message))
	{
		DBG1(DBG_CFG, "gikev2-test: GM: GSA_REGISTRATION response received");
	}
	return SUCCESS;
}

/* GCKS: GSA_INBAND_REKEY initiator */

METHOD(task_t, inband_rekey_build_i, status_t,
	test_task_t *this, message_t *message)
{
	message->set_exchange_type(message, GSA_INBAND_REKEY);
	add_text(message, PLV2_GSA, "GSA(rekey %s)", this->plugin->group);
	add_text(message, PLV2_KD, "KD(rekey %s)", this->plugin->group);
	DBG1(DBG_CFG, "gikev2-test: GCKS: initiating GSA_INBAND_REKEY");
	return NEED_MORE;
}

METHOD(task_t, inband_rekey_process_i, status_t,
	test_task_t *this, message_t *message)
{
	DBG1(DBG_CFG, "gikev2-test: GCKS: GSA_INBAND_REKEY response received");
	return SUCCESS;
}

/* GCKS: GSA_REGISTRATION responder */

METHOD(task_t, registration_process_r, status_t,
	test_task_t *this, message_t *message)
{
	log_idg("GCKS", message);
	return NEED_MORE;
}

METHOD(task_t, registration_build_r, status_t,
	test_task_t *this, message_t *message)
{
	add_text(message, PLV2_GSA, "GSA(%s)", this->plugin->group);
	add_text(message, PLV2_KD, "KD(%s)", this->plugin->group);
	DBG1(DBG_CFG, "gikev2-test: GCKS: answering GSA_REGISTRATION with GSA "
		 "and KD");
	if (this->plugin->inband_rekey)
	{
		queue_and_initiate(this->ike_sa, test_task_create(this->plugin,
							this->ike_sa, _inband_rekey_build_i,
							_inband_rekey_process_i));
	}
	return SUCCESS;
}

/* GM: GSA_INBAND_REKEY responder */

METHOD(task_t, inband_rekey_process_r, status_t,
	test_task_t *this, message_t *message)
{
	log_gsa_kd("GM", message);
	return NEED_MORE;
}

METHOD(task_t, inband_rekey_build_r, status_t,
	test_task_t *this, message_t *message)
{
	DBG1(DBG_CFG, "gikev2-test: GM: acknowledging GSA_INBAND_REKEY");
	return SUCCESS;
}

/**
 * Constructor of GSA_REGISTRATION responder tasks (GCKS)
 */
static task_t *registration_responder(private_gikev2_test_plugin_t *this,
									  ike_sa_t *ike_sa, message_t *request)
{
	return test_task_create(this, ike_sa, _registration_build_r,
							_registration_process_r);
}

/**
 * Constructor of GSA_INBAND_REKEY responder tasks (GM)
 */
static task_t *inband_rekey_responder(private_gikev2_test_plugin_t *this,
									  ike_sa_t *ike_sa, message_t *request)
{
	return test_task_create(this, ike_sa, _inband_rekey_build_r,
							_inband_rekey_process_r);
}

/**
 * GM side of the message hook
 */
static void gm_message(private_gikev2_test_plugin_t *this, ike_sa_t *ike_sa,
					   message_t *message, bool incoming)
{
	exchange_type_t wire = message->get_wire_exchange_type(message);

	if (!incoming && message->get_request(message) &&
		message->get_exchange_type(message) == IKE_SA_INIT &&
		conn_in(ike_sa, this->conns))
	{
		ike_sa->enable_extension(ike_sa, EXT_GIKEV2);
		DBG1(DBG_CFG, "gikev2-test: GM: G-IKEv2 enabled on IKE_SA %s[%u], "
			 "IKE_AUTH will be GSA_AUTH", ike_sa->get_name(ike_sa),
			 ike_sa->get_unique_id(ike_sa));
	}
	else if (!incoming && message->get_request(message) &&
			 wire == GSA_AUTH &&
			 message->get_payload(message, PLV2_ID_INITIATOR))
	{
		add_idg(this, message);
		if (conn_in(ike_sa, this->sag_conns))
		{
			message->add_payload(message, (payload_t*)
							opaque_payload_create_data(PLV2_SECURITY_ASSOCIATION,
										chunk_create(sag_body, sizeof(sag_body))));
		}
		DBG1(DBG_CFG, "gikev2-test: GM: added IDg '%s'%s to the GSA_AUTH "
			 "request", this->group,
			 conn_in(ike_sa, this->sag_conns) ? " and SAg" : "");
	}
	else if (incoming && !message->get_request(message) && wire == GSA_AUTH)
	{
		if (log_gsa_kd("GM", message))
		{
			DBG1(DBG_CFG, "gikev2-test: GM: registered by GSA_AUTH");
		}
	}
}

/**
 * GCKS side of the message hook
 */
static void gcks_message(private_gikev2_test_plugin_t *this, ike_sa_t *ike_sa,
						 message_t *message, bool incoming)
{
	exchange_type_t wire = message->get_wire_exchange_type(message);
	uintptr_t id = ike_sa->get_unique_id(ike_sa);
	chunk_t idg, sag, *group;
	payload_t *payload;

	if (incoming && message->get_request(message) && wire == GSA_AUTH)
	{
		idg = log_idg("GCKS", message);
		payload = message->get_payload(message, PLV2_SECURITY_ASSOCIATION);
		if (payload)
		{	/* in GSA_AUTH requests, the SA payload is SAg, kept opaque */
			sag = ((opaque_payload_t*)payload)->get_data(
												(opaque_payload_t*)payload);
			DBG1(DBG_CFG, "gikev2-test: GCKS: GSA_AUTH request carries SAg "
				 "(%zu bytes, %s)", sag.len,
				 chunk_equals(sag, chunk_from_thing(sag_body)) ?
				 "as sent" : "modified");
		}
		if (idg.len)
		{
			INIT(group);
			*group = chunk_clone(idg);
			this->mutex->lock(this->mutex);
			group = this->groups->put(this->groups, (void*)id, group);
			this->mutex->unlock(this->mutex);
			if (group)
			{
				chunk_free(group);
				free(group);
			}
		}
	}
	else if (!incoming && !message->get_request(message) && wire == GSA_AUTH)
	{
		this->mutex->lock(this->mutex);
		group = this->groups->remove(this->groups, (void*)id);
		this->mutex->unlock(this->mutex);
		if (group)
		{
			add_text(message, PLV2_GSA, "GSA(%s)", this->group);
			add_text(message, PLV2_KD, "KD(%s)", this->group);
			DBG1(DBG_CFG, "gikev2-test: GCKS: added GSA and KD to the "
				 "GSA_AUTH response (EXT_GIKEV2 %s)",
				 ike_sa->supports_extension(ike_sa, EXT_GIKEV2) ? "set" :
				 "unset");
			chunk_free(group);
			free(group);
		}
	}
}

METHOD(listener_t, message_hook, bool,
	test_listener_t *listener, ike_sa_t *ike_sa, message_t *message,
	bool incoming, bool plain)
{
	private_gikev2_test_plugin_t *this = listener->plugin;
	if (plain && message->get_major_version(message) == IKEV2_MAJOR_VERSION)
	{
		if (this->gcks)
		{
			gcks_message(this, ike_sa, message, incoming);
		}
		else
		{
			gm_message(this, ike_sa, message, incoming);
		}
	}
	return TRUE;
}

METHOD(listener_t, ike_derived_keys, bool,
	test_listener_t *listener, ike_sa_t *ike_sa, chunk_t sk_d,
	chunk_t sk_ai, chunk_t sk_ar, chunk_t sk_ei, chunk_t sk_er, chunk_t sk_pi,
	chunk_t sk_pr)
{
	hasher_t *hasher;
	chunk_t hash = chunk_empty, hex = chunk_empty;

	hasher = lib->crypto->create_hasher(lib->crypto, HASH_SHA256);
	if (hasher && hasher->allocate_hash(hasher, sk_d, &hash))
	{
		hex = chunk_to_hex(chunk_create(hash.ptr, 8), NULL, FALSE);
	}
	DESTROY_IF(hasher);
	DBG1(DBG_CFG, "gikev2-test: SK_d of IKE_SA %.16"PRIx64"_i derived "
		 "(%zu bytes, SHA-256 prefix %.*s)",
		 be64toh(ike_sa->get_id(ike_sa)->get_initiator_spi(ike_sa->get_id(ike_sa))),
		 sk_d.len, (int)hex.len, hex.ptr);
	chunk_free(&hash);
	chunk_free(&hex);
	return TRUE;
}

METHOD(listener_t, ike_updown, bool,
	test_listener_t *listener, ike_sa_t *ike_sa, bool up)
{
	private_gikev2_test_plugin_t *this = listener->plugin;
	proposal_t *proposal;
	uint16_t kwa = 0;

	proposal = ike_sa->get_proposal(ike_sa);
	if (proposal)
	{
		proposal->get_algorithm(proposal, KEY_WRAP_ALGORITHM, &kwa, NULL);
	}
	DBG1(DBG_CFG, "gikev2-test: IKE_SA %s[%u] %s, G-IKEv2 %s, KWA %N",
		 ike_sa->get_name(ike_sa), ike_sa->get_unique_id(ike_sa),
		 up ? "up" : "down",
		 ike_sa->supports_extension(ike_sa, EXT_GIKEV2) ? "yes" : "no",
		 transform_get_enum_names(KEY_WRAP_ALGORITHM), kwa);
	if (up && !this->gcks && conn_in(ike_sa, this->register_conns) &&
		ike_sa->supports_extension(ike_sa, EXT_GIKEV2))
	{
		queue_and_initiate(ike_sa, test_task_create(this, ike_sa,
					_registration_build_i, _registration_process_i));
	}
	return TRUE;
}

METHOD(listener_t, child_updown, bool,
	test_listener_t *listener, ike_sa_t *ike_sa, child_sa_t *child_sa,
	bool up)
{
	DBG1(DBG_CFG, "gikev2-test: CHILD_SA %s{%u} %s on IKE_SA %s[%u]",
		 child_sa->get_name(child_sa), child_sa->get_unique_id(child_sa),
		 up ? "up" : "down", ike_sa->get_name(ike_sa),
		 ike_sa->get_unique_id(ike_sa));
	return TRUE;
}

METHOD(listener_t, alert, bool,
	test_listener_t *listener, ike_sa_t *ike_sa, alert_t alert,
	va_list args)
{
	message_t *message;

	if (alert == ALERT_INVALID_IKE_SPI)
	{
		message = va_arg(args, message_t*);
		if (message->get_exchange_type(message) == GSA_REKEY)
		{	/* only the header is parsed, the body is for the plugin */
			DBG1(DBG_CFG, "gikev2-test: GSA_REKEY from %H (%zu bytes) "
				 "reached the alert hook", message->get_source(message),
				 message->get_packet_data(message).len);
		}
	}
	return TRUE;
}

/**
 * Register/unregister the listener and the exchange handlers
 */
static bool register_cb(private_gikev2_test_plugin_t *this,
						plugin_feature_t *feature, bool reg, void *data)
{
	if (reg)
	{
		charon->bus->add_listener(charon->bus, &this->listener.public);
		if (this->gcks)
		{
			charon->exchanges->add_exchange(charon->exchanges,
						GSA_REGISTRATION, (void*)registration_responder, this);
		}
		else
		{
			charon->exchanges->add_exchange(charon->exchanges,
						GSA_INBAND_REKEY, (void*)inband_rekey_responder, this);
		}
	}
	else
	{
		charon->exchanges->remove_exchange(charon->exchanges,
								(void*)registration_responder, this);
		charon->exchanges->remove_exchange(charon->exchanges,
								(void*)inband_rekey_responder, this);
		charon->bus->remove_listener(charon->bus, &this->listener.public);
	}
	return TRUE;
}

METHOD(plugin_t, get_name, char*,
	private_gikev2_test_plugin_t *this)
{
	return "gikev2-test";
}

METHOD(plugin_t, get_features, int,
	private_gikev2_test_plugin_t *this, plugin_feature_t *features[])
{
	static plugin_feature_t f[] = {
		PLUGIN_CALLBACK((plugin_feature_callback_t)register_cb, NULL),
			PLUGIN_PROVIDE(CUSTOM, "gikev2-test"),
	};
	*features = f;
	return countof(f);
}

/**
 * Destroy a stored IDg body
 */
static void group_destroy(chunk_t *group)
{
	chunk_free(group);
	free(group);
}

METHOD(plugin_t, destroy, void,
	private_gikev2_test_plugin_t *this)
{
	this->groups->destroy_function(this->groups, (void*)group_destroy);
	this->mutex->destroy(this->mutex);
	free(this->group);
	free(this->conns);
	free(this->sag_conns);
	free(this->register_conns);
	free(this);
}

/**
 * Check that charon has the doors of plugin/patches/, using only what a
 * stock strongSwan 6.1 has (names and symbols, no new struct members).
 * Before this check passed, the plugin must not touch anything the patches
 * add; it must not reference data symbols they add at all (dlopen() would
 * fail before this runs), functions they add are bound lazily.
 */
static bool doors_present()
{
	char missing[256] = "";
	void *handle;
	int value;

	if (!enum_from_name(exchange_type_names, "GSA_REGISTRATION", &value))
	{
		strcat(missing, " 0001(G-IKEv2 exchange types)");
	}
	handle = dlopen(NULL, RTLD_LAZY);
	if (!handle || !dlsym(handle, "exchange_type_processed_as"))
	{
		strcat(missing, " 0002(GSA_AUTH)");
	}
	if (handle)
	{
		dlclose(handle);
	}
	if (!enum_from_name(task_type_names, "PLUGIN_EXCHANGE", &value))
	{
		strcat(missing, " 0003(plugin exchanges)");
	}
	if (!enum_from_name(transform_type_names, "KEY_WRAP_ALGORITHM", &value))
	{
		strcat(missing, " 0004(KWA transform)");
	}
	if (missing[0])
	{
		DBG1(DBG_LIB, "gikev2-test: charon %s lacks the G-IKEv2 patches of "
			 "plugin/patches/:%s, refusing to load", VERSION, missing);
		return FALSE;
	}
	return TRUE;
}

/*
 * Described in header
 */
PLUGIN_DEFINE(gikev2_test)
{
	private_gikev2_test_plugin_t *this;

	if (!doors_present())
	{
		return NULL;
	}

	INIT(this,
		.public = {
			.get_name = _get_name,
			.get_features = _get_features,
			.destroy = _destroy,
		},
		.listener = {
			.public = {
				.message = _message_hook,
				.ike_derived_keys = _ike_derived_keys,
				.ike_updown = _ike_updown,
				.child_updown = _child_updown,
				.alert = _alert,
			},
		},
		.gcks = streq(lib->settings->get_str(lib->settings,
							"%s.plugins.gikev2-test.role", "gm", lib->ns), "gcks"),
		.group = strdup(lib->settings->get_str(lib->settings,
							"%s.plugins.gikev2-test.group", "test-group", lib->ns)),
		.conns = strdupnull(lib->settings->get_str(lib->settings,
							"%s.plugins.gikev2-test.conns", NULL, lib->ns)),
		.sag_conns = strdupnull(lib->settings->get_str(lib->settings,
							"%s.plugins.gikev2-test.sag_conns", NULL, lib->ns)),
		.register_conns = strdupnull(lib->settings->get_str(lib->settings,
							"%s.plugins.gikev2-test.register_conns", NULL, lib->ns)),
		.inband_rekey = lib->settings->get_bool(lib->settings,
							"%s.plugins.gikev2-test.inband_rekey", TRUE, lib->ns),
		.groups = hashtable_create(hashtable_hash_ptr, hashtable_equals_ptr, 8),
		.mutex = mutex_create(MUTEX_TYPE_DEFAULT),
	);
	this->listener.plugin = this;
	DBG1(DBG_LIB, "gikev2-test: G-IKEv2 doors present, acting as %s",
		 this->gcks ? "GCKS" : "GM");
	return &this->public;
}
