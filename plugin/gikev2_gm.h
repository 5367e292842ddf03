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
 * @defgroup gikev2_gm gikev2_gm
 * @{ @ingroup gikev2
 */

#ifndef GIKEV2_GM_H_
#define GIKEV2_GM_H_

#include <bus/listeners/listener.h>

typedef struct gikev2_gm_listener_t gikev2_gm_listener_t;

/**
 * GM side of G-IKEv2: registers the configured memberships
 * (charon.plugins.gikev2.memberships.<name>) and installs their SAs.
 */
struct gikev2_gm_listener_t {

	/**
	 * Implements listener_t.
	 */
	listener_t listener;

	/**
	 * Enumerate the memberships with the operator's view of each.
	 *
	 * The status text is gikev2_gm_status()'s, valid until the next
	 * enumerate() call.
	 *
	 * @return				enumerator over (char *name, char *connection,
	 *						char *status)
	 */
	enumerator_t *(*create_status_enumerator)(gikev2_gm_listener_t *this);

	/**
	 * Register a membership (again) by initiating its connection from a
	 * job (operator command).
	 *
	 * @param name			membership section name or its group ID
	 * @return				the connection initiated (owned by the listener),
	 *						NULL if no such membership
	 */
	char *(*register_membership)(gikev2_gm_listener_t *this, char *name);

	/**
	 * Apply the memberships of the reloaded settings: new ones register
	 * when their connection is initiated (at once with GSA_REGISTRATION if
	 * an IKE_SA of it is established), removed ones leave their group
	 * (GSA_REGISTRATION with N(REGISTRATION_FAILED), on an IKE_SA of their
	 * connection, initiated if needed) and their SAs are removed, changed
	 * ones are replaced and register again. A membership whose new
	 * settings are invalid keeps its previous configuration (logged).
	 *
	 * @return				number of memberships
	 */
	int (*reload)(gikev2_gm_listener_t *this);

	/**
	 * Destroy a gikev2_gm_listener_t.
	 */
	void (*destroy)(gikev2_gm_listener_t *this);
};

/**
 * Create the GM listener from the configured memberships.
 *
 * @param count			number of memberships configured (out)
 * @return				listener, NULL on configuration errors
 */
gikev2_gm_listener_t *gikev2_gm_listener_create(int *count);

#endif /** GIKEV2_GM_H_ @}*/
