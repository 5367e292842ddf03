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

/**
 * @defgroup gikev2 gikev2
 * @ingroup cplugins
 *
 * @defgroup gikev2_plugin gikev2_plugin
 * @{ @ingroup gikev2
 */

#ifndef GIKEV2_PLUGIN_H_
#define GIKEV2_PLUGIN_H_

#include <plugins/plugin.h>

typedef struct gikev2_plugin_t gikev2_plugin_t;

/**
 * G-IKEv2 (RFC 9838) plugin: GCKS and GM on top of charon, with the
 * protocol in the Rust core behind include/gikev2.h.
 */
struct gikev2_plugin_t {

	/**
	 * Implements plugin interface.
	 */
	plugin_t plugin;
};

#endif /** GIKEV2_PLUGIN_H_ @}*/
