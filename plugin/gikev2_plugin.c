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

#include "gikev2_plugin.h"
#include "gikev2_gcks.h"
#include "gikev2_gm.h"
#include "gikev2_load.h"
#include "gikev2_control.h"
#include "gikev2_util.h"

#include <dlfcn.h>

#include <daemon.h>

typedef struct private_gikev2_plugin_t private_gikev2_plugin_t;

/**
 * Private data of the gikev2 plugin.
 */
struct private_gikev2_plugin_t {

	/**
	 * Implements plugin interface
	 */
	gikev2_plugin_t public;

	/**
	 * GCKS listener, if groups are configured
	 */
	gikev2_gcks_listener_t *gcks;

	/**
	 * GM listener, if memberships are configured
	 */
	gikev2_gm_listener_t *gm;

	/**
	 * Load driver of benchmarks, if charon.plugins.gikev2.load_test is set
	 */
	gikev2_load_listener_t *load;

	/**
	 * Control socket of gikectl, if it could be created
	 */
	gikev2_control_t *control;

	/**
	 * TRUE if the log callback is installed
	 */
	bool logging;
};

/**
 * Log callback of the core, into charon's bus (never gets keys)
 */
static void log_cb(int level, const char *msg, void *ctx)
{
	dbg(DBG_IKE, level, "gikev2: %s", msg);
}

/**
 * Register/unregister the listeners
 */
static bool register_cb(private_gikev2_plugin_t *this,
						plugin_feature_t *feature, bool reg, void *data)
{
	int groups = 0, memberships = 0;
	bool load_error = FALSE;

	if (reg)
	{
		this->gcks = gikev2_gcks_listener_create(&groups);
		if (this->gcks)
		{
			this->gm = gikev2_gm_listener_create(&memberships);
		}
		if (this->gm)
		{
			this->load = gikev2_load_listener_create(&load_error);
		}
		if (!this->gcks || !this->gm || load_error)
		{
			DESTROY_IF(this->gcks);
			this->gcks = NULL;
			DESTROY_IF(this->gm);
			this->gm = NULL;
			DBG1(DBG_CFG, "gikev2: invalid G-IKEv2 configuration, plugin "
				 "disabled");
			return FALSE;
		}
		charon->bus->add_listener(charon->bus, &this->gcks->listener);
		charon->bus->add_listener(charon->bus, &this->gm->listener);
		if (this->load)
		{
			charon->bus->add_listener(charon->bus, &this->load->listener);
		}
		DBG1(DBG_CFG, "gikev2: %d group(s) served as GCKS, %d membership(s) "
			 "as GM", groups, memberships);
		/* without it, groups are still served: gikectl reports the error */
		this->control = gikev2_control_create(this->gcks, this->gm);
	}
	else
	{
		DESTROY_IF(this->control);
		this->control = NULL;
		if (this->gcks)
		{
			charon->bus->remove_listener(charon->bus, &this->gcks->listener);
			this->gcks->destroy(this->gcks);
			this->gcks = NULL;
		}
		if (this->gm)
		{
			charon->bus->remove_listener(charon->bus, &this->gm->listener);
			this->gm->destroy(this->gm);
			this->gm = NULL;
		}
		if (this->load)
		{
			charon->bus->remove_listener(charon->bus, &this->load->listener);
			this->load->destroy(this->load);
			this->load = NULL;
		}
	}
	return TRUE;
}

METHOD(plugin_t, get_name, char*,
	private_gikev2_plugin_t *this)
{
	return "gikev2";
}

METHOD(plugin_t, get_features, int,
	private_gikev2_plugin_t *this, plugin_feature_t *features[])
{
	static plugin_feature_t f[] = {
		PLUGIN_CALLBACK((plugin_feature_callback_t)register_cb, NULL),
			PLUGIN_PROVIDE(CUSTOM, "gikev2"),
				PLUGIN_DEPENDS(CUSTOM, "kernel-ipsec"),
	};
	*features = f;
	return countof(f);
}

/**
 * Install the core's log callback with the configured level
 */
static bool set_logging()
{
	return gikev2_set_log_callback(log_cb, NULL,
						lib->settings->get_int(lib->settings,
								"%s.plugins.gikev2.core_loglevel", 1,
								lib->ns)) == GIKEV2_OK;
}

METHOD(plugin_t, reload, bool,
	private_gikev2_plugin_t *this)
{
	int groups, memberships;

	this->logging = set_logging();
	if (!this->gcks || !this->gm)
	{
		DBG1(DBG_CFG, "gikev2: plugin disabled by an invalid configuration "
			 "at startup, restart charon to enable it");
		return TRUE;
	}
	groups = this->gcks->reload(this->gcks);
	memberships = this->gm->reload(this->gm);
	DBG1(DBG_CFG, "gikev2: reloaded, %d group(s) served as GCKS, "
		 "%d membership(s) as GM", groups, memberships);
	return TRUE;
}

METHOD(plugin_t, destroy, void,
	private_gikev2_plugin_t *this)
{
	if (this->logging)
	{
		gikev2_set_log_callback(NULL, NULL, -1);
	}
	free(this);
}

/**
 * Check that charon has the doors of plugin/patches/, using only what a
 * stock strongSwan 6.1 has (enum names and dlsym(), no new struct members):
 * before this passed nothing the patches add may be touched, and no data
 * symbol they add may be referenced at all (dlopen() would fail first).
 */
static bool doors_present()
{
	char missing[256] = "";
	void *handle;
	int value;

	if (!enum_from_name(exchange_type_names, "GSA_AUTH", &value) ||
		value != 39)
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
	if (!enum_from_name(transform_type_names, "KEY_WRAP_ALGORITHM", &value) ||
		value != 13)
	{
		strcat(missing, " 0004(KWA transform)");
	}
	if (missing[0])
	{
		DBG1(DBG_LIB, "gikev2: charon %s lacks the G-IKEv2 patches of "
			 "plugin/patches/:%s, refusing to load", VERSION, missing);
		return FALSE;
	}
	return TRUE;
}

/*
 * Described in header
 */
PLUGIN_DEFINE(gikev2)
{
	private_gikev2_plugin_t *this;

	if (!doors_present())
	{
		return NULL;
	}
	if (gikev2_abi_version() != GIKEV2_ABI_VERSION)
	{
		DBG1(DBG_LIB, "gikev2: core ABI version %u, plugin built for %u, "
			 "refusing to load", gikev2_abi_version(), GIKEV2_ABI_VERSION);
		return NULL;
	}

	INIT(this,
		.public = {
			.plugin = {
				.get_name = _get_name,
				.get_features = _get_features,
				.reload = _reload,
				.destroy = _destroy,
			},
		},
	);
	this->logging = set_logging();
	DBG1(DBG_LIB, "gikev2: G-IKEv2 core %s, patched charon %s",
		 gikev2_version(), VERSION);
	return &this->public.plugin;
}
