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
 * @defgroup gikev2_load gikev2_load
 * @{ @ingroup gikev2
 */

#ifndef GIKEV2_LOAD_H_
#define GIKEV2_LOAD_H_

#include <bus/listeners/listener.h>

typedef struct gikev2_load_listener_t gikev2_load_listener_t;

/**
 * Load driver for benchmarks and load tests: turns the IKE_SAs the
 * load-tester plugin initiates (peer config "load-test") into G-IKEv2
 * registrations (charon.plugins.gikev2.load_test) and counts the GCKS's
 * answers. With keys = yes (the default) each IKE_SA's answer is taken by
 * a GM core of its own, which unwraps the keys and follows the group's
 * GSA_REKEYs (one multicast socket feeds them all); what the members hold
 * is logged as a summary. Nothing is installed.
 */
struct gikev2_load_listener_t {

	/**
	 * Implements listener_t.
	 */
	listener_t listener;

	/**
	 * Destroy a gikev2_load_listener_t.
	 */
	void (*destroy)(gikev2_load_listener_t *this);
};

/**
 * Create the load driver if charon.plugins.gikev2.load_test is configured.
 *
 * @param error			set to TRUE if it is configured but invalid
 * @return				listener, NULL if not configured or invalid
 */
gikev2_load_listener_t *gikev2_load_listener_create(bool *error);

#endif /** GIKEV2_LOAD_H_ @}*/
