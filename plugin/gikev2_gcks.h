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

#include "gikev2.h"

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
	 * Get the operator's view of the served groups: gikev2_gcks_status()
	 * text, one line per group, member, SA and recent rekey message.
	 *
	 * @return				allocated text, NULL on failure (logged)
	 */
	char *(*status)(gikev2_gcks_listener_t *this);

	/**
	 * Rekey a group's Data-Security SAs, or its Rekey SA, now (operator
	 * command) and perform the resulting actions (GSA_REKEY,
	 * GSA_INBAND_REKEY) at once.
	 *
	 * @param group			group ID, written as the group's id setting
	 * @param kek			TRUE to replace the Rekey SA (KEK) instead
	 * @return				GIKEV2_OK, or the core's error (the message in
	 *						gikev2_last_error() on this thread)
	 */
	gikev2_error_t (*rekey)(gikev2_gcks_listener_t *this, char *group,
							bool kek);

	/**
	 * Exclude a member from a group (operator command) and perform the
	 * resulting actions (the exclusion rekey) at once.
	 *
	 * @param group			group ID, written as the group's id setting
	 * @param member		member's identity (as status() shows it) or its
	 *						member ID in decimal
	 * @param id			member ID of the excluded member (out)
	 * @return				GIKEV2_OK, or the core's error (the message in
	 *						gikev2_last_error() on this thread)
	 */
	gikev2_error_t (*exclude)(gikev2_gcks_listener_t *this, char *group,
							  char *member, uint64_t *id);

	/**
	 * Let a member excluded from a group register again (operator command).
	 *
	 * @param group			group ID, written as the group's id setting
	 * @param member		the excluded member's identity
	 * @return				GIKEV2_OK, or the core's error (the message in
	 *						gikev2_last_error() on this thread)
	 */
	gikev2_error_t (*readmit)(gikev2_gcks_listener_t *this, char *group,
							  char *member);

	/**
	 * Apply the groups of the reloaded settings: new groups are served,
	 * removed ones dropped, changed ones replaced; a group whose new
	 * settings are invalid keeps its previous configuration (logged).
	 * Unchanged groups are untouched.
	 *
	 * @return				number of groups served
	 */
	int (*reload)(gikev2_gcks_listener_t *this);

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
