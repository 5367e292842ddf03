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
 * @defgroup gikev2_gcks gikev2_gcks
 * @{ @ingroup gikev2
 */

#ifndef GIKEV2_GCKS_H_
#define GIKEV2_GCKS_H_

#include <bus/listeners/listener.h>

typedef struct gikev2_gcks_listener_t gikev2_gcks_listener_t;

/**
 * GCKS side of G-IKEv2: answers GSA_AUTH requests for the configured
 * groups (charon.plugins.gikev2.groups.<name>) and rekeys them.
 */
struct gikev2_gcks_listener_t {

	/**
	 * Implements listener_t.
	 */
	listener_t listener;

	/**
	 * Destroy a gikev2_gcks_listener_t.
	 */
	void (*destroy)(gikev2_gcks_listener_t *this);
};

/**
 * Create the GCKS listener from the configured groups.
 *
 * @param count			number of groups configured (out)
 * @return				listener, NULL on configuration errors
 */
gikev2_gcks_listener_t *gikev2_gcks_listener_create(int *count);

#endif /** GIKEV2_GCKS_H_ @}*/
